"""Index features: the values each row yields for matching, computed batch-wise over Arrow.

Features are named as :mod:`expunge.features.base` parses them: ``url:canonical:sha1`` (one digest per
row), ``url_expr:sha256`` and ``domain:sha256`` (a list per row). The row's quarantine code is computed
alongside: a row that cannot be checked against every list is never silently kept.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from expunge.features.base import DIGESTS, URL_RECIPES, Feature, FeatureKind, parse_feature, register_kind
from expunge.features.digest import as_binary, digest_array
from expunge.features.text import utf8_invalid_mask
from expunge.features.urlcanon import canonicalize_array, expressions, host_suffixes, stripped_array

Q_OK = 0
Q_NULL = 1
Q_EMPTY = 2
Q_NOT_UTF8 = 3
Q_UNPARSEABLE = 4
WEB_HOST_PATTERN = r"^https?://(?:[^/]*[^/.]\.[^/.][^/]*|\[[0-9a-f:.]+\])/"
QUARANTINE_REASONS = {
    Q_NULL: "null_url",
    Q_EMPTY: "empty_url",
    Q_NOT_UTF8: "non_utf8_url",
    Q_UNPARSEABLE: "unparseable_url",
}


# URLs whose canonical form certainly names a web host, so quarantine need not canonicalise them: an
# http(s) scheme in any case, a dotted host of non-empty ASCII labels (letters, digits, ``-``, ``_``), an
# optional port, then printable ASCII only. Canonicalisation lowercases such a host, drops the port and
# cannot empty a label (a ``%`` escape or an ``@`` after the host stays after it: the host is split off
# first); an IPv4 spelling becomes a dotted quad. Either way the host keeps a dot between two non-dots,
# so ``WEB_HOST_PATTERN`` holds.
SURELY_WEB_PATTERN = (
    r"^[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]+)+"
    r"(?::[0-9]*)?(?:[/?#][\x21-\x7e]*)?$"
)


def _webby(canonical: pa.Array) -> np.ndarray:
    """Whether each canonical URL names a web host (null, i.e. not canonicalisable: no)."""
    # Canonical URLs are ASCII, so a string view is safe. A host without a dot ("not a url" becomes
    # host "not%20a%20url") is canonicalisable but is no web address: treat it as unparseable.
    webby = pc.match_substring_regex(canonical.view(pa.string()), WEB_HOST_PATTERN)
    return np.asarray(webby.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


class UrlBatch:
    """One batch of URLs with its recipes derived lazily and at most once."""

    def __init__(self, urls: pa.Array) -> None:
        if isinstance(urls, pa.ChunkedArray):
            urls = urls.combine_chunks()
        self.raw = as_binary(urls)

    def __len__(self) -> int:
        return len(self.raw)

    @cached_property
    def canonical(self) -> pa.Array:
        return canonicalize_array(self.raw)

    @cached_property
    def stripped(self) -> pa.Array:
        return stripped_array(self.raw)

    @cached_property
    def quarantine(self) -> np.ndarray:
        """Per-row reason code (0 = checkable). Later assignments take precedence.

        A row is unparseable when its canonical form names no web host. Canonicalising is the costly
        part (Python per row off the fast path), so when no list has asked for the canonical recipe
        yet, rows that :data:`SURELY_WEB_PATTERN` proves web-hosted skip it; only the rest are
        canonicalised. Both ways give the same codes (``tests/features/test_url_quarantine.py``).
        """
        q = np.zeros(len(self.raw), dtype=np.uint8)
        null = self.raw.is_null().to_numpy(zero_copy_only=False)
        if "canonical" in self.__dict__ or len(self.raw) == 0:
            unparseable = ~_webby(self.canonical) & ~null
        else:
            sure = pc.match_substring_regex(self.raw, SURELY_WEB_PATTERN).fill_null(False)
            unparseable = np.zeros(len(self.raw), dtype=bool)
            rest = np.flatnonzero(~sure.to_numpy(zero_copy_only=False) & ~null)
            if len(rest):
                canonical = canonicalize_array(self.raw.take(pa.array(rest)))
                unparseable[rest] = ~_webby(canonical)
        if unparseable.any():
            q[unparseable] = Q_UNPARSEABLE
            # ASCII trimming does not validate UTF-8, so it is safe on any bytes.
            text_type = pa.large_string() if pa.types.is_large_binary(self.raw.type) else pa.string()
            trimmed = pc.ascii_trim_whitespace(self.raw.view(text_type))
            empty = pc.equal(pc.binary_length(trimmed), 0).fill_null(False).to_numpy(zero_copy_only=False)
            q[empty & unparseable] = Q_EMPTY
        q[utf8_invalid_mask(self.raw)] = Q_NOT_UTF8
        q[null] = Q_NULL
        return q

    def recipe(self, name: str) -> pa.Array:
        if name == "raw":
            return self.raw
        if name == "stripped":
            return self.stripped
        if name == "canonical":
            return self.canonical
        raise KeyError(f"unknown URL recipe {name!r}")

    def feature(self, name: str | Feature) -> pa.Array:
        """The feature column for this batch (null where the row yields no value)."""
        f = parse_feature(name) if isinstance(name, str) else name
        if f.spec.batch_type is not UrlBatch:
            raise KeyError(f"unknown URL feature {f.name!r}")
        return f.spec.values(self, f)


@dataclass(frozen=True)
class UrlDigestKind(FeatureKind):
    """``url:RECIPE:ALGO``: one digest per row of the URL's recipe bytes (DuckDB, one call per batch)."""

    batch_type: ClassVar[Any] = UrlBatch

    def values(self, batch: UrlBatch, feature: Feature) -> pa.Array:
        return digest_array(batch.recipe(str(feature.recipe)), feature.algo)


@dataclass(frozen=True)
class UrlExpansionKind(FeatureKind):
    """A list per row: the digest of every expansion of the canonical URL."""

    batch_type: ClassVar[Any] = UrlBatch
    expand: Callable[[bytes], list[bytes]] | None = None

    def values(self, batch: UrlBatch, feature: Feature) -> pa.Array:
        assert self.expand is not None
        return _multi(batch.canonical, self.expand, feature)


def _multi(canonical: pa.Array, expand: Callable[[bytes], list[bytes]], f: Feature) -> pa.Array:
    """Digest every expansion of each canonical URL (Safe Browsing expressions, host suffixes)."""
    out: list[list[bytes] | None] = []
    for value in canonical.to_pylist():
        if value is None:
            out.append(None)
            continue
        out.append([hashlib.new(f.algo, e).digest() for e in expand(value)])
    return pa.array(out, type=pa.list_(pa.binary(f.width)))


URL = register_kind(UrlDigestKind("url", "url", DIGESTS, URL_RECIPES))
#: Safe Browsing expressions (host suffix x path prefix).
URL_EXPR = register_kind(UrlExpansionKind("url_expr", "url", DIGESTS, multi=True, expand=expressions))
#: The host and its parent domains.
DOMAIN = register_kind(UrlExpansionKind("domain", "url", DIGESTS, multi=True, expand=host_suffixes))
