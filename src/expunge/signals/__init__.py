"""Signal types: how a list value is parsed, which per-row feature it is compared with, and by which
matcher. The interface is :class:`expunge.signals.base.Signal`; one module per family
(``url``, ``domain``, ``expression``, ``image``, ``keep``); :mod:`expunge.signals.registry` lists them
(one line each) and loads plug-ins from the ``expunge.signals`` entry point group.
"""

from __future__ import annotations

from expunge.features.base import URL_RECIPES as RECIPES
from expunge.signals.base import Signal
from expunge.signals.registry import SIGNALS, get_signal, register

__all__ = ["RECIPES", "SIGNALS", "Signal", "get_signal", "register"]
