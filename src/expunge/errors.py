"""One error type that the CLI turns into a single line naming the file and the place.

Messages never quote the offending content: a bad line in a plaintext URL list, or a URL column value,
may itself be the flagged material, so errors say *where* and *what kind of* problem, never *what*.
"""

from __future__ import annotations

import re
from pathlib import Path

# Characters a terminal acts on rather than shows: C0/C1 controls (ESC starts colour and cursor codes),
# bidi overrides and isolates, zero-width characters, line and paragraph separators.
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")


class ExpungeError(Exception):
    """A user-facing failure: bad input, a refused list, a missing column, a corrupt shard."""

    def __init__(self, message: str, path: str | Path | None = None, where: str | None = None) -> None:
        self.message = message
        self.path = str(path) if path is not None else None
        self.where = where
        super().__init__(self.one_line())

    def one_line(self) -> str:
        """``FILE:WHERE: message``; ``where`` is ``line 12``, ``row 3041``, ``row group 2``..."""
        parts = [p for p in (self.path, self.where) if p]
        prefix = ":".join(parts)
        text = f"{prefix}: {self.message}" if prefix else self.message
        # A path is the user's (or a partner's) to name: it is shown, never obeyed by the terminal.
        text = _UNPRINTABLE.sub(
            lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}",
            text,
        )
        return " ".join(text.split())

    def __reduce__(self) -> tuple[type[ExpungeError], tuple[str, str | None, str | None]]:
        # Worker processes raise these; pickling must keep the structured fields.
        return (ExpungeError, (self.message, self.path, self.where))


class StaleShardError(ExpungeError):
    """A shard's bytes differ from those that were indexed, though its size and mtime did not change.

    The clean stage raises it before writing anything from that shard; the caller drops the shard's
    index and runs the stages again, so a stale index can never choose which rows to publish.
    """

    def __init__(self, shard: str, path: str | Path | None = None) -> None:
        self.shard = shard
        super().__init__("shard content changed since it was indexed (its size and mtime did not)", path)

    def __reduce__(self) -> tuple[type[StaleShardError], tuple[str, str | None]]:  # type: ignore[override]
        return (StaleShardError, (self.shard, self.path))
