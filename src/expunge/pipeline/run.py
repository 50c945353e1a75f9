"""The flow, stage by stage: index → match → clean, each a set of per-shard tasks on an executor.

The orchestrator owns all store metadata (dataset.json, ledgers); tasks own only their shard's files.
Every stage is incremental: rerunning after an interruption, or after a bank gains values, redoes only
what changed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import os
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from expunge import __version__, atomic
from expunge.config import MAX_PIXELS, RunConfig
from expunge.engine import Executor
from expunge.errors import ExpungeError
from expunge.features.base import parse_feature
from expunge.formats import Shard, discover, get
from expunge.formats import parquet as pqfmt
from expunge.formats.paths import RESERVED_NAMES
from expunge.index.build import (
    INDEX_FORMAT,
    ROWS_FILE,
    IndexResult,
    IndexTask,
    fingerprint,
    read_quarantine,
)
from expunge.index.images import DIHEDRAL_FEATURE, IMAGE_FEATURES, IMAGES_FILE
from expunge.lists.bank import BankInfo, load_info
from expunge.match.stage import BankRef, MatchTask
from expunge.pipeline.clean import RECORD_SCHEMA, CleanResult, CleanTask, marker_paths, read_records
from expunge.pipeline.tasks import clean_shard, index_shard, match_shard
from expunge.progress import NullReporter, Reporter
from expunge.release import manifest as release_manifest
from expunge.release import sign as release_sign
from expunge.release.cover import CoverPlan, ShardCandidates, load_state, plan_cover, save_state
from expunge.release.croissant import croissant, dataset_card
from expunge.release.croissant import dumps as croissant_dumps
from expunge.release.report import write_report
from expunge.store import Store, dataset_id

STATE_DIR = ".expunge"  # where releases kept their state before it moved to the store
OUT_TMP = ".expunge-tmp"  # temporaries inside OUT, only when nowhere else on its filesystem will do
RECORDS = "removed.parquet"
RELEASE_FILES = ("summary.json", "report.html", "croissant.json", "README.md")
RECORDS_PRIVATE = "per-row records (which rows went, and why) are kept by the publisher, not published"
RECORDS_PUBLISHED = "per-row records are published in removed.parquet: they name every removed row"
DIFF_NOTICE = (
    "this release was made without a cover set: anyone holding the previous release can diff the two "
    "and see exactly which rows were removed. Run clean with --cover K to hide each flagged row among "
    "at least K removed rows that nobody can tell apart from it."
)


@dataclass
class Dataset:
    """A dataset as the store knows it: its shards, columns and what has been indexed."""

    id: str
    root: str
    specs: list[str]
    shards: list[Shard]
    columns: pqfmt.ColumnMap
    state: dict[str, Any] = field(default_factory=dict)  # shard name → fingerprint, rows, features
    kind: str = "parquet"  # "parquet" | "webdataset"
    dihedral: bool = False  # index the 8 PDQ orientations of every image
    max_pixels: int = MAX_PIXELS  # images larger than this are quarantined as decompression bombs

    @property
    def dir_name(self) -> str:
        return self.id


def open_dataset(store: Store, specs: list[str], config: RunConfig | None = None) -> Dataset:
    """The dataset at ``specs`` with the columns, image options and store state ``config`` implies."""
    config = config or RunConfig()
    url_column, caption_column, key_column = config.url_column, config.caption_column, config.key_column
    store.ensure()
    root, shards, kind = discover(specs)
    fmt = get(kind)
    with_meta = next((s.metadata for s in shards if s.metadata), None)
    if with_meta is None:
        columns = pqfmt.ColumnMap(None, None, None)
    else:
        if key_column is None:
            key_column = fmt.default_key_column(with_meta)
        columns = fmt.detect_columns(
            with_meta, url_column, caption_column, key_column, require_url=fmt.requires_url
        )
    ds_id = dataset_id(root)
    path = store.dataset_file(ds_id)
    state: dict[str, Any] = {}
    if path.is_file():
        saved = atomic.read_json(path)
        # An index written by an older layout (say, first-image-only image rows) is rebuilt in full.
        if saved.get("columns", {}).get("url") == columns.url and saved.get("index_format") == INDEX_FORMAT:
            state = saved.get("shards", {})
    return Dataset(ds_id, root, list(specs), shards, columns, state, kind, config.dihedral, config.max_pixels)


def _save_dataset(store: Store, ds: Dataset) -> None:
    data = {
        "id": ds.id,
        "root": ds.root,
        "specs": ds.specs,
        "index_format": INDEX_FORMAT,
        "columns": asdict(ds.columns),
        "shards": {s.name: ds.state[s.name] for s in ds.shards if s.name in ds.state},
    }
    atomic.write_json(store.dataset_file(ds.id), data, store.tmp)


def bank_infos(store: Store, names: list[str] | None) -> list[BankInfo]:
    chosen = names if names is not None else store.bank_names()
    return [load_info(store, n) for n in chosen]


@dataclass
class StageReport:
    stage: str
    shards_total: int
    shards_run: int
    seconds: float
    details: dict[str, Any] = field(default_factory=dict)


class Pipeline:
    def __init__(self, store: Store, executor: Executor, config: RunConfig | None = None) -> None:
        self.store = store.ensure()
        self.executor = executor
        self.config = config or RunConfig()
        self.reporter: Reporter = self.config.reporter or NullReporter()
        self.ledger: list[dict[str, Any]] = []

    def _index_dir(self, ds: Dataset, shard: str) -> Path:
        return self.store.index_dir(ds.id, shard)

    def _findings(self, ds: Dataset, shard: str) -> tuple[Path, Path]:
        return self.store.findings(ds.id, shard)

    # -- index ---------------------------------------------------------------------------------------
    def index(self, ds: Dataset, banks: list[BankInfo]) -> StageReport:
        started = time.perf_counter()
        features = sorted({b.feature for b in banks})
        if any(parse_feature(f).is_image for f in features):
            # One decode yields every image feature: compute them together.
            features = sorted(
                set(features) | set(IMAGE_FEATURES) | ({DIHEDRAL_FEATURE} if ds.dihedral else set())
            )
        url_banks = [b.name for b in banks if not parse_feature(b.feature).is_image]
        if url_banks and ds.columns.url is None:
            raise ExpungeError(
                f"URL lists ({', '.join(url_banks)}) need a URL column, and this dataset has none", ds.root
            )
        tasks: list[IndexTask] = []
        for shard in ds.shards:
            size, mtime = fingerprint(shard.files)
            known = ds.state.get(shard.name)
            index_dir = self._index_dir(ds, shard.name)
            present = set(known.get("features", [])) if known else set()
            have_rows = known is not None and (index_dir / ROWS_FILE).is_file()
            present = {f for f in present if (index_dir / parse_feature(f).file).is_file()}
            same_stat = known is not None and known["size"] == size and known["mtime_ns"] == mtime
            missing = tuple(f for f in features if f not in present)
            if missing and any(parse_feature(f).is_image for f in missing):
                missing = tuple(sorted(set(missing) | {f for f in features if parse_feature(f).is_image}))
            if same_stat and have_rows and not missing:
                continue
            base = IndexTask(
                shard=shard,
                url_column=ds.columns.url,
                index_dir=str(index_dir),
                tmp_dir=str(self.store.tmp),
                features=tuple(features),
                rows_needed=True,
                known_sha256=None,
                key_column=ds.columns.key,
                dihedral=ds.dihedral,
                max_pixels=ds.max_pixels,
            )
            if same_stat and have_rows:
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
        rows_done = 0
        hashing = any(parse_feature(f).is_image for t in tasks for f in (t.features or t.all_features))
        images_done = 0
        # Image hashing is the slow part of image datasets: show images and images/s, not shards.
        total = None if hashing else len(tasks)
        with self.reporter.bar("index", total, "images" if hashing else "shards") as bar:
            for res in self.executor.map(_index_with_retry_on_change, tasks):
                self._record_index(ds, res, features)
                rows_done += max(res.rows, 0)
                images_done += res.images
                bar.advance(res.images if hashing else 1)
        _save_dataset(self.store, ds)
        report = StageReport(
            "index",
            len(ds.shards),
            len(tasks),
            time.perf_counter() - started,
            {"rows_read": rows_done, "images_hashed": images_done, "features": features},
        )
        self.ledger.append(asdict(report))
        return report

    def _record_index(self, ds: Dataset, res: IndexResult, features: list[str]) -> None:
        known = ds.state.get(res.shard_name)
        if res.content_changed and res.rows >= 0 and (known is None or known.get("sha256") != res.sha256):
            # New content: everything about this shard starts again.
            findings, state = self._findings(ds, res.shard_name)
            for p in (findings, state):
                if p.exists():
                    p.unlink()
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

    # -- match ---------------------------------------------------------------------------------------
    def match(self, ds: Dataset, banks: list[BankInfo]) -> StageReport:
        started = time.perf_counter()
        refs = tuple(BankRef(b.name, b.version) for b in banks)
        tasks = []
        for shard in ds.shards:
            findings, state = self._findings(ds, shard.name)
            current = atomic.read_json(state) if state.is_file() else {}
            if findings.is_file() and all(current.get(r.name) == r.version for r in refs):
                continue
            tasks.append(
                MatchTask(
                    shard.name,
                    str(self.store.root),
                    str(self._index_dir(ds, shard.name)),
                    str(findings),
                    str(state),
                    refs,
                    quality_floor=self.config.quality_floor,
                    dihedral=ds.dihedral,
                )
            )
        by_bank: dict[str, int] = {}
        modes: dict[str, int] = {}
        with self.reporter.bar("match", len(tasks), "shards") as bar:
            # Incremental re-matches read a little of the index and nothing of the dataset.
            light = all(t.banks and _is_incremental(t) for t in tasks)
            for res in self.executor.map(match_shard, tasks, light=light):
                for k, v in res.by_bank.items():
                    by_bank[k] = by_bank.get(k, 0) + v
                for m in res.mode.values():
                    modes[m] = modes.get(m, 0) + 1
                bar.advance(1)
        report = StageReport(
            "match", len(ds.shards), len(tasks), time.perf_counter() - started, {"modes": modes}
        )
        self.ledger.append(asdict(report))
        return report

    def findings_summary(self, ds: Dataset, banks: list[BankInfo]) -> dict[str, int]:
        """Rows matched per bank across the dataset (from stored findings, no dataset reads)."""
        out = {b.name: 0 for b in banks}
        names = set(out)
        for shard in ds.shards:
            path, _ = self._findings(ds, shard.name)
            if not path.is_file():
                continue
            table = pq.read_table(path, columns=["row", "bank"])
            for bank in names:
                sel = table.filter(pc.equal(table.column("bank"), bank))
                out[bank] += pc.count_distinct(sel.column("row")).as_py()
        return out

    # -- clean ---------------------------------------------------------------------------------------
    def clean(self, ds: Dataset, banks: list[BankInfo], out: Path, cover: int = 0) -> dict[str, Any]:
        started = time.perf_counter()
        out = check_out_location(self.store, ds, out)
        if cover and self.config.publish_records:
            raise ExpungeError("--publish-records would name the rows that --cover hides: choose one", out)
        # Per-row records and completion markers never enter the release: they stay in the store, in a
        # folder keyed by the resolved output path. OUT holds published files only.
        state_dir = self.state_dir(ds, out)
        _check_out(ds, out, resuming=Store.private_shards(state_dir).is_dir())
        Store.private_shards(state_dir).mkdir(parents=True, exist_ok=True)
        out.mkdir(parents=True, exist_ok=True)
        # Temporaries for OUT on OUT's filesystem (a rename cannot cross devices); those for the store
        # go to the store's tmp/ (atomic.py falls back per destination when a folder is elsewhere).
        tmp_dir = self.store.tmp if _same_device(self.store.tmp, out) else _out_tmp(out)
        key = self.store.key()
        refs = tuple(BankRef(b.name, b.version) for b in banks)
        signals = tuple(b.signal for b in banks)
        tasks = []
        url_scope = any(not parse_feature(b.feature).is_image for b in banks)
        image_scope = any(parse_feature(b.feature).is_image for b in banks)
        plan = self._cover_plan(ds, banks, cover, key, url_scope, image_scope) if cover else None
        for shard in ds.shards:
            findings, _ = self._findings(ds, shard.name)
            tasks.append(
                CleanTask(
                    shard=shard,
                    shard_sha256=ds.state[shard.name]["sha256"],
                    url_column=ds.columns.url,
                    index_dir=str(self._index_dir(ds, shard.name)),
                    findings_path=str(findings),
                    banks=refs,
                    bank_signals=signals,
                    out_path=str(out / shard.name),
                    state_dir=str(state_dir),
                    tmp_dir=str(tmp_dir),
                    key=key,
                    key_column=ds.columns.key,
                    url_scope=url_scope,
                    image_scope=image_scope,
                    quality_floor=self.config.quality_floor,
                    cover_rows=tuple(plan.rows[shard.name]) if plan else (),
                    dataset_root=ds.root,
                    out_root=str(out),
                )
            )
        results: dict[str, CleanResult] = {}
        with self.reporter.bar("clean", len(tasks), "shards") as bar:
            for res in self.executor.map(clean_shard, tasks):
                results[res.shard] = res
                bar.advance(1)
        ordered = [results[s.name] for s in ds.shards]
        _drop_stale_shards(state_dir, out, {s.name for s in ds.shards})
        records, outputs = self._records(state_dir, tasks, results)
        ordered = [results[s.name] for s in ds.shards]
        previous = self._previous_manifests(out)
        publish_records = self.config.publish_records
        published = set(outputs) | set(RELEASE_FILES) | ({RECORDS} if publish_records else set())
        _sweep(out, published, previous, signing=self.config.sign_key is not None)
        atomic.write_bytes(Store.private_records(state_dir), _parquet_bytes(records), self.store.tmp)
        if self.config.publish_records:
            atomic.write_bytes(out / RECORDS, _parquet_bytes(records), tmp_dir)
        summary = _summary(ds, banks, ordered)
        summary["records"] = RECORDS_PUBLISHED if self.config.publish_records else RECORDS_PRIVATE
        if plan is not None:
            summary["cover"] = plan.public()
        elif summary["rows_removed"]:
            summary["notice"] = DIFF_NOTICE
        atomic.write_json(out / "summary.json", summary, tmp_dir)
        inputs = [
            {"name": s.name, "sha256": ds.state[s.name]["sha256"], "rows": ds.state[s.name]["rows"]}
            for s in ds.shards
        ]
        manifest = release_manifest.build(summary, inputs, ds.id)
        manifest["policy"]["records"] = summary["records"]
        if plan is not None:
            manifest["policy"]["cover"] = plan.public()
        # The human-facing files come first, built from the manifest's shard part (they quote the shard
        # root, never the manifest's own hash), so the manifest can list them like any other file. No
        # timings in them, so a rerun writes the same bytes.
        write_report(
            out,
            self.store.root,
            timings=False,
            tmp_dir=tmp_dir,
            manifest=manifest,
            signed=self.config.sign_key is not None,
        )
        columns = ds.shards[0].handler.record_columns(ds.shards[0]) if ds.shards else None
        name = Path(ds.root).name
        media_types = {s.name: s.handler.media_type for s in ds.shards}
        doc = croissant(manifest, summary, name=name, columns=columns, media_types=media_types)
        atomic.write_bytes(out / "croissant.json", croissant_dumps(doc).encode("utf-8"), tmp_dir)
        atomic.write_bytes(
            out / "README.md", dataset_card(manifest, summary, name=name).encode("utf-8"), tmp_dir
        )
        files = self._release_files(out, published, state_dir)
        _check_shards(out, summary["shards"], files, state_dir)
        manifest = release_manifest.with_files(manifest, files)
        manifest["release"] = release_manifest.next_release(manifest, previous)
        data = release_manifest.dumps(manifest)
        atomic.write_bytes(out / release_manifest.MANIFEST, data, tmp_dir)
        if self.config.sign_key is not None:
            comment = (
                f"expunge release sequence={manifest['release']['sequence']} "
                f"files_root={manifest['files_root']} merkle_root={manifest['merkle_root']}"
            )
            sig = release_sign.sign(data, self.config.sign_key, comment)
            atomic.write_bytes(out / release_manifest.SIGNATURE, sig, tmp_dir)
        if plan is not None:  # last: a run that dies before this point redraws the same cover
            save_state(self.store.cover_state(ds.id), plan.state, self.store.tmp)
        if tmp_dir != self.store.tmp:
            shutil.rmtree(tmp_dir, ignore_errors=True)
        report = StageReport(
            "clean",
            len(ds.shards),
            sum(not r.resumed for r in ordered),
            time.perf_counter() - started,
            {"resumed": sum(r.resumed for r in ordered), "out": str(out)},
        )
        self.ledger.append(asdict(report))
        return summary

    def state_dir(self, ds: Dataset, out: Path) -> Path:
        """Where the store keeps one release folder's markers and per-row records (never in OUT)."""
        return self.store.private_dir(ds.id, out)

    def _records(
        self, state_dir: Path, tasks: list[CleanTask], results: dict[str, CleanResult]
    ) -> tuple[pa.Table, list[str]]:
        """Every shard's removal records, concatenated, and every file the shards put in the release.

        A shard whose records do not list its files (written by an older expunge) is done again rather
        than trusted: without the list, a stale file in OUT could not be told from a fresh one.
        """
        for attempt in (1, 2):
            tables: list[pa.Table] = []
            outputs: list[str] = []
            redo: list[CleanTask] = []
            for task in tasks:
                marker, path = marker_paths(state_dir, task.shard_name)
                table, files = read_records(path)
                if files is None:
                    if attempt == 2:
                        raise RuntimeError(f"{task.shard_name}: records list no files")  # a bug
                    marker.unlink(missing_ok=True)
                    redo.append(task)
                    continue
                tables.append(table)
                outputs.extend(files)
            if not redo:
                break
            for res in self.executor.map(clean_shard, redo):
                results[res.shard] = res
        return (pa.concat_tables(tables) if tables else RECORD_SCHEMA.empty_table()), outputs

    def _previous_manifests(self, out: Path) -> list[tuple[dict[str, Any], bytes]]:
        """The manifests this release may follow: the one in OUT (read before anything replaces it)
        and ``--previous``. An unreadable one is refused: the sequence must never restart silently."""
        found = []
        for path in (out / release_manifest.MANIFEST, self.config.previous_manifest):
            if path is None or (path == out / release_manifest.MANIFEST and not path.is_file()):
                continue
            man = release_manifest.load(path)
            found.append((man, path.read_bytes()))
        return found

    def _release_files(self, out: Path, published: set[str], state_dir: Path) -> list[dict[str, Any]]:
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
        for done in self.executor.map(release_manifest.digest_files, batches, light=light):
            for path, size, sha in done:
                rel = path[prefix:].replace(os.sep, "/")
                entries[rel] = {"path": rel, "sha256": sha, "size": size}
        atomic.write_json(
            cache_path, {rel: [*stats[rel], entries[rel]["sha256"]] for rel in files}, self.store.tmp
        )
        return [entries[rel] for rel in files]

    def forget(self, ds: Dataset, shard: str) -> None:
        """Drop what the store knows of one shard, so the next stages index and match it afresh."""
        ds.state.pop(shard, None)
        _save_dataset(self.store, ds)
        for path in self._findings(ds, shard):
            path.unlink(missing_ok=True)

    def _cover_plan(
        self, ds: Dataset, banks: list[BankInfo], k: int, key: bytes, url_scope: bool, image_scope: bool
    ) -> CoverPlan:
        """Where the flagged rows are, which rows go anyway for a public reason, and which links are
        dead: row indices only, from the store's index and findings and the metadata's status column.
        The draw continues the dataset's earlier covered releases (their threshold and flagged rows)."""
        names = {b.name for b in banks}
        shards: dict[str, ShardCandidates] = {}
        for shard in ds.shards:
            index_dir = self._index_dir(ds, shard.name)
            q = read_quarantine(index_dir)
            path, _ = self._findings(ds, shard.name)
            findings = pq.read_table(path, columns=["row", "bank"]) if path.is_file() else None
            flagged = np.zeros(0, dtype=np.int64)
            if findings is not None and findings.num_rows:
                mine = findings.filter(pc.is_in(findings.column("bank"), pa.array(sorted(names))))
                flagged = np.unique(mine.column("row").to_numpy())
            quarantined = np.flatnonzero(q) if url_scope else np.zeros(0, dtype=np.int64)
            if image_scope and (index_dir / IMAGES_FILE).is_file():
                images = pq.read_table(index_dir / IMAGES_FILE, columns=["row", "error"])
                bad = images.filter(images.column("error").is_valid()).column("row").to_numpy()
                quarantined = np.union1d(quarantined, bad)
            quarantined = np.setdiff1d(quarantined, flagged)
            dead = np.zeros(0, dtype=np.int64)
            if shard.metadata and "status" in shard.handler.column_names(shard):
                status = np.concatenate(
                    [c.to_numpy(zero_copy_only=False) for c in shard.handler.iter_column(shard, "status")]
                    or [np.zeros(0)]
                )
                dead = np.setdiff1d(np.flatnonzero(status != "success"), np.union1d(flagged, quarantined))
            shards[shard.name] = ShardCandidates(len(q), flagged, quarantined, dead)
        previous = load_state(self.store.cover_state(ds.id))
        return plan_cover(k, shards, key, ds.id, previous)

    def write_ledger(self, command: str, extra: dict[str, Any] | None = None) -> Path:
        """One record per command: what ran, how long each stage took (timings live here, not in the
        release, so the release stays byte-identical across reruns)."""
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        path = self.store.run_record(stamp, command)
        atomic.write_json(
            path,
            {"command": command, "tool": __version__, "stages": self.ledger, **(extra or {})},
            self.store.tmp,
        )
        return path


