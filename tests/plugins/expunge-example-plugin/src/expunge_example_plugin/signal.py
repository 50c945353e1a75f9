"""``url_md5_0x``: lists of URL MD5s exported as ``0x`` + 32 upper-case hex digits.

SQL Server's ``CONVERT(varchar(34), HASHBYTES('MD5', url), 1)`` writes digests this way. The values are
the same MD5s expunge already indexes (``url:RECIPE:md5``), so the signal only says how a list value
parses and which existing feature it is compared with; matching, the store and the release need no change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from expunge.errors import ExpungeError
from expunge.features.base import URL_RECIPES, Feature
from expunge.lists.readers import Tokens
from expunge.signals.base import Signal

_VALUE = re.compile(r"0[xX]([0-9a-fA-F]{32})")


@dataclass(frozen=True)
class PrefixedUrlMd5(Signal):
    """MD5 of a URL recipe, written ``0x…``; a value without the prefix is another export and refused."""

    def feature(self, recipe: str) -> Feature:
        return Feature("url", "md5", recipe)

    def parse(self, token: str) -> bytes:
        found = _VALUE.fullmatch(token)
        if found is None:
            raise ValueError(f"expected 0x and 32 hex digits for {self.name}")
        return bytes.fromhex(found.group(1))

    def parse_values(self, tokens: Tokens) -> np.ndarray:
        values: list[bytes] = []
        for line, token in zip(tokens.lines.tolist(), tokens.tokens.to_pylist(), strict=True):
            try:
                values.append(self.parse(token))
            except ValueError as exc:  # content-free message: the line number, never the value
                raise ExpungeError(str(exc), tokens.path, f"line {line}") from None
        return np.array(values, dtype=f"S{self.width}") if values else np.empty(0, dtype=f"S{self.width}")


URL_MD5_0X = PrefixedUrlMd5("url_md5_0x", 16, URL_RECIPES)
