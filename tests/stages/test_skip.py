"""Each stage skips done work and redoes changed work, through ``stages.done``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from expunge import atomic
from expunge.config import RunConfig
from expunge.engine import make_executor
from expunge.features.base import parse_feature
from expunge.lists.bank import BankInfo, import_list
from expunge.pipeline.dataset import Dataset, bank_infos, open_dataset
from expunge.pipeline.run import Pipeline
from expunge.stages import done
from expunge.stages import index as index_stage
from expunge.stages import match as match_stage
from expunge.store import Store
from tests.conftest import SmallDataset, build_small_dataset


@dataclass
class Run:
    store: Store
    pipeline: Pipeline
    ds: Dataset
    banks: list[BankInfo]
    data: SmallDataset


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Run]:
    data = build_small_dataset(tmp_path / "data", shards=3, rows_per_shard=300, row_group_size=100)
    store = Store(tmp_path / "store").ensure()
    import_list(store, data.lists["iwf"], "iwf", "url_md5", None, "test")
    executor = make_executor("local", 1)
    try:
        pipeline = Pipeline(store, executor, RunConfig(store=tmp_path / "store", workers=1))
        ds = open_dataset(store, [str(data.root)])
        yield Run(store, pipeline, ds, bank_infos(store, None), data)
    finally:
        executor.close()


def test_index_skips_done_shards_and_redoes_touched_or_missing_work(run: Run) -> None:
    assert run.pipeline.index(run.ds, run.banks).shards_run == 3
    features = index_stage.features_for(run.ds, run.banks)
    assert index_stage.plan(run.store, run.ds, features) == []
    assert run.pipeline.index(run.ds, run.banks).shards_run == 0
    first, second = run.ds.shards[0], run.ds.shards[1]
    # Touched: the fingerprint (size, mtime) no longer matches the record; bytes are re-hashed only.
    st = os.stat(first.files[0])
    os.utime(first.files[0], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    # A feature whose file is gone is redone, alone.
    feature = features[0]
    (run.store.index_dir(run.ds.id, second.name) / parse_feature(feature).file).unlink()
    (touched, missing) = sorted(index_stage.plan(run.store, run.ds, features), key=lambda t: t.shard.name)
    assert touched.shard.name == first.name and touched.known_sha256 is not None
    assert touched.features == () and not touched.rows_needed
    assert missing.shard.name == second.name and missing.features == (feature,) and not missing.rows_needed
    assert run.pipeline.index(run.ds, run.banks).shards_run == 2
    assert index_stage.plan(run.store, run.ds, features) == []


def test_match_skips_current_findings_and_redoes_changed_banks(run: Run) -> None:
    run.pipeline.index(run.ds, run.banks)
    assert run.pipeline.match(run.ds, run.banks).shards_run == 3
    assert match_stage.plan(run.store, run.ds, run.banks, 50) == []
    findings, state = run.store.findings(run.ds.id, run.ds.shards[0].name)
    # A record naming an older bank version: redone, incrementally.
    record = done.read_record(state)
    assert record == {"iwf": 1}
    done.mark_done(state, {"iwf": 0}, run.store.tmp)
    (task,) = match_stage.plan(run.store, run.ds, run.banks, 50)
    assert task.shard_name == run.ds.shards[0].name and match_stage.is_incremental(task)
    run.pipeline.match(run.ds, run.banks)
    assert done.read_record(state) == {"iwf": 1}
    # Findings gone behind a current record: redone.
    findings.unlink()
    redo = match_stage.plan(run.store, run.ds, run.banks, 50)
    assert [t.shard_name for t in redo] == [run.ds.shards[0].name]


def test_clean_skips_done_shards_and_redoes_a_changed_plan(run: Run, tmp_path: Path) -> None:
    run.pipeline.index(run.ds, run.banks)
    run.pipeline.match(run.ds, run.banks)
    out = tmp_path / "out"
    run.pipeline.clean(run.ds, run.banks, out)
    assert run.pipeline.ledger[-1]["shards_run"] == 3
    run.pipeline.clean(run.ds, run.banks, out)
    assert run.pipeline.ledger[-1]["details"]["resumed"] == 3
    state_dir = run.pipeline.state_dir(run.ds, out.resolve())
    marker = Store.clean_marker(state_dir, run.ds.shards[1].name)[0]
    record = done.read_record(marker)
    assert record is not None
    atomic.write_json(marker, {**record, "plan": "an older decision"}, run.store.tmp)
    run.pipeline.clean(run.ds, run.banks, out)
    assert run.pipeline.ledger[-1]["shards_run"] == 1
    assert done.read_record(marker) == record  # redone to the same record
