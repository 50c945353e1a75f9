"""Which dataset formats exist: built-ins registered below, one line each, and plug-ins found through the
``expunge.formats`` entry point group (each entry point names a :class:`ShardFormat` subclass or instance).

Discovery asks the formats in registration order whether they claim the dataset; a *fallback* format
(parquet) is always asked last, so a format registered later (a plug-in) is asked before it.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.metadata import entry_points
from pathlib import Path

from expunge.errors import ExpungeError
from expunge.formats.base import Shard, ShardFormat
from expunge.formats.imagefolder import ImageFolderFormat
from expunge.formats.parquet_shards import ParquetFormat
from expunge.formats.text import TextFormat
from expunge.formats.webdataset import WebDatasetFormat

ENTRY_POINT_GROUP = "expunge.formats"

_FORMATS: dict[str, ShardFormat] = {}
_plugins_loaded = False


def register(fmt: ShardFormat | type[ShardFormat]) -> ShardFormat:
    """Add a format (an instance, or a class taking no arguments); a name may be registered once."""
    instance = fmt() if isinstance(fmt, type) else fmt
    if not isinstance(instance, ShardFormat):
        raise TypeError(f"{fmt!r} is not a ShardFormat")
    if instance.name in _FORMATS and _FORMATS[instance.name] is not instance:
        raise ValueError(f"a format named {instance.name!r} is already registered")
    _FORMATS[instance.name] = instance
    return instance


def unregister(name: str) -> None:
    """Remove a format (tests register temporary ones)."""
    _FORMATS.pop(name, None)


register(WebDatasetFormat)
register(ImageFolderFormat)
register(TextFormat)
register(ParquetFormat)


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            register(ep.load())
        except Exception as exc:  # a broken plug-in must not pass for an absent one
            raise ExpungeError(
                f"dataset format plug-in {ep.name!r} ({ep.value}) cannot be loaded ({type(exc).__name__})"
            ) from None


def formats() -> list[ShardFormat]:
    """Every format in the order discovery asks them: registration order, fallbacks last."""
    _load_plugins()
    found = list(_FORMATS.values())
    return [f for f in found if not f.fallback] + [f for f in found if f.fallback]


def get(name: str) -> ShardFormat:
    fmt = _FORMATS.get(name)
    if fmt is None:
        _load_plugins()
        fmt = _FORMATS.get(name)
    if fmt is None:
        raise ExpungeError(f"unknown dataset format {name!r}")
    return fmt


def discover(specs: Sequence[str]) -> tuple[str, list[Shard], str]:
    """A dataset's root, its shards and its format's name: the first format that claims the specs."""
    if not specs:
        raise ExpungeError("no dataset given")
    for fmt in formats():
        if fmt.claims(specs):
            root, shards = fmt.discover(specs)
            return root, shards, fmt.name
    raise ExpungeError("no dataset format recognises these files", ", ".join(specs))


def release_format(release: Path, name: str) -> ShardFormat:
    """The format of shard ``name`` in a release folder, asked in discovery order."""
    for fmt in formats():
        if fmt.owns_release_shard(release, name):
            return fmt
    raise ExpungeError("no dataset format recognises this shard", release / name)
