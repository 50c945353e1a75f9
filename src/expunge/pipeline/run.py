"""The flow, stage by stage: index → match → clean, each a set of per-shard tasks on an executor.

The orchestrator owns all store metadata (dataset.json, ledgers); tasks own only their shard's files.
Every stage is incremental: rerunning after an interruption, or after a bank gains values, redoes only
what changed (``expunge.stages.done`` decides what is done). Planning lives in ``expunge.stages``,
the dataset model in ``pipeline.dataset``, release assembly in ``expunge.release.assemble``.
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from expunge import __version__, atomic
from expunge.config import RunConfig
from expunge.engine import Executor
from expunge.errors import ExpungeError
from expunge.lists.bank import BankInfo
from expunge.pipeline.dataset import Dataset, bank_infos, check_out_location, open_dataset, save_dataset
from expunge.progress import NullReporter, Reporter
from expunge.release import cover as release_cover
from expunge.release.assemble import ReleaseParts, assemble
from expunge.release.outdir import check_out, out_tmp, same_device
from expunge.stages import clean as clean_stage
from expunge.stages import flood
from expunge.stages import index as index_stage
from expunge.stages import match as match_stage
from expunge.stages import triage as triage_stage
from expunge.stages.base import StageReport
from expunge.stages.clean_task import CleanResult, CleanTask
from expunge.stages.decide import Decided, ShardTriage
from expunge.stages.tasks import clean_shard, index_shard, match_shard, soft_shard, tally_shard
from expunge.stages.triage import TriageRun
from expunge.store import Store

__all__ = ["Dataset", "Pipeline", "StageReport", "bank_infos", "check_out_location", "open_dataset"]


class Pipeline:
    def __init__(self, store: Store, executor: Executor, config: RunConfig | None = None) -> None:
        self.store = store.ensure()
        self.executor = executor
        self.config = config or RunConfig()
        self.reporter: Reporter = self.config.reporter or NullReporter()
        self.ledger: list[dict[str, Any]] = []
        self._neighbours: Path | None = None  # the neighbour findings of the last triage stage
        self._soft = False  # the last triage stage measured soft signals (scores, keywords, nsfw)
        self._writes = True  # the last flood tally found a shard whose removed rows changed
        self._decided: dict[str, Decided] = {}  # the tally's decisions, while no shard is to be written

    def _report(self, report: StageReport) -> StageReport:
        self.ledger.append(asdict(report))
        return report

    def index(self, ds: Dataset, banks: list[BankInfo]) -> StageReport:
        started = time.perf_counter()
        features = index_stage.features_for(ds, banks)
        tasks = index_stage.plan(self.store, ds, features)
        rows_done = images_done = 0
        hashing = index_stage.hashes_images(tasks)
        # Image hashing is the slow part of image datasets: show images and images/s, not shards.
        with self.reporter.bar(
            "index", None if hashing else len(tasks), "images" if hashing else "shards"
        ) as bar:
            for res in self.executor.map(index_shard, tasks):
                index_stage.record(self.store, ds, res)
                rows_done += max(res.rows, 0)
                images_done += res.images
                bar.advance(res.images if hashing else 1)
        save_dataset(self.store, ds)
        details = {"rows_read": rows_done, "images_hashed": images_done, "features": features}
        return self._report(
            StageReport("index", len(ds.shards), len(tasks), time.perf_counter() - started, details)
        )

    def match(self, ds: Dataset, banks: list[BankInfo]) -> StageReport:
        started = time.perf_counter()
        tasks = match_stage.plan(self.store, ds, banks, self.config.quality_floor)
        modes: dict[str, int] = {}
        with self.reporter.bar("match", len(tasks), "shards") as bar:
            # Incremental re-matches read a little of the index and nothing of the dataset.
            light = all(t.banks and match_stage.is_incremental(t) for t in tasks)
            for res in self.executor.map(match_shard, tasks, light=light):
                for m in res.mode.values():
                    modes[m] = modes.get(m, 0) + 1
                bar.advance(1)
        seconds = time.perf_counter() - started
        return self._report(StageReport("match", len(ds.shards), len(tasks), seconds, {"modes": modes}))

    def findings_summary(self, ds: Dataset, banks: list[BankInfo]) -> dict[str, int]:
        """Rows matched per bank across the dataset (from stored findings, no dataset reads)."""
        return match_stage.summary(self.store, ds, banks)

    def triage(self, ds: Dataset, banks: list[BankInfo], run: TriageRun) -> StageReport:
        """The soft signals the policy asks for (per shard), then the neighbour expansion (dataset-wide)."""
        started = time.perf_counter()
        tasks = triage_stage.soft_tasks(self.store, ds, run)
        self._soft = bool(tasks)
        counts: dict[str, int] = {}
        current = 0
        with self.reporter.bar("triage", len(tasks), "shards") as bar:
            for res in self.executor.map(soft_shard, tasks):
                current += res.done
                for k, v in res.counts.items():
                    counts[k] = counts.get(k, 0) + v
                bar.advance(1)
        self._neighbours, expansion = triage_stage.neighbours(self.store, ds, banks, run)
        details: dict[str, Any] = {"soft_rows": counts, "current": current, "neighbours": expansion}
        report = StageReport(
            "triage", len(ds.shards), len(tasks) - current, time.perf_counter() - started, details
        )
        # A policy of hash lists only has no triage work: the ledger and report show only stages that ran.
        return self._report(report) if tasks or expansion else report

    def clean(
        self,
        ds: Dataset,
        banks: list[BankInfo],
        out: Path,
        cover: int = 0,
        triage: TriageRun | None = None,
    ) -> dict[str, Any]:
        started = time.perf_counter()
        out = check_out_location(self.store, ds, out)
        if cover and self.config.publish_records:
            raise ExpungeError("--publish-records would name the rows that --cover hides: choose one", out)
        # Per-row records and completion markers never enter the release: they stay in the store, in a
        # folder keyed by the resolved output path. OUT holds published files only.
        state_dir = self.state_dir(ds, out)
        shard_triage = self._shard_triage(ds, triage)
        tally = self._flood_guard(ds, banks, out, state_dir, cover, shard_triage, triage)
        check_out(out, resuming=Store.private_shards(state_dir).is_dir())
        Store.private_shards(state_dir).mkdir(parents=True, exist_ok=True)
        out.mkdir(parents=True, exist_ok=True)
        # Temporaries for OUT on OUT's filesystem (a rename cannot cross devices); those for the store
        # go to the store's tmp/ (atomic.py falls back per destination when a folder is elsewhere).
        tmp_dir = self.store.tmp if same_device(self.store.tmp, out) else out_tmp(out)
        plan = self._cover_plan(ds, banks, cover) if cover else None
        tasks = self._clean_tasks(
            ds, banks, out, state_dir, tmp_dir, plan.rows if plan else None, shard_triage
        )
        if plan is None and not self._writes:
            # An update that writes no shard: each clean task takes the tally's decision, made moments ago
            # in this process from the same inputs, instead of reading the findings to make it again.
            tasks = [replace(t, decided=self._decided.get(t.shard_name)) for t in tasks]
        results: dict[str, CleanResult] = {}
        with self.reporter.bar("clean", len(tasks), "shards") as bar:
            # An update that changes no shard's removed rows only rewrites records: no pool for that.
            for res in self.executor.map(clean_shard, tasks, light=not self._writes):
                results[res.shard] = res
                bar.advance(1)
        clean_stage.drop_stale_shards(state_dir, out, {s.name for s in ds.shards})
        records, outputs = clean_stage.records(state_dir, tasks, results, self.executor)
        ordered = [results[s.name] for s in ds.shards]
        inputs = [
            {"name": s.name, "sha256": ds.state[s.name]["sha256"], "rows": ds.state[s.name]["rows"]}
            for s in ds.shards
        ]
        parts = ReleaseParts(
            out=out,
            state_dir=state_dir,
            tmp_dir=tmp_dir,
            dataset_id=ds.id,
            name=Path(ds.root).name,
            shards=ds.shards,
            inputs=inputs,
            summary=clean_stage.summary(ds, banks, ordered, triage.public() if triage is not None else None),
            records=records,
            outputs=outputs,
            cover=plan,
        )
        summary = assemble(self.store, self.executor, self.config, parts)
        flood.save(self.store.flood_state(ds.id), tally, self.store.tmp)
        if triage is not None and triage.review is not None:
            self._enqueue(triage, ordered)
        if tmp_dir != self.store.tmp:
            shutil.rmtree(tmp_dir, ignore_errors=True)
        resumed = sum(r.resumed for r in ordered)
        details = {"resumed": resumed, "out": str(out)}
        seconds = time.perf_counter() - started
        self._report(StageReport("clean", len(ds.shards), len(ordered) - resumed, seconds, details))
        return summary

    def _clean_tasks(
        self,
        ds: Dataset,
        banks: list[BankInfo],
        out: Path,
        state_dir: Path,
        tmp_dir: Path,
        cover_rows: dict[str, list[int]] | None,
        shard_triage: dict[str, ShardTriage] | None,
    ) -> list[CleanTask]:
        """The clean stage's tasks: the flood tally decides them without writing, the clean writes them."""
        floor = self.config.quality_floor
        return clean_stage.plan(
            self.store, ds, banks, out, state_dir, tmp_dir, floor, cover_rows, shard_triage
        )

    def _shard_triage(self, ds: Dataset, run: TriageRun | None) -> dict[str, ShardTriage] | None:
        if run is None:
            return None
        path = getattr(self, "_neighbours", None)
        soft = self._soft
        return {s.name: triage_stage.shard_triage(self.store, ds, run, s.name, path, soft) for s in ds.shards}

    def _flood_guard(
        self,
        ds: Dataset,
        banks: list[BankInfo],
        out: Path,
        state_dir: Path,
        cover: int,
        shard_triage: dict[str, ShardTriage] | None,
        run: TriageRun | None,
    ) -> flood.Tally:
        """Count what every bank and rule would decide, and stop before anything is written when one is
        over its limit (``stages/flood.py``)."""
        tasks = self._clean_tasks(ds, banks, out, state_dir, self.store.tmp, None, shard_triage)
        tally = flood.Tally()
        self._writes = False
        self._decided = {}
        # Reading findings is light: it runs here unless the workers are already up.
        for name, decided, writes in self.executor.map(tally_shard, tasks, light=True):
            tally.add(decided)
            self._writes = self._writes or writes
            if not self._writes:  # kept only while no shard is to be written (the clean then runs here)
                self._decided[name] = decided
        if self._writes:
            self._decided = {}
        rule_shares = {r.name: r.max_share for r in run.policy.rules} if run is not None else {}
        flood.check(
            tally,
            flood.load(self.store.flood_state(ds.id)),
            share=self.config.flood_share,
            multiple=self.config.flood_multiple,
            min_rows=self.config.flood_min_rows,
            rule_shares=rule_shares,
            accept=self.config.accept_flood,
            where=Path(ds.root),
        )
        return tally

    def _enqueue(self, run: TriageRun, results: list[CleanResult]) -> None:
        """Rows a review rule withheld join the review queue (rows it already knows keep their state)."""
        from expunge.review.queue import Candidates

        assert run.review is not None
        shards: list[str] = []
        rows: list[int] = []
        rules: list[list[str]] = []
        signals: list[str] = []
        for r in results:
            for row, row_rules, row_signals in r.review:
                shards.append(r.shard)
                rows.append(int(row))
                rules.append(list(row_rules))
                signals.append(str(row_signals))
        if rows:
            now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            run.review.enqueue(Candidates(shards, np.array(rows, dtype=np.int64), rules, signals), now)

    def state_dir(self, ds: Dataset, out: Path) -> Path:
        """Where the store keeps one release folder's markers and per-row records (never in OUT)."""
        return self.store.private_dir(ds.id, out)

    def forget(self, ds: Dataset, shard: str) -> None:
        """Drop what the store knows of one shard, so the next stages index and match it afresh."""
        index_stage.forget(self.store, ds, shard)
        save_dataset(self.store, ds)

    def _cover_plan(self, ds: Dataset, banks: list[BankInfo], k: int) -> release_cover.CoverPlan:
        """The cover for this release: each shard's candidates come from a task beside its data (the
        status column is read there, not here); the draw continues the dataset's earlier covered
        releases (their threshold and flagged rows)."""
        url_scope, image_scope = clean_stage.scopes(banks)
        names = tuple(sorted({b.name for b in banks}))
        tasks = [
            release_cover.CandidatesTask(
                shard,
                str(self.store.index_dir(ds.id, shard.name)),
                str(self.store.findings(ds.id, shard.name)[0]),
                names,
                url_scope,
                image_scope,
            )
            for shard in ds.shards
        ]
        shards = dict(self.executor.map(release_cover.shard_candidates, tasks))
        previous = release_cover.load_state(self.store.cover_state(ds.id))
        return release_cover.plan_cover(k, shards, self.store.key(), ds.id, previous)

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