def _is_incremental(task: MatchTask) -> bool:
    state = Path(task.state_path)
    if not state.is_file():
        return False
    known = atomic.read_json(state)
    return all(b.name in known for b in task.banks)


def _index_with_retry_on_change(task: IndexTask) -> IndexResult:
    return index_shard(task)


def _drop_stale_shards(state_dir: Path, out: Path, current: set[str]) -> None:
    """A shard that left the dataset since an earlier run into the same folder leaves the release too,
    with every file it had put there (its records list them)."""
    for marker in sorted(Store.private_shards(state_dir).glob("*.json")):
        shard = atomic.read_json(marker).get("shard")
        if not isinstance(shard, str) or shard in current:
            continue
        records = marker_paths(state_dir, shard)[1]
        files = read_records(records)[1] if records.is_file() else None
        for rel in files if files is not None else [shard]:
            path = out / rel
            if path.is_file() and not path.is_symlink():
                path.unlink()
        records.unlink(missing_ok=True)
        marker.unlink()  # last: a crash before this point redoes the cleanup


def _sweep(
    out: Path, published: set[str], previous: list[tuple[dict[str, Any], bytes]], *, signing: bool
) -> None:
    """Leave in OUT only what this release publishes, so the manifest can list every file.

    Files expunge itself put there are removed: those an earlier release listed (a shard that is now
    dropped, an image now flagged), temporaries, the old in-release state folder, unpublished records,
    a signature of an older manifest. Anything else is refused, never published and never deleted.
    """
    files, folders, odd = release_manifest.walk(out)
    if odd:
        raise ExpungeError(
            "the output folder holds a link or special file; a release holds files only", out / odd[0]
        )
    earlier: set[str] = set()
    for man, _ in previous:
        earlier.update(str(f.get("path")) for f in man.get("files", []) if isinstance(f, dict))
        earlier.update(str(sh.get("name")) for sh in man.get("shards", []) if isinstance(sh, dict))
    for rel in files:
        if (
            rel in published
            or rel == release_manifest.MANIFEST
            or (rel == release_manifest.SIGNATURE and signing)
        ):
            continue
        top = rel.split("/", 1)[0]
        ours = (
            rel in earlier
            or rel in (RECORDS, release_manifest.SIGNATURE)
            or top in (STATE_DIR, OUT_TMP)
            or PurePosixPath(rel).name.startswith(atomic.TMP_PREFIX)
        )
        if not ours:
            raise ExpungeError(
                "this file is not part of the release being written: move it away or choose another --out",
                out / rel,
            )
        (out / rel).unlink()
    needed = {str(parent) for rel in published for parent in PurePosixPath(rel).parents}
    for rel in sorted(folders, key=lambda f: -f.count("/")):
        if rel not in needed:
            with contextlib.suppress(OSError):  # not empty: a folder of published files
                (out / rel).rmdir()


