"""Soft signal types: per-row numbers a policy compares with thresholds (``score.punsafe > 0.95``).

Hash lists say "this is known"; a soft signal only says "this looks like it", so it never removes a
row by itself: a policy rule decides (``expunge.policy``). Every soft value is "higher is worse", and
a row that has no value (a null score, an image that does not decode) is *missing*, never safe.

A soft signal type is one :class:`~expunge.signals.base.ValueSignal`: the word a policy names it by,
whether it takes a parameter (``score.COLUMN``), the range its thresholds may take, and, for signals
measured shard by shard, :meth:`ValueSignal.measure`, which yields each row's value. The soft stage
(``expunge.stages.soft``) keeps only rows at or above the lowest threshold the policy uses, or
missing; it never asks which signal it holds. ``neighbour`` is measured across the whole dataset (its
seeds can be in any shard), so its scope is ``"dataset"`` and ``expunge.stages.triage`` runs it.

Keyword lists are flags with lists of their own (``keyword``, ``keyword.LIST``): ``signals/keyword.py``.

Built-ins are registered at the end of this module, one line each; a third-party package adds a value
signal with an entry point in the group ``expunge.soft_signals`` whose object is a
:class:`ValueSignal` (or a callable returning one).
"""

from __future__ import annotations

from expunge import plugins
from expunge.signals.base import ValueSignal
from expunge.signals.neighbour import NEIGHBOUR
from expunge.signals.nsfw import NSFW
from expunge.signals.score import SCORE

__all__ = ["VALUE_SIGNALS", "ValueSignal", "register", "split_ref"]

ENTRY_POINT_GROUP = "expunge.soft_signals"


#: Every value signal this process knows, by name.
VALUE_SIGNALS: dict[str, ValueSignal] = {}
#: Plug-ins that failed to load, by entry point name: named when a policy uses them.
PLUGIN_ERRORS: dict[str, str] = {}


def register(signal: ValueSignal) -> ValueSignal:
    """Make a value signal known to policies and the soft stage; a name is taken once."""
    if not isinstance(signal, ValueSignal):
        raise TypeError(f"{signal!r} is not an expunge ValueSignal")
    known = VALUE_SIGNALS.get(signal.name)
    if known is not None and known != signal:
        raise ValueError(f"soft signal {signal.name!r} is already registered")
    if signal.name in ("bank", "keyword"):
        raise ValueError(f"{signal.name!r} is a flag of the policy language, not a value signal")
    VALUE_SIGNALS[signal.name] = signal
    return signal


def split_ref(ref: str) -> tuple[ValueSignal, str | None]:
    """``score.punsafe`` → (the score signal, ``punsafe``); ``nsfw`` → (the nsfw signal, None)."""
    name, _, param = ref.partition(".")
    sig = VALUE_SIGNALS.get(name)
    if sig is None:
        failed = f" (plug-in failed to load: {PLUGIN_ERRORS[name]})" if name in PLUGIN_ERRORS else ""
        raise KeyError(f"unknown soft signal {name!r}{failed}")
    return sig, (param or None)


def load_plugins() -> None:
    plugins.load(ENTRY_POINT_GROUP, VALUE_SIGNALS, register, ValueSignal, PLUGIN_ERRORS)


register(SCORE)
register(NSFW)
register(NEIGHBOUR)
load_plugins()
