"""Executors run per-shard tasks. Stages never know which executor runs them.

A task is a top-level function and one picklable argument; it returns a picklable result. Tasks are
idempotent and write their outputs atomically, so an executor may retry one after a worker dies, and a
rerun after an interruption redoes only what has no completion marker.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Executor(Protocol):
    name: str
    workers: int

    def map(self, fn: Callable[[T], R], items: Sequence[T], *, light: bool = False) -> Iterator[R]:
        """Run ``fn`` on every item; yield results as tasks complete (order not guaranteed).

        ``light`` says each task is cheap (an incremental re-match reads a little index and no data): an
        executor may then run it where starting workers would cost more than the work.
        """
        ...

    def close(self) -> None: ...


def make_executor(name: str = "local", workers: int | None = None, address: str | None = None) -> Executor:
    """The one place that knows the executor implementations."""
    from expunge.errors import ExpungeError

    if name == "local":
        from expunge.engine.local import LocalExecutor

        return LocalExecutor(workers)
    if name == "ray":
        try:
            from expunge.engine.ray import RayExecutor
        except ImportError:
            raise ExpungeError("the ray executor needs Ray: pip install 'expunge[ray]'") from None
        executor: Executor = RayExecutor(workers, address)
        return executor
    raise ExpungeError(f"unknown executor {name!r} (available: local, ray)")
