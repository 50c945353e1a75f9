"""Fault injection for the real CLI: die at the Nth rename or fsync, as a power cut or SIGKILL would.

A test runs ``python -c`` with :func:`cli_command`; the child installs the hooks, then runs the CLI.
With ``EXPUNGE_FAULT_AT=0`` it only counts the durable-write events and writes the total to
``EXPUNGE_FAULT_LOG`` on exit; with ``EXPUNGE_FAULT_AT=N`` it ends the process with ``os._exit``
(no cleanup, no ``finally``, like SIGKILL) just before the Nth event. Use ``--workers 1`` so every
event happens in this one process, in a fixed order.
"""

from __future__ import annotations

import atexit
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
EVENTS = ("replace", "rename", "fsync", "link")
# Object-store writes (expunge.storage.fs): each request is an event too, so a run against S3 can be
# killed between any two of them (mid-publish, mid-push of the store).
STORAGE_EVENTS = ("put_file", "put_bytes", "copy", "delete", "create_if_absent")
KILLED = 137


def install() -> None:
    at = int(os.environ.get("EXPUNGE_FAULT_AT", "0"))
    log = os.environ.get("EXPUNGE_FAULT_LOG")
    count = [0]

    def wrap(name: str) -> None:
        real: Callable[..., Any] = getattr(os, name)

        def hooked(*args: Any, **kwargs: Any) -> Any:
            count[0] += 1
            if count[0] == at:
                os._exit(KILLED)
            return real(*args, **kwargs)

        setattr(os, name, hooked)

    for name in EVENTS:
        wrap(name)
    from expunge.storage import fs as storage_fs

    for name in STORAGE_EVENTS:
        real_fn: Callable[..., Any] = getattr(storage_fs, name)

        def hooked_fn(*args: Any, _real: Callable[..., Any] = real_fn, **kwargs: Any) -> Any:
            count[0] += 1
            if count[0] == at:
                os._exit(KILLED)
            return _real(*args, **kwargs)

        setattr(storage_fs, name, hooked_fn)
    if log:
        atexit.register(lambda: Path(log).write_text(str(count[0])))


def cli_command(args: list[str]) -> list[str]:
    code = (
        "import sys; sys.path.insert(0, sys.argv.pop(1)); import tests.faults as f; f.install(); "
        "from expunge.cli.app import main; sys.argv[0] = 'expunge'; main()"
    )
    return [sys.executable, "-c", code, str(REPO), *args]