def _check_shards(
    out: Path, shards: list[dict[str, Any]], files: list[dict[str, Any]], state_dir: Path
) -> None:
    """Each shard in OUT must be the one the clean stage wrote (its hash as ``verify`` computes it):
    a shard changed in OUT behind an unchanged size is never vouched for. Its marker is dropped, so
    the next run writes it again."""
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
        marker_paths(state_dir, shard["name"])[0].unlink(missing_ok=True)
        raise ExpungeError(
            "this shard in the output folder is not the one expunge wrote (changed by hand?); "
            "run again to rewrite it",
            out / shard["name"],
        )


def _out_tmp(out: Path) -> Path:
    """A temporary folder on OUT's filesystem but outside OUT: beside it, or inside it (removed at the
    end) when OUT is a mount point or its parent is not writable."""
    beside = out.parent / f".{out.name}.expunge-tmp"
    try:
        beside.mkdir(exist_ok=True)
        if os.stat(beside).st_dev == os.stat(out).st_dev:
            return beside
        beside.rmdir()
    except OSError:
        pass
    return out / OUT_TMP


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


def _same_device(a: Path, b: Path) -> bool:
    b.mkdir(parents=True, exist_ok=True)
    return os.stat(a).st_dev == os.stat(b).st_dev


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_out_location(store: Store, ds: Dataset, out: Path) -> Path:
    """Refuse an output folder that would overwrite or publish what it must not; returns it resolved.

    Paths are compared after resolving symlinks: a link to the dataset, or a dataset reached through
    a link, is the same folder. Checked before anything is created.
    """
    out = out.resolve()
    root = Path(ds.root).resolve()
    if _inside(out, root) or _inside(root, out):
        raise ExpungeError("the output folder must not contain, or lie inside, the dataset", out)
    for parent in out.parents:
        if (parent / release_manifest.MANIFEST).is_file():
            raise ExpungeError("the output folder must not lie inside another release", out)
    store_root = store.root.resolve()
    if _inside(out, store_root) or _inside(store_root, out):
        raise ExpungeError("the output folder must not contain, or lie inside, the store", out)
    for shard in ds.shards:
        for f in shard.handler.source_paths(shard):
            if _inside(Path(f).resolve(), out):
                raise ExpungeError("a dataset file lies inside the output folder (through a link?)", f)
        published = shard.handler.published_sources(shard)
        outputs = [shard.name] + [os.path.relpath(p, ds.root).replace(os.sep, "/") for p in published]
        for name in outputs:
            if name.split("/", 1)[0].lower() in RESERVED_NAMES:
                raise ExpungeError(
                    "this name is reserved for the release's own records; rename the file",
                    Path(ds.root) / name,
                )
    return out


