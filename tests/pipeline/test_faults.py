"""Kill ``clean`` and ``apply`` at every rename and fsync they make, rerun, and compare (issue 8).

Each durable-write event is a point where a power cut or SIGKILL can land. After a death at any of
them, nothing partial may be visible in the output folder, and the same command, rerun, must give a
release byte-identical to an uninterrupted run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import build_small_dataset, tree_bytes
from tests.faults import KILLED, cli_command


def _run(args: list[str], at: int = 0, log: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, EXPUNGE_FAULT_AT=str(at))
    if log is not None:
        env["EXPUNGE_FAULT_LOG"] = str(log)
    return subprocess.run(
        cli_command(args), capture_output=True, text=True, timeout=300, env=env, stdin=subprocess.DEVNULL
    )


def _fresh_store(tmp: Path, key: bytes, name: str) -> Path:
    store = tmp / name
    shutil.rmtree(store, ignore_errors=True)
    store.mkdir()
    (store / "key").write_bytes(key)  # keyed hashes must agree with the reference run's
    return store


def _check_partial(out: Path, reference: dict[str, bytes]) -> None:
    if not out.exists():
        return
    for rel, data in tree_bytes(out).items():
        assert rel in reference, f"unexpected file visible after a kill: {rel}"
        assert data == reference[rel], f"partial or stale file visible after a kill: {rel}"


def _die_then_rerun(tmp: Path, make: Any, reference: dict[str, bytes], key: bytes, at: int) -> None:
    """Die at event ``at`` in a fresh store and output folder, check nothing partial shows, rerun."""
    store = _fresh_store(tmp, key, f"store-{at}")
    out = tmp / f"out-{at}"
    died = _run(make(store, out), at=at)
    assert died.returncode == KILLED, (at, died.returncode, died.stderr)
    _check_partial(out, reference)
    again = _run(make(store, out))
    assert again.returncode == 0, (at, again.stderr)
    assert tree_bytes(out) == reference, f"rerun after a death at event {at} differs"
    shutil.rmtree(store, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)


def _every_event(tmp: Path, make: Any, reference: dict[str, bytes], key: bytes) -> int:
    """Count the events of one run, then die at each in turn and rerun; returns the event count.

    Each event gets its own store and output folder (the output path is not part of the release's
    bytes), so two run side by side: the check costs half the wall time on two cores.
    """
    store = _fresh_store(tmp, key, "count-store")
    counted = _run(make(store, tmp / "count-out"), log=tmp / "count.log")
    assert counted.returncode == 0, counted.stderr
    assert tree_bytes(tmp / "count-out") == reference
    total = int((tmp / "count.log").read_text())
    assert total > 5
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = [pool.submit(_die_then_rerun, tmp, make, reference, key, at) for at in range(1, total + 1)]
        for done in runs:
            done.result()
    return total


@pytest.mark.timeout(1200)
def test_clean_killed_at_every_rename_and_fsync(tmp_path: Path) -> None:
    ds = build_small_dataset(tmp_path, shards=2, rows_per_shard=300, row_group_size=100)
    lists = [
        "--list", f"{ds.lists['iwf']}:url_md5", "--list", f"{ds.lists['c3p']}:url_sha1:canonical",
    ]  # fmt: skip

    def args(store: Path, out: Path) -> list[str]:
        where = ["--store", str(store), "--out", str(out)]
        return ["clean", str(ds.root), *lists, *where, "-q", "--workers", "1"]

    ref = _run(args(tmp_path / "ref-store", tmp_path / "ref"))
    assert ref.returncode == 0, ref.stderr
    key = (tmp_path / "ref-store" / "key").read_bytes()
    _every_event(tmp_path, args, tree_bytes(tmp_path / "ref"), key)


@pytest.mark.timeout(1200)
def test_apply_killed_at_every_rename_and_fsync(tmp_path: Path) -> None:
    ds = build_small_dataset(tmp_path, shards=2, rows_per_shard=300, row_group_size=100)
    release = tmp_path / "release"
    made = _run(
        ["clean", str(ds.root), "--list", f"{ds.lists['iwf']}:url_md5", "--store", str(tmp_path / "rs"),
         "--out", str(release), "-q", "--workers", "1"]
    )  # fmt: skip
    assert made.returncode == 0, made.stderr

    def args(store: Path, out: Path) -> list[str]:
        where = ["--store", str(store), "--out", str(out)]
        return ["apply", str(release), str(ds.root), *where, "-q", "--workers", "1"]

    ref = _run(args(tmp_path / "ref-store", tmp_path / "ref"))
    assert ref.returncode == 0, ref.stderr
    key = (tmp_path / "ref-store" / "key").read_bytes()
    _every_event(tmp_path, args, tree_bytes(tmp_path / "ref"), key)
