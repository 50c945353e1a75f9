"""Release assembly: from the clean stage's shards and records to a finished, verifiable release.

Summary, records, report, croissant.json and dataset card first; then the manifest listing every file
(hashes reused when a file is unchanged), the self-check that each shard is the one the clean stage
wrote, the signature, and last the cover state (a run that dies before it redraws the same cover).
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from expunge import atomic
from expunge.config import RunConfig
from expunge.engine import Executor
from expunge.errors import ExpungeError
from expunge.formats import Shard
from expunge.release import manifest as release_manifest
from expunge.release import sign as release_sign
from expunge.release.cover import CoverPlan, save_state
from expunge.release.croissant import croissant, dataset_card
from expunge.release.croissant import dumps as croissant_dumps
from expunge.release.outdir import RECORDS, sweep
from expunge.release.report import write_report
from expunge.stages import done
from expunge.store import Store

RELEASE_FILES = ("summary.json", "report.html", "croissant.json", "README.md")
RECORDS_PRIVATE = "per-row records (which rows went, and why) are kept by the publisher, not published"
RECORDS_PUBLISHED = "per-row records are published in removed.parquet: they name every removed row"
DIFF_NOTICE = (
    "this release was made without a cover set: anyone holding the previous release can diff the two "
    "and see exactly which rows were removed. Run clean with --cover K to hide each flagged row among "
    "at least K removed rows that nobody can tell apart from it."
)


@dataclass
class ReleaseParts:
    """What the clean stage produced for one release folder."""

    out: Path
    state_dir: Path  # the store's private folder for this release (markers, records, file hashes)
    tmp_dir: Path  # temporaries on OUT's filesystem
    dataset_id: str
    name: str  # the dataset's folder name, as the card and croissant.json call it
    shards: list[Shard]
    inputs: list[dict[str, Any]]  # name, sha256 and rows of every input shard
    summary: dict[str, Any]
    records: pa.Table
    outputs: list[str]  # every file the shards put in OUT
    cover: CoverPlan | None


def assemble(store: Store, executor: Executor, config: RunConfig, parts: ReleaseParts) -> dict[str, Any]:
    """Write every release file around the shards; returns the summary."""
    out, tmp_dir, state_dir, plan = parts.out, parts.tmp_dir, parts.state_dir, parts.cover
    signing = config.sign_key is not None
    previous = previous_manifests(out, config.previous_manifest)
    publish_records = config.publish_records
    published = set(parts.outputs) | set(RELEASE_FILES) | ({RECORDS} if publish_records else set())
    sweep(out, published, previous, signing=signing)
    atomic.write_bytes(Store.private_records(state_dir), _parquet_bytes(parts.records), store.tmp)
    if publish_records:
        atomic.write_bytes(out / RECORDS, _parquet_bytes(parts.records), tmp_dir)
    summary = parts.summary
    summary["records"] = RECORDS_PUBLISHED if publish_records else RECORDS_PRIVATE
    if plan is not None:
        summary["cover"] = plan.public()
    elif summary["rows_removed"]:
        summary["notice"] = DIFF_NOTICE
    atomic.write_json(out / "summary.json", summary, tmp_dir)
    manifest = release_manifest.build(summary, parts.inputs, parts.dataset_id)
    manifest["policy"]["records"] = summary["records"]
    if summary.get("triage"):
        # The rules that decided, the policy file's SHA-256, the keyword lists (by hash and size, never a
        # term) and the negative banks: what a reader needs to know why rows beyond the lists went.
        triage = summary["triage"]
        manifest["policy"].update(triage["policy"])
        manifest["policy"]["remove"] = (
            "any finding of a listed bank, rows a hotline confirmed, and the rules below"
        )
        manifest["keyword_lists"] = triage["keyword_lists"]
        manifest["negative_banks"] = triage["negative_banks"]
    if plan is not None:
        manifest["policy"]["cover"] = plan.public()
    # The human-facing files come first, built from the manifest's shard part (they quote the shard
    # root, never the manifest's own hash), so the manifest can list them like any other file. No
    # timings in them, so a rerun writes the same bytes.
    write_report(out, store.root, timings=False, tmp_dir=tmp_dir, manifest=manifest, signed=signing)
    columns = parts.shards[0].handler.record_columns(parts.shards[0]) if parts.shards else None
    media_types = {s.name: s.handler.shard_media_type(s) for s in parts.shards}
    doc = croissant(manifest, summary, name=parts.name, columns=columns, media_types=media_types)
    atomic.write_bytes(out / "croissant.json", croissant_dumps(doc).encode("utf-8"), tmp_dir)
    card = dataset_card(manifest, summary, name=parts.name)
    atomic.write_bytes(out / "README.md", card.encode("utf-8"), tmp_dir)
    files = release_files(store, executor, out, published, state_dir)
    check_shards(out, summary["shards"], files, state_dir)
    manifest = release_manifest.with_files(manifest, files)
    manifest["release"] = release_manifest.next_release(manifest, previous)
    data = release_manifest.dumps(manifest)
    atomic.write_bytes(out / release_manifest.MANIFEST, data, tmp_dir)
    if config.sign_key is not None:
        comment = (
            f"expunge release sequence={manifest['release']['sequence']} "
            f"files_root={manifest['files_root']} merkle_root={manifest['merkle_root']}"
        )
        sig = release_sign.sign(data, config.sign_key, comment)
        atomic.write_bytes(out / release_manifest.SIGNATURE, sig, tmp_dir)
    if plan is not None:  # last: a run that dies before this point redraws the same cover
        save_state(store.cover_state(parts.dataset_id), plan.state, store.tmp)
    return summary


def previous_manifests(out: Path, previous: Path | None) -> list[tuple[dict[str, Any], bytes]]:
    """The manifests this release may follow: the one in OUT (read before anything replaces it)
    and ``--previous``. An unreadable one is refused: the sequence must never restart silently."""
    found = []
    for path in (out / release_manifest.MANIFEST, previous):
        if path is None or (path == out / release_manifest.MANIFEST and not path.is_file()):
            continue
        man = release_manifest.load(path)
        found.append((man, path.read_bytes()))
    return found


def release_files(
    store: Store, executor: Executor, out: Path, published: set[str], state_dir: Path
) -> list[dict[str, Any]]:
    """Path, SHA-256 and size of every file in OUT but the manifest and its signature.

    Hashes are reused from the last run when a file's size, mtime, ctime and inode are unchanged
    (ctime cannot be set back by hand); the rest are hashed on the executor, many files per task.
    """
    files, _, odd = release_manifest.walk(out)
    if odd:
        raise ExpungeError("a link or special file appeared in the output folder", out / odd[0])
    files = [f for f in files if not release_manifest.is_own(f)]
    stray = [f for f in files if f not in published]
    if stray:
        raise ExpungeError(
            "a file that is not part of the release appeared in the output folder", out / stray[0]
        )
    cache_path = Store.files_cache(state_dir)
    cache: dict[str, Any] = atomic.read_json(cache_path) if cache_path.is_file() else {}
    stats: dict[str, list[int]] = {}
    entries: dict[str, dict[str, Any]] = {}
    todo: list[str] = []
    for rel in files:
        st = os.lstat(out / rel)
        stats[rel] = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]
        hit = cache.get(rel)
        if isinstance(hit, list) and hit[:5] == stats[rel]:
            entries[rel] = {"path": rel, "sha256": hit[5], "size": st.st_size}
        else:
            todo.append(rel)
    batches = _batches([str(out / rel) for rel in todo], [stats[rel][0] for rel in todo])
    light = sum(stats[rel][0] for rel in todo) < (64 << 20)
    prefix = len(str(out)) + 1
    for hashed in executor.map(release_manifest.digest_files, batches, light=light):
        for path, size, sha in hashed:
            rel = path[prefix:].replace(os.sep, "/")
            entries[rel] = {"path": rel, "sha256": sha, "size": size}
    atomic.write_json(cache_path, {rel: [*stats[rel], entries[rel]["sha256"]] for rel in files}, store.tmp)
    return [entries[rel] for rel in files]


def check_shards(
    out: Path, shards: list[dict[str, Any]], files: list[dict[str, Any]], state_dir: Path
) -> None:
    """Each shard in OUT must be the one the clean stage wrote (its hash as ``verify`` computes it):
    a shard changed in OUT behind an unchanged size is never vouched for. Its completion record is
    dropped, so the next run writes it again."""
    from expunge.release.verify import shard_files

    by_path = {f["path"]: f["sha256"] for f in files}
    for shard in shards:
        paths, _ = shard_files(out, shard["name"])
        found = [by_path.get(Path(p).relative_to(out).as_posix()) for p in paths]
        digests = [str(d) for d in found if d]
        if digests and len(digests) == len(found):
            combined = (
                digests[0] if len(digests) == 1 else hashlib.sha256(":".join(digests).encode()).hexdigest()
            )
            if combined == shard["sha256"]:
                continue
        done.forget(Store.clean_marker(state_dir, shard["name"])[0])
        raise ExpungeError(
            "this shard in the output folder is not the one expunge wrote (changed by hand?); "
            "run again to rewrite it",
            out / shard["name"],
        )


def _batches(paths: list[str], sizes: list[int], target: int = 256 << 20) -> list[list[str]]:
    """Group files into tasks of about ``target`` bytes (a big file is a task of its own)."""
    batches: list[list[str]] = []
    current: list[str] = []
    total = 0
    for path, size in zip(paths, sizes, strict=True):
        current.append(path)
        total += size
        if total >= target:
            batches.append(current)
            current, total = [], 0
    if current:
        batches.append(current)
    return batches


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()
