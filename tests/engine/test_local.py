"""The local executor: every task runs once, results come back whatever the worker count, and a
worker's ExpungeError reaches the caller intact (file and place), so the CLI can print one line."""

from __future__ import annotations

import os

import pytest

from expunge.engine import make_executor
from expunge.engine.local import LocalExecutor
from expunge.errors import ExpungeError


def square_and_pid(x: int) -> tuple[int, int]:
    return x * x, os.getpid()


def fail_on_three(x: int) -> int:
    if x == 3:
        raise ExpungeError("bad shard", f"shard-{x}.parquet", "row 7")
    return x


@pytest.mark.parametrize("workers", [1, 2])
def test_every_task_runs_once(workers: int) -> None:
    with LocalExecutor(workers) as ex:
        results = list(ex.map(square_and_pid, list(range(20))))
    assert sorted(r for r, _ in results) == [x * x for x in range(20)]
    pids = {pid for _, pid in results}
    assert (pids == {os.getpid()}) == (workers == 1)


def test_light_work_stays_in_process_until_workers_are_up() -> None:
    with LocalExecutor(2) as ex:
        assert {pid for _, pid in ex.map(square_and_pid, [1, 2, 3], light=True)} == {os.getpid()}
        list(ex.map(square_and_pid, [1, 2, 3]))  # starts the pool
        assert os.getpid() not in {pid for _, pid in ex.map(square_and_pid, [1, 2, 3], light=True)}


def test_worker_errors_keep_file_and_place() -> None:
    with LocalExecutor(2) as ex, pytest.raises(ExpungeError) as err:
        list(ex.map(fail_on_three, list(range(6))))
    assert err.value.one_line() == "shard-3.parquet:row 7: bad shard"


def test_unknown_executor_is_a_clear_error() -> None:
    with pytest.raises(ExpungeError, match="unknown executor"):
        make_executor("spark")


def test_workers_start_when_the_caller_is_a_script_on_standard_input(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    script = "from expunge.engine.local import LocalExecutor\n" \
        "with LocalExecutor(2) as ex:\n" \
        "    print(sorted(ex.map(abs, [-3, -2, -1, 0])))\n"  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-"], input=script, capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[0, 1, 2, 3]"
