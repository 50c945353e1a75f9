"""Index features: the values each row yields for matching, computed batch-wise over Arrow.

Features are named as :mod:`expunge.features.base` parses them: ``url:canonical:sha1`` (one digest per
row), ``url_expr:sha256`` and ``domain:sha256`` (a list per row). The row's quarantine code is computed
alongside: a row that cannot be checked against every list is never silently kept.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from functools import cached_property

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from expunge.features.base import Feature, parse_feature
from expunge.features.digest import as_binary, digest_array
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


def _utf8_invalid_mask(raw: pa.Array) -> np.ndarray:
    """Rows whose bytes are not UTF-8, found by bisection with Arrow's C validator.

    The common case is one validation of the whole batch. A few bad rows cost a few validations of
    shrinking slices each, never a Python call per row.
    """
    text_type = pa.large_string() if pa.types.is_large_binary(raw.type) else pa.string()
    bad = np.zeros(len(raw), dtype=bool)
    pending = [(0, len(raw))]
    while pending:
        start, length = pending.pop()
        if length == 0:
            continue
        try:
            raw.slice(start, length).view(text_type).validate(full=True)
            continue
        except pa.ArrowInvalid:
            pass
        if length == 1:
            bad[start] = True
            continue
        half = length // 2
        pending.append((start, half))
        pending.append((start + half, length - half))
    return bad


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
        """Per-row reason code (0 = checkable). Later assignments take precedence."""
        q = np.zeros(len(self.raw), dtype=np.uint8)
        null = self.raw.is_null().to_numpy(zero_copy_only=False)
        canonical = self.canonical
        # Canonical URLs are ASCII, so a string view is safe. A host without a dot ("not a url" becomes
        # host "not%20a%20url") is canonicalisable but is no web address: treat it as unparseable.
        webby = pc.match_substring_regex(canonical.view(pa.string()), WEB_HOST_PATTERN)
        unparseable = ~webby.fill_null(False).to_numpy(zero_copy_only=False) & ~null
        if unparseable.any():
            q[unparseable] = Q_UNPARSEABLE
            # ASCII trimming does not validate UTF-8, so it is safe on any bytes.
            text_type = pa.large_string() if pa.types.is_large_binary(self.raw.type) else pa.string()
            trimmed = pc.ascii_trim_whitespace(self.raw.view(text_type))
            empty = pc.equal(pc.binary_length(trimmed), 0).fill_null(False).to_numpy(zero_copy_only=False)
            q[empty & unparseable] = Q_EMPTY
        q[_utf8_invalid_mask(self.raw)] = Q_NOT_UTF8
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
        if f.kind == "url":
            return digest_array(self.recipe(str(f.recipe)), f.algo)
        if f.kind == "url_expr":
            return _multi(self.canonical, expressions, f)
        if f.kind == "domain":
            return _multi(self.canonical, host_suffixes, f)
        raise KeyError(f"unknown URL feature {f.name!r}")


def _multi(canonical: pa.Array, expand: Callable[[bytes], list[bytes]], f: Feature) -> pa.Array:
    """Digest every expansion of each canonical URL (Safe Browsing expressions, host suffixes)."""
    out: list[list[bytes] | None] = []
    for value in canonical.to_pylist():
        if value is None:
            out.append(None)
            continue
        out.append([hashlib.new(f.algo, e).digest() for e in expand(value)])
    return pa.array(out, type=pa.list_(pa.binary(f.width)))
