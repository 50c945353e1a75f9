"""A killed run leaves nothing behind: no worker, no forkserver, no resource tracker, no named semaphore.

The real CLI runs with a marker in its environment, which every process it starts inherits (the
forkserver and resource tracker are exec'd with the caller's environment, workers are forked from the
forkserver), so the run's processes are found in /proc whenever they were started. The CLI alone is
SIGKILLed, as an OOM killer or a scheduler would, at several moments; a few seconds later no process
of the run may be alive and the semaphores the run had mapped must be gone from /dev/shm.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import SmallDataset, build_small_dataset

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

MARK = "EXPUNGE_ORPHAN_TEST"


class Run:
    """One CLI run, marked so that all of its processes can be found."""

    def __init__(self, cmd: list[str]) -> None:
        self.token = uuid.uuid4().hex
        self._needle = f"{MARK}={self.token}".encode()
        self.sems: set[str] = set()
        self.seen: set[int] = set()
        self.proc = subprocess.Popen(
            cmd,
            env={**os.environ, MARK: self.token},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def processes(self) -> dict[int, tuple[int, str]]:
        """Live (not zombie) processes of this run: pid → (ppid, command line)."""
        found: dict[int, tuple[int, str]] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if self._needle not in (entry / "environ").read_bytes().split(b"\0"):
                    continue
                state, ppid = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:2]
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:  # gone meanwhile, or not ours
                continue
            if state not in ("Z", "X"):
                found[int(entry.name)] = (int(ppid), cmdline)
        return found

    def snapshot(self) -> dict[int, tuple[int, str]]:
        """Record the run's processes and the named semaphores they map."""
        procs = self.processes()
        self.seen |= procs.keys()
        for pid in procs:
            try:
                maps = Path(f"/proc/{pid}/maps").read_text()
            except OSError:
                continue
            self.sems |= {line.rsplit("/", 1)[1] for line in maps.splitlines() if "/dev/shm/sem.mp-" in line}
        return procs

    def workers(self) -> set[int]:
        procs = self.snapshot()
        servers = {
            pid for pid, (ppid, _) in procs.items() if ppid == self.proc.pid and "forkserver" in procs[pid][1]
        }
        return {pid for pid, (ppid, _) in procs.items() if ppid in servers}

    def wait_for(self, ready: Callable[[], bool], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            assert self.proc.poll() is None, "the run ended before the kill point"
            assert time.monotonic() < deadline, "the kill point never came"
            time.sleep(0.01)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        self.snapshot()
        assert self.proc.poll() is None, "the run ended before the kill point"
        os.kill(self.proc.pid, sig)  # the CLI only, not its process group: its children must follow it
        self.proc.wait(timeout=30)

    def leftovers(self, within: float = 5.0) -> tuple[dict[int, tuple[int, str]], set[str]]:
        """What of the run is still there after ``within`` seconds (returns early when nothing is)."""
        deadline = time.monotonic() + within
        while True:
            procs = self.processes()
            sems = {name for name in self.sems if Path("/dev/shm", name).exists()}
            if (not procs and not sems) or time.monotonic() > deadline:
                return procs, sems
            time.sleep(0.05)

    def cleanup(self) -> None:
        """Whatever the assertions said, end this run's processes so that one failure does not leak."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        # The resource tracker last: it unlinks the run's semaphores once everything else is gone.
        for last in (False, True):
            procs = self.processes()
            for pid, (_, cmd) in procs.items():
                if ("resource_tracker" in cmd) == last:
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)
            if not last and procs:
                time.sleep(1.0)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> SmallDataset:
    return build_small_dataset(
        tmp_path_factory.mktemp("orphans"), shards=4, rows_per_shard=10_000, row_group_size=2_500
    )


def _cmd(ds: SmallDataset, base: Path) -> list[str]:
    return [
        sys.executable, "-m", "expunge.cli", "clean", str(ds.root),
        "--list", f"{ds.lists['iwf']}:url_md5", "--list", f"{ds.lists['c3p']}:url_sha1:canonical",
        "--store", str(base / "store"), "--out", str(base / "out"), "--workers", "2", "--quiet", "--json",
    ]  # fmt: skip


def _forkserver_up(run: Run) -> bool:
    return any("forkserver" in cmd for _, cmd in run.snapshot().values())


def _workers_up(run: Run) -> bool:
    return len(run.workers()) >= 2


def _workers_busy(run: Run) -> bool:
    """Workers up for a while: in the middle of their tasks (indexing or matching a shard)."""
    if not _workers_up(run):
        return False
    started = time.monotonic()
    while time.monotonic() - started < 0.3 and run.proc.poll() is None:
        run.snapshot()
        time.sleep(0.02)
    return True


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "kill_point",
    [_forkserver_up, _workers_up, _workers_busy],
    ids=["forkserver-starting", "workers-starting", "workers-busy"],
)
def test_a_killed_run_leaves_no_process_and_no_semaphore(
    dataset: SmallDataset, tmp_path: Path, kill_point: Callable[[Run], bool]
) -> None:
    run = Run(_cmd(dataset, tmp_path))
    try:
        run.wait_for(lambda: kill_point(run))
        assert len(run.seen) >= 2  # the CLI and at least the forkserver (or tracker) were seen
        run.kill()
        procs, sems = run.leftovers()
        assert not procs, f"processes of the killed run still alive: {procs}"
        assert not sems, f"named semaphores of the killed run left in /dev/shm: {sorted(sems)}"
    finally:
        run.cleanup()


@pytest.mark.timeout(120)
def test_a_killed_run_leaves_nothing_after_sigterm(dataset: SmallDataset, tmp_path: Path) -> None:
    """SIGTERM, what schedulers send first, ends the CLI without running its cleanup either."""
    run = Run(_cmd(dataset, tmp_path))
    try:
        run.wait_for(lambda: _workers_up(run))
        run.kill(signal.SIGTERM)
        procs, sems = run.leftovers()
        assert not procs, f"processes of the terminated run still alive: {procs}"
        assert not sems, f"named semaphores of the terminated run left in /dev/shm: {sorted(sems)}"
    finally:
        run.cleanup()


@pytest.mark.timeout(120)
def test_a_normal_run_ends_every_process_and_leaks_no_semaphore(
    dataset: SmallDataset, tmp_path: Path
) -> None:
    run = Run(_cmd(dataset, tmp_path))
    try:
        while run.proc.poll() is None:
            run.snapshot()
            time.sleep(0.02)
        assert run.proc.returncode == 0, run.proc.stderr.read() if run.proc.stderr else ""
        assert run.sems, "the run was expected to use worker processes"
        procs, sems = run.leftovers(within=2.0)
        assert not procs, f"processes of a finished run still alive: {procs}"
        assert not sems, f"a finished run left named semaphores in /dev/shm: {sorted(sems)}"
        assert run.proc.stderr is not None
        err = run.proc.stderr.read()
        assert b"leaked" not in err and b"Traceback" not in err, err[-2000:]
    finally:
        run.cleanup()
