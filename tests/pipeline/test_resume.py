"""A run killed with SIGKILL at any point, then rerun, gives output byte-identical to a clean run.

The real CLI runs in its own process group (workers included) and is killed at a spread of moments
through indexing, matching and cleaning. After every kill, nothing partial may be visible in the
output folder: each file there is either absent or already complete and final.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.conftest import build_small_dataset, tree_bytes


def _cmd(ds_root: Path, lists: dict[str, Path], store: Path, out: Path) -> list[str]:
    return [
        sys.executable, "-m", "expunge.cli", "clean", str(ds_root),
        "--list", f"{lists['iwf']}:url_md5", "--list", f"{lists['c3p']}:url_sha1:canonical",
        "--store", str(store), "--out", str(out), "--workers", "2", "--quiet", "--json",
    ]  # fmt: skip


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)


def _assert_nothing_partial(out: Path, reference: dict[str, bytes]) -> None:
    for rel, data in tree_bytes(out).items():
        assert rel in reference, f"unexpected file after kill: {rel}"
        assert data == reference[rel], f"partial or different file visible after kill: {rel}"


def _kill_at(
    cmd: list[str], full: float, fractions: tuple[float, ...], out: Path, reference: dict[str, bytes]
) -> int:
    """Start the run and SIGKILL its whole process group at each fraction of a full run's time; after
    every kill, check that nothing partial is visible. Returns how many runs were actually killed."""
    kills = 0
    for fraction in fractions:
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        time.sleep(full * fraction)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
        if out.exists():
            _assert_nothing_partial(out, reference)
    return kills


@pytest.mark.timeout(900)
def test_sigkill_at_any_point_then_rerun_is_byte_identical(tmp_path: Path) -> None:
    ds = build_small_dataset(tmp_path, shards=6, rows_per_shard=40_000, row_group_size=5_000)
    ref_out = tmp_path / "ref-out"
    started = time.perf_counter()
    done = _run(_cmd(ds.root, ds.lists, tmp_path / "ref-store", ref_out))
    full = time.perf_counter() - started
    assert done.returncode == 0, done.stderr
    reference = tree_bytes(ref_out)
    # Keyed hashes depend on the store's key: kill runs share one store, so give it the same key.
    store = tmp_path / "store"
    store.mkdir()
    (store / "key").write_bytes((tmp_path / "ref-store" / "key").read_bytes())
    out = tmp_path / "out"
    kills = _kill_at(
        _cmd(ds.root, ds.lists, store, out),
        full,
        (0.05, 0.15, 0.3, 0.45, 0.6, 0.75, 0.9, 0.97),
        out,
        reference,
    )
    assert kills >= 3, "the run finished too fast to be interrupted; make the dataset bigger"
    final = _run(_cmd(ds.root, ds.lists, store, out))
    assert final.returncode == 0, final.stderr
    assert tree_bytes(out) == reference
    for shard in ds.root.glob("*.parquet"):
        pq.read_table(out / shard.name)  # and every shard reads back


@pytest.mark.timeout(900)
def test_sigkill_on_image_shards_then_rerun_is_byte_identical(tmp_path: Path) -> None:
    from expunge.demo.synth_images import generate_image_dataset, write_image_lists

    ds = generate_image_dataset(tmp_path / "data", samples=1_200, shards=4, listed=8)
    lists = write_image_lists(ds, tmp_path / "lists", listed=8)

    def cmd(store: Path, out: Path) -> list[str]:
        return [
            sys.executable, "-m", "expunge.cli", "clean", str(ds.root),
            "--list", f"{lists['pdq']}:pdq", "--list", f"{lists['image_md5']}:image_md5",
            "--store", str(store), "--out", str(out), "--workers", "2", "--quiet", "--json",
        ]  # fmt: skip

    started = time.perf_counter()
    done = _run(cmd(tmp_path / "ref-store", tmp_path / "ref-out"))
    full = time.perf_counter() - started
    assert done.returncode == 0, done.stderr
    reference = tree_bytes(tmp_path / "ref-out")
    store, out = tmp_path / "store", tmp_path / "out"
    store.mkdir()
    (store / "key").write_bytes((tmp_path / "ref-store" / "key").read_bytes())
    kills = _kill_at(cmd(store, out), full, (0.1, 0.35, 0.6, 0.85), out, reference)
    assert kills >= 2
    final = _run(cmd(store, out))
    assert final.returncode == 0, final.stderr
    assert tree_bytes(out) == reference
