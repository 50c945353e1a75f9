"""The local executor: every task runs once, results come back whatever the worker count, and a
worker's ExpungeError reaches the caller intact (file and place), so the CLI can print one line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

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
    script = "from expunge.engine.local import LocalExecutor\n" \
        "with LocalExecutor(2) as ex:\n" \
        "    print(sorted(ex.map(abs, [-3, -2, -1, 0])))\n"  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-"], input=script, capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[0, 1, 2, 3]"


# ---------------------------------------------------------------------------------------------------
# Workers and the forkserver end with the process that made the pool, however it ends (issue 8, #18).


def spin(seconds: float) -> float:
    """Busy in Python (the interpreter lock changes hands only at switch intervals), not asleep."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return seconds


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


_OWNER = """
import sys, time
from expunge.engine.local import LocalExecutor
from tests.engine.test_local import spin, square_and_pid
ex = LocalExecutor(2)
pids = {pid for _, pid in ex.map(square_and_pid, list(range(8)))}
print(*sorted(pids), flush=True)
if sys.argv[1] == "busy":
    list(ex.map(spin, [600.0, 600.0]))
time.sleep(600)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.timeout(120)
@pytest.mark.parametrize("workers_are", ["idle", "busy"])
def test_workers_and_forkserver_end_when_the_owner_is_killed(workers_are: str) -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", _OWNER, workers_are],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        start_new_session=True,
    )
    children: set[int] = set()
    try:
        assert owner.stdout is not None
        workers = {int(pid) for pid in owner.stdout.readline().split()}
        assert len(workers) == 2, "the pool was expected to start two workers"
        children = workers | {_parent(pid) for pid in workers}  # and the forkserver
        assert owner.pid not in children and len(children) == 3
        time.sleep(0.5)  # busy: the workers are inside their tasks now
        os.kill(owner.pid, signal.SIGKILL)
        owner.wait(timeout=30)
        deadline = time.monotonic() + 5
        while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [pid for pid in children if _alive(pid)], "workers or forkserver outlived their owner"
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()
        for pid in children:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_pool_started_by_a_thread_that_ended_keeps_working() -> None:
    """The parent-death signal follows the parent *thread*: only the workers (whose parent is the
    forkserver's one thread) may use it, never the forkserver, whose parent thread may be short-lived."""
    with LocalExecutor(2) as ex:
        first: list[tuple[int, int]] = []
        starter = threading.Thread(target=lambda: first.extend(ex.map(square_and_pid, list(range(4)))))
        starter.start()
        starter.join()
        time.sleep(0.3)  # time enough for a wrongly armed signal to land
        again = list(ex.map(square_and_pid, list(range(8))))
    assert sorted(r for r, _ in again) == [x * x for x in range(8)]
    assert {pid for _, pid in again} == {pid for _, pid in first}  # the same workers, still alive


def test_a_closed_executor_starts_a_fresh_pool() -> None:
    ex = LocalExecutor(2)
    try:
        before = {pid for _, pid in ex.map(square_and_pid, list(range(6)))}
        ex.close()
        after = list(ex.map(square_and_pid, list(range(6))))
    finally:
        ex.close()
    assert sorted(r for r, _ in after) == [x * x for x in range(6)]
    assert not before & {pid for _, pid in after}
    assert not [pid for pid in before if _alive(pid)]
