"""Entry-point plug-ins, loaded one way for every registry that takes them (signals, soft signals).

A plug-in that fails to load is recorded by name, not fatal: a broken plug-in must not stop runs that
do not use it, and a run that does use it is refused, naming it (each registry's lookup says so).
"""

from __future__ import annotations

from collections.abc import Callable, Container
from importlib.metadata import entry_points
from typing import Any


def load(
    group: str, known: Container[str], register: Callable[[Any], object], kind: type, errors: dict[str, str]
) -> None:
    """Register every entry point of ``group`` not already ``known``: its object if it is a ``kind``,
    else what calling it returns. A failure is recorded in ``errors`` by entry point name (its exception
    type only: a plug-in's message could quote anything)."""
    for ep in entry_points(group=group):
        if ep.name in known:
            continue
        try:
            obj = ep.load()
            register(obj if isinstance(obj, kind) else obj())
        except Exception as exc:  # a plug-in's own failure, whatever it is
            errors[ep.name] = type(exc).__name__