def _check_out(ds: Dataset, out: Path, resuming: bool = False) -> None:
    # ``resuming``: this store has already written into OUT (its state lives in the store, not in OUT).
    is_release = resuming or (out / STATE_DIR).is_dir() or (out / release_manifest.MANIFEST).is_file()
    if out.exists() and not out.is_dir():
        raise ExpungeError("the output path exists and is not a folder", out)
    if out.exists() and any(out.iterdir()) and not is_release:
        raise ExpungeError("output folder exists, is not empty and is not an expunge release", out)


def _summary(ds: Dataset, banks: list[BankInfo], results: list[CleanResult]) -> dict[str, Any]:
    def add(into: dict[str, int], more: dict[str, int]) -> None:
        for k, v in more.items():
            into[k] = into.get(k, 0) + v

    by_signal: dict[str, int] = {}
    by_bank: dict[str, int] = {}
    by_reason: dict[str, int] = {}
    for r in results:
        add(by_signal, r.by_signal)
        add(by_bank, r.by_bank)
        add(by_reason, r.quarantined_by_reason)
    rows_in = sum(r.rows_in for r in results)
    summary = {
        "tool": f"expunge {__version__}",
        "dataset": {"root": ds.root, "shards": len(results), "url_column": ds.columns.url},
        "rows_in": rows_in,
        "rows_kept": sum(r.rows_kept for r in results),
        "rows_removed": sum(r.rows_removed for r in results),
        "rows_quarantined": sum(r.rows_quarantined for r in results),
        "removed_by_signal": by_signal,
        "removed_by_bank": by_bank,
        "quarantined_by_reason": by_reason,
        "images_low_quality": sum(r.images_low_quality for r in results),
        "shards_copied": sum(r.action in ("copied", "linked") for r in results),
        "shards_rewritten": sum(r.action == "rewritten" for r in results),
        "banks": [b.public() for b in banks],
        "shards": [
            {
                "name": r.shard,
                "rows_in": r.rows_in,
                "rows_kept": r.rows_kept,
                "rows_removed": r.rows_removed,
                "rows_quarantined": r.rows_quarantined,
                "action": "copied" if r.action == "linked" else r.action,
                "sha256": r.sha256,
            }
            for r in results
        ],
    }
    if sum(r.rows_kept + r.rows_removed + r.rows_quarantined for r in results) != rows_in:
        raise RuntimeError("row accounting does not add up")  # never expected: a bug, not bad input
    return summary
