"""The default executor: a pool of worker processes on this machine (inline when one worker)."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
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


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


class LocalExecutor:
    """Process pool started lazily and reused across stages of one command.

    ``forkserver`` rather than ``fork``: the parent holds Arrow and DuckDB thread pools, and forking a
    threaded process can deadlock the child. The server preloads expunge so workers start fast.
    """

    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = max(1, workers if workers else default_workers())
        self._pool: ProcessPoolExecutor | None = None

    def _get_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(["expunge.pipeline.tasks"])
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx)
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

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
