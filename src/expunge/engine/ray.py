"""The Ray executor: the same per-shard tasks on a Ray cluster (or a local Ray), for billions of rows.

Tasks are the same top-level functions the local executor runs; they read and write shared storage and
are idempotent with atomic writes, so Ray's retry of a task whose worker died is safe and the output is
byte-identical to a local run. Banks are not shipped with tasks: each Ray worker process loads a bank
once (the per-process caches in ``lists.bank`` and ``match.stage``) and keeps it for every task it runs.
Ray is an optional extra (``pip install 'expunge[ray]'``); nothing else imports this module.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import ray

from expunge.errors import ExpungeError

T = TypeVar("T")
R = TypeVar("R")


def _call(fn: Callable[[Any], Any], item: Any) -> Any:
    return fn(item)


class RayExecutor:
    name = "ray"

    def __init__(self, workers: int | None = None, address: str | None = None, max_retries: int = 3) -> None:
        address = address or os.environ.get("RAY_ADDRESS")
        self._started = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"ignore_reinit_error": True, "log_to_driver": False}
            if address:
                ray.init(address=address, **kwargs)
            else:
                ray.init(num_cpus=workers or os.cpu_count() or 1, include_dashboard=False, **kwargs)
            self._started = True
        cpus = int(ray.cluster_resources().get("CPU", 1))  # type: ignore[no-untyped-call,unused-ignore]
        self.workers = workers or cpus
        # Retries cover worker deaths (a killed process, a lost node); a task's own errors are not retried.
        self._remote = ray.remote(num_cpus=1, max_retries=max_retries, retry_exceptions=False)(_call)

    def map(self, fn: Callable[[T], R], items: Sequence[T], *, light: bool = False) -> Iterator[R]:
        if light or len(items) <= 1:  # cheaper here than a round trip to the cluster
            for item in items:
                yield fn(item)
            return
        fn_ref = ray.put(fn)
        pending: list[Any] = []
        it = iter(items)
        limit = max(2, self.workers * 2)  # bounded in flight: the driver's memory stays flat
        exhausted = False
        while pending or not exhausted:
            while not exhausted and len(pending) < limit:
                try:
                    pending.append(self._remote.remote(fn_ref, next(it)))
                except StopIteration:
                    exhausted = True
            if not pending:
                break
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                yield self._get(ref)

    @staticmethod
    def _get(ref: Any) -> Any:
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            cause = exc.cause if hasattr(exc, "cause") else None
            if isinstance(cause, ExpungeError):
                raise cause.with_traceback(None) from None
            raise

    def close(self) -> None:
        if self._started and ray.is_initialized():
            ray.shutdown()
            self._started = False
