"""Planning the index stage: which shards, and which of their features, need indexing.

A shard's completion record lives in the dataset's state (saved in the store's ``dataset.json``):
its size and mtime (the fingerprint), SHA-256, row count and indexed features. The per-shard task
is ``expunge.index.build.index_shard``.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from pathlib import Path

from expunge.errors import ExpungeError
from expunge.features.base import IMAGE_SOURCE, parse_feature
from expunge.index.build import ROWS_FILE, IndexResult, IndexTask, fingerprint
from expunge.index.images import DIHEDRAL_FEATURE, IMAGE_FEATURES
from expunge.lists.bank import BankInfo
from expunge.stages import done
from expunge.stages.base import DatasetView
from expunge.store import Store


def features_for(ds: DatasetView, banks: list[BankInfo]) -> list[str]:
    """Every feature the banks need; one image decode yields every image feature, so they go together."""
    features = sorted({b.feature for b in banks})
    if any(parse_feature(f).is_image for f in features):
        features = sorted(
            set(features) | set(IMAGE_FEATURES) | ({DIHEDRAL_FEATURE} if ds.dihedral else set())
        )
    # Each column role a bank's feature is computed from (url, caption) must resolve to a column.
    by_role: dict[str, list[str]] = {}
    for b in banks:
        role = parse_feature(b.feature).source
        if role != IMAGE_SOURCE:
            by_role.setdefault(role, []).append(b.name)
    for role, names in by_role.items():
        if getattr(ds.columns, role, None) is None:
            label = "URL" if role == "url" else role
            lists = ", ".join(names)
            message = f"{label} lists ({lists}) need a {label} column, and this dataset has none"
            raise ExpungeError(message, ds.root)
    return features


def plan(store: Store, ds: DatasetView, features: list[str]) -> list[IndexTask]:
    """One task per shard whose index is not done: new or changed shards in full, touched shards by
    hash (only the fingerprint is refreshed when the bytes are unchanged), others for missing features."""
    tasks: list[IndexTask] = []
    for shard in ds.shards:
        size, mtime = fingerprint(shard.files)
        known = ds.state.get(shard.name)
        index_dir = store.index_dir(ds.id, shard.name)
        have_rows = known is not None and done.is_done(known, {}, [index_dir / ROWS_FILE])
        unchanged = have_rows and done.is_done(known, {"size": size, "mtime_ns": mtime})
        recorded = known.get("features", []) if known else []
        present = done.present(recorded, partial(_feature_file, index_dir))
        missing = tuple(f for f in features if f not in present)
        if missing and any(parse_feature(f).is_image for f in missing):
            missing = tuple(sorted(set(missing) | {f for f in features if parse_feature(f).is_image}))
        if unchanged and not missing:
            continue
        base = IndexTask(
            shard=shard,
            url_column=ds.columns.url,
            caption_column=ds.columns.caption,
            index_dir=str(index_dir),
            tmp_dir=str(store.tmp),
            features=tuple(features),
            rows_needed=True,
            known_sha256=None,
            key_column=ds.columns.key,
            dihedral=ds.dihedral,
            max_pixels=ds.max_pixels,
        )
        if unchanged:
            tasks.append(replace(base, features=missing, rows_needed=False))
        elif known is not None and have_rows:
            # Touched: if the bytes are unchanged only the fingerprint is refreshed.
            every = tuple(sorted(present | set(features)))
            tasks.append(
                replace(
                    base,
                    features=missing,
                    rows_needed=False,
                    known_sha256=known["sha256"],
                    all_features=every,
                )
            )
        else:
            tasks.append(base)
    return tasks


def _feature_file(index_dir: Path, feature: str) -> Path:
    return index_dir / parse_feature(feature).file


def hashes_images(tasks: list[IndexTask]) -> bool:
    return any(parse_feature(f).is_image for t in tasks for f in (t.features or t.all_features))


def record(store: Store, ds: DatasetView, res: IndexResult) -> None:
    """Take one shard's result into its completion record. New content starts the shard over: its
    findings are forgotten, so the match stage redoes them."""
    known = ds.state.get(res.shard_name)
    if res.content_changed and res.rows >= 0 and (known is None or known.get("sha256") != res.sha256):
        done.forget(*store.findings(ds.id, res.shard_name))
        ds.state[res.shard_name] = {
            "size": res.size,
            "mtime_ns": res.mtime_ns,
            "sha256": res.sha256,
            "rows": res.rows,
            "features": sorted(set(res.features)),
            "quarantined": res.quarantined,
        }
        if res.images or res.image_errors:
            ds.state[res.shard_name].update({"images": res.images, "image_errors": res.image_errors})
        return
    assert known is not None
    known.update({"size": res.size, "mtime_ns": res.mtime_ns})
    if res.images or res.image_errors:
        known.update({"images": res.images, "image_errors": res.image_errors})
    known["features"] = sorted(set(known.get("features", [])) | set(res.features))
    if res.rows >= 0 and res.rows != known["rows"]:
        raise ExpungeError("shard changed while it was being indexed; run again", res.shard_name)


def forget(store: Store, ds: DatasetView, shard: str) -> None:
    """Drop what the store knows of one shard (the caller saves the dataset)."""
    ds.state.pop(shard, None)
    done.forget(*store.findings(ds.id, shard))
