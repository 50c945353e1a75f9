"""The default executor: a pool of worker processes on this machine (inline when one worker)."""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import multiprocessing.forkserver
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from multiprocessing.connection import Connection
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


@contextlib.contextmanager
def _main_without_a_bogus_file() -> Iterator[None]:
    """Let workers start when the caller's ``__main__`` has no file (``python -`` or ``-c``).

    Spawned and forkserver workers re-run the parent's main module from ``__main__.__file__``; for a script
    read from standard input that is ``<stdin>``, which does not exist, and every worker would die. The
    tasks never need the caller's main module, so it is hidden while workers start.
    """
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or path is None or os.path.isfile(path):
        yield
        return
    delattr(main, "__file__")
    try:
        yield
    finally:
        main.__file__ = path


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with_parent() -> None:
    """Ask the kernel to SIGKILL this worker when its parent, the forkserver, dies.

    The signal follows the parent *thread*: the forkserver forks from its only loop, on its main thread,
    so that thread lives exactly as long as the forkserver. (The forkserver itself gets no such signal: its
    parent is whichever thread of the caller first started a worker, which may end long before the
    caller does. It exits on its own once every holder of its "alive" pipe is gone; see
    ``_release_forkserver``.)
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - no prctl; the lifeline still holds
        pass


def _release_forkserver() -> None:
    """Drop this worker's copy of the forkserver's "alive" pipe.

    The forkserver exits when the write ends of that pipe are all closed, but it hands one to every child
    it forks. Workers that keep theirs keep the forkserver alive, and the forkserver (through the
    parent-death signal) keeps nothing alive in return: after a SIGKILL of the caller both stayed up,
    idle, for good. The tasks never start processes of their own, so the copy is not needed.
    """
    server = getattr(multiprocessing.forkserver, "_forkserver", None)
    fd = getattr(server, "_forkserver_alive_fd", None)
    if server is None or fd is None or multiprocessing.forkserver.get_inherited_fds() is None:
        return
    with contextlib.suppress(OSError):
        os.close(fd)
    server._forkserver_alive_fd = None


def _watch_lifeline(lifeline: Connection) -> None:
    """Return when the pool's owner is gone: its end of the pipe closes, however it died."""
    with contextlib.suppress(EOFError, OSError):
        while True:
            lifeline.recv_bytes()


# Where storage backends read endpoints and credentials from (boto, gcsfs, adlfs, huggingface_hub,
# fsspec), and expunge's own settings. Workers come from a forkserver started once per process, with the
# environment of that moment; these are handed to each worker as they are when its pool starts.
_PASSED_ENV = ("AWS_", "GOOGLE_", "GCE_", "AZURE_", "HF_", "HUGGING_FACE_", "FSSPEC_", "EXPUNGE_")


def _storage_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith(_PASSED_ENV)}


def _adopt_env(env: dict[str, str]) -> None:
    for key in [k for k in os.environ if k.startswith(_PASSED_ENV) and k not in env]:
        del os.environ[key]
    os.environ.update(env)


def _worker_start(lifeline: Connection, env: dict[str, str] | None = None) -> None:
    """Pool initializer: a worker lives no longer than the process that made the pool.

    A worker waits for tasks on a queue whose write end it holds itself, so it never sees its owner die.
    The owner keeps the write end of ``lifeline`` and nothing else has it: a thread here blocks on the
    read end and ends the worker when it reads end-of-file. Unlike a watch on a pid, a pipe cannot be
    fooled by pid reuse, and it also fires when the owner died before this worker got here.
    """
    _die_with_parent()
    _release_forkserver()
    if env is not None:
        _adopt_env(env)  # the pool owner's storage settings now, not the forkserver's from its start
    from expunge.arrow import without_pandas

    without_pandas()  # tasks never hand pyarrow pandas objects: skip its 0.2-0.3 s probe per worker

    def watch() -> None:
        _watch_lifeline(lifeline)
        os._exit(1)  # the owner is dead: nobody reads results, and tasks are redone on the rerun

    threading.Thread(target=watch, name="expunge-lifeline", daemon=True).start()


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


class LocalExecutor:
    """Process pool started lazily and reused across stages of one command.

    ``forkserver`` rather than ``fork``: the parent holds Arrow and DuckDB thread pools, and forking a
    threaded process can deadlock the child. The server preloads expunge so workers start fast.

    Workers and the forkserver end when this process ends, even by SIGKILL (see ``_worker_start``): a
    killed run leaves no idle processes holding memory and named semaphores.
    """

    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = max(1, workers if workers else default_workers())
        self._pool: ProcessPoolExecutor | None = None
        self._lifeline: tuple[Connection, Connection] | None = None

    def _get_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(["expunge.stages.tasks"])
            # Made before the forkserver and resource tracker start: they are exec'd with only the
            # descriptors they need, so this process holds the only write end.
            read, write = ctx.Pipe(duplex=False)
            self._lifeline = (read, write)
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=ctx,
                initializer=_worker_start,
                initargs=(read, _storage_env()),
            )
        return self._pool

    def map(self, fn: Callable[[T], R], items: Sequence[T], *, light: bool = False) -> Iterator[R]:
        # Light work runs in this process unless workers are already up: starting them costs more.
        if self.workers == 1 or len(items) <= 1 or (light and self._pool is None):
            for item in items:
                yield fn(item)
            return
        with _main_without_a_bogus_file():
            pool = self._get_pool()
        # Bounded submission keeps memory flat however many shards there are.
        pending: set[Future[R]] = set()
        it = iter(items)
        limit = self.workers * 2
        try:
            for item in it:
                with _main_without_a_bogus_file():  # workers start (and restart) on submit
                    pending.add(pool.submit(fn, item))
                if len(pending) >= limit:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in done:
                        yield fut.result()
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    yield fut.result()
        finally:
            for fut in pending:
                fut.cancel()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._lifeline is not None:  # only now: closing the write end ends every worker
            for end in self._lifeline:
                end.close()
            self._lifeline = None

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
