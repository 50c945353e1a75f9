"""Every signal type expunge knows: one line per built-in signal, plus plug-ins.

A third-party package adds a signal type by registering an entry point in the group
``expunge.signals`` whose object is a :class:`~expunge.signals.base.Signal` (or a callable returning
one); it is loaded when this module is first imported.
"""

from __future__ import annotations

from expunge import plugins
from expunge.signals.base import Signal
from expunge.signals.caption import CAPTION_SHA256
from expunge.signals.domain import DOMAIN
from expunge.signals.expression import URL_EXPRESSION_SHA256
from expunge.signals.image import PDQ, image_digest
from expunge.signals.keep import RELEASE_KEEP
from expunge.signals.url import PLAIN_URL, url_digest

ENTRY_POINT_GROUP = "expunge.signals"
SIGNALS: dict[str, Signal] = {}
#: Plug-ins that failed to load, by entry point name: named when their signal is asked for.
PLUGIN_ERRORS: dict[str, str] = {}


def register(signal: Signal) -> Signal:
    """Make a signal type known (to list import, ``--list FILE:SIGNAL`` and matching). A name is taken
    once: a plug-in cannot silently replace a built-in signal's meaning."""
    if not isinstance(signal, Signal):
        raise TypeError(f"{signal!r} is not an expunge Signal")
    known = SIGNALS.get(signal.name)
    if known is not None and known != signal:
        raise ValueError(f"signal type {signal.name!r} is already registered")
    SIGNALS[signal.name] = signal
    return signal


def get_signal(name: str) -> Signal:
    try:
        return SIGNALS[name]
    except KeyError:
        failed = f"; plug-in {name!r} failed to load: {PLUGIN_ERRORS[name]}" if name in PLUGIN_ERRORS else ""
        raise KeyError(f"unknown signal type {name!r} (known: {', '.join(SIGNALS)}){failed}") from None


def load_plugins() -> None:
    """Register the signals of installed plug-ins (``expunge.plugins``: a broken one is named when used)."""
    plugins.load(ENTRY_POINT_GROUP, SIGNALS, register, Signal, PLUGIN_ERRORS)


register(url_digest("url_md5", "md5"))
register(url_digest("url_sha1", "sha1"))
register(url_digest("url_sha256", "sha256"))
register(PLAIN_URL)
register(DOMAIN)
register(URL_EXPRESSION_SHA256)
register(RELEASE_KEEP)
register(image_digest("image_md5", "md5"))
register(image_digest("image_sha1", "sha1"))
register(image_digest("image_sha256", "sha256"))
register(PDQ)
register(CAPTION_SHA256)
load_plugins()
