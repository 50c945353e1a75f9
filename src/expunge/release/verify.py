"""Checking a release against its manifest: signature, Merkle root, every shard's hash and row count,
no shard missing or added, and (given banks) no row that matches them.

Every problem is reported, each as one line naming the shard; nothing here prints row content.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pyarrow.parquet as pq

from expunge.formats import discover
from expunge.index.build import content_sha256
from expunge.release import manifest as mf
from expunge.release import sign


def _shard_files(release: Path, name: str) -> tuple[list[str], int | None]:
    """The files a shard consists of in the release, and its row count where it can be read."""
    main = release / name
    if name.endswith(".tar"):
        stem = main.with_suffix("")
        meta = stem.with_suffix(".parquet")
        files = [str(main)] + ([str(meta)] if meta.is_file() else [])
        rows = pq.ParquetFile(meta).metadata.num_rows if meta.is_file() else None
        return files, rows
    if main.is_dir():
        from expunge.formats.imagefolder import image_files

        images = [str(main / f) for f in image_files(str(main))]
        metas = sorted(p for p in main.glob("*.parquet"))
        rows = pq.ParquetFile(metas[0]).metadata.num_rows if len(metas) == 1 else len(images)
        return images + [str(m) for m in metas[:1]], rows
    return [str(main)], pq.ParquetFile(main).metadata.num_rows if main.is_file() else None


def verify_release(
    release: Path,
    manifest_path: Path | None = None,
    pubkey: Path | None = None,
    lists: Sequence[str] = (),
    workers: int | None = None,
) -> list[str]:
    """Every mismatch found, as one line each; an empty list means the release checks out."""
    manifest_path = manifest_path or release / mf.MANIFEST
    problems: list[str] = []
    data = manifest_path.read_bytes() if manifest_path.is_file() else b""
    man = mf.load(manifest_path)
    if pubkey is not None:
        sig = manifest_path.with_name(manifest_path.name + ".minisig")
        if not sig.is_file():
            problems.append(f"{sig}: signature missing")
        else:
            try:
                sign.verify(data, sig, pubkey)
            except Exception as exc:  # an ExpungeError carries the precise reason
                problems.append(str(exc))
    shards = man.get("shards", [])
    root = mf.merkle_root([(s["name"], s["sha256"]) for s in shards])
    if root != man.get("merkle_root"):
        problems.append(f"{manifest_path}: Merkle root does not match the shards it lists")
    listed = set()
    for s in shards:
        listed.add(s["name"])
        files, rows = _shard_files(release, s["name"])
        if not all(os.path.exists(f) for f in files) or not files:
            problems.append(f"{release / s['name']}: shard missing")
            continue
        if content_sha256(files) != s["sha256"]:
            problems.append(f"{release / s['name']}: SHA-256 differs from the manifest")
        if rows is not None and rows != s["rows"]:
            problems.append(f"{release / s['name']}: {rows} rows, the manifest says {s['rows']}")
    try:
        _, found, _ = discover([str(release)])
        extra = sorted({sh.name for sh in found} - listed)
    except Exception:
        extra = []
    for name in extra:
        problems.append(f"{release / name}: shard not in the manifest")
    if lists and not problems:
        from expunge import api

        with tempfile.TemporaryDirectory(prefix="expunge-verify-") as tmp:
            specs = [str(release / s["name"]) for s in shards]
            opts = api.Options(store=Path(tmp) / "store", workers=workers)
            found_rows = api.clean(specs, Path(tmp) / "out", lists=list(lists), opts=opts)
        for bank, n in sorted(found_rows["removed_by_bank"].items()):
            problems.append(f"{release}: {n} rows still match bank {bank}")
    return problems
