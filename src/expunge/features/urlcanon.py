"""Safe Browsing (v4) URL canonicalisation over bytes, plus the vectorised recipes the index uses.

Abuse lists publish digests of URLs in Google's Safe Browsing canonical form, so a dataset URL only
matches if we reproduce that form byte for byte. Everything works on ``bytes`` because dataset URLs are
stored as raw bytes and are often not valid UTF-8; decoding them first would either fail or silently
change the bytes that get hashed.

The rules follow the Safe Browsing "URLs and Hashing" document and Google's Go ``safebrowsing``
library, with a few deliberate improvements, each chosen so that canonicalising twice never changes
anything (a canonical URL must hash to itself when a list is re-imported):

* whitespace is trimmed once, before unescaping, as the published example ``%20leadingspace.com/`` ->
  ``http://%20leadingspace.com/`` requires (trimming again after unescaping would drop that space);
* a would-be scheme containing a dot (``www.example.com:8080/x``) is a host with a port;
* a protocol-relative URL (``//cdn.example.com/x.jpg``) keeps its host instead of being rejected;
* percent-unescaping runs to its fixed point in linear time instead of giving up after 1024 rounds;
* an IDN label that the ``idna`` codec cannot convert is kept (escaped) instead of failing the URL,
  and a conversion that would produce URL syntax (the full-width solidus, commercial at and colon fold
  to ``/``, ``@`` and ``:``) counts as a failure, because the next canonicalisation would otherwise
  parse a different host;
* IPv4 hosts follow ``inet_aton`` exactly (a part too large for its bytes means "not an address"),
  where Go silently truncated parts;
* the query is kept, as in the published examples (``http://www.google.com/q?`` keeps its ``?``).

The array functions exist because real datasets are dominated by URLs that are already canonical: an
RE2 pattern run inside Arrow proves that for most rows, which are then passed through without copying,
and only the remainder pays for the Python implementation.

Host canonicalisation (ports, IDNA, IPv4) is :mod:`expunge.features.urlhost`; percent escapes are
:mod:`expunge.features.urlescape`.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc

from expunge.features.urlescape import escape, unescape
from expunge.features.urlhost import canonical_host, is_ip_host

__all__ = [
    "FAST_PATH_PATTERN",
    "canonicalize",
    "canonicalize_array",
    "expressions",
    "host_suffixes",
    "split_canonical",
    "stripped",
    "stripped_array",
]

CanonicalParts = tuple[bytes, bytes, bytes, bytes | None]

# --------------------------------------------------------------------------------------------------
# Scheme and path (hosts: expunge.features.urlhost; escapes: expunge.features.urlescape)
# --------------------------------------------------------------------------------------------------

_SCHEME = re.compile(rb"([A-Za-z][A-Za-z0-9+.\-]*):")
# ``host:8080/`` looks like a scheme followed by a path; a port-shaped tail means it is a host.
_PORT_AFTER_COLON = re.compile(rb"[0-9]+(?:[/?]|\Z)")
_WEB_SCHEMES = (b"http", b"https")


def _clean_path(path: bytes) -> bytes:
    """Resolve dot segments and empty segments the way Go's ``path.Clean`` does, keeping a final ``/``."""
    if b"//" not in path and b"/." not in path:
        return path
    segments: list[bytes] = []
    for segment in path.split(b"/"):
        if segment == b".." and segments:
            segments.pop()
        elif segment and segment != b"." and segment != b"..":
            segments.append(segment)
    if not segments:
        return b"/"
    cleaned = b"/" + b"/".join(segments)
    return cleaned + b"/" if path.endswith(b"/") else cleaned


def _parse(url: bytes) -> CanonicalParts | None:
    hash_at = url.find(b"#")
    if hash_at >= 0:
        url = url[:hash_at]
    text = url.strip().translate(None, b"\t\r\n")
    if b"%" in text:
        text = unescape(text)
    match = _SCHEME.match(text)
    if match is not None and b"." not in match[1] and not _PORT_AFTER_COLON.match(text, match.end()):
        scheme = match[1].lower()
        if scheme not in _WEB_SCHEMES or not text.startswith(b"//", match.end()):
            return None
        rest = text[match.end() + 2 :]
    else:
        scheme = b"http"
        rest = text[2:] if text.startswith(b"//") else text
    query: bytes | None = None
    question = rest.find(b"?")
    if question >= 0:
        rest, query = rest[:question], rest[question + 1 :]
    slash = rest.find(b"/")
    if slash >= 0:
        host_part, path = rest[:slash], _clean_path(rest[slash:])
    else:
        host_part, path = rest, b"/"
    host = canonical_host(host_part)
    if host is None:
        return None
    return scheme, escape(host), escape(path), None if query is None else escape(query)


# --------------------------------------------------------------------------------------------------
# Public scalar API
# --------------------------------------------------------------------------------------------------


def split_canonical(url: bytes) -> CanonicalParts | None:
    """Canonical (scheme, host, path, query) for callers that need the pieces (expressions, domains).

    The pieces are escaped exactly as in :func:`canonicalize`, so joining them reproduces its output;
    the query is None when the URL has no ``?`` at all, and ``b""`` when it has an empty one, because the
    canonical forms of those two differ.
    """
    return _parse(url)


def canonicalize(url: bytes) -> bytes | None:
    """The Safe Browsing canonical form that list digests are computed from; None if not an http(s) URL.

    Never raises: a dataset row with garbage in it must be reported as unparseable, not crash a shard.
    """
    parts = _parse(url)
    if parts is None:
        return None
    scheme, host, path, query = parts
    if query is None:
        return b"".join((scheme, b"://", host, path))
    return b"".join((scheme, b"://", host, path, b"?", query))


def _lookup_hosts(host: bytes) -> list[bytes]:
    if is_ip_host(host):
        return [host]
    labels = host.split(b".")
    # Up to four suffixes from the last five labels, never the bare TLD (as Safe Browsing clients do).
    suffixes = [b".".join(labels[-k:]) for k in range(min(5, len(labels) - 1), 1, -1)]
    return [host, *suffixes]


def _lookup_paths(path: bytes, query: bytes | None) -> list[bytes]:
    components = [c for c in path.split(b"/") if c]
    prefixes = [b"/"] + [b"/" + b"/".join(components[:i]) + b"/" for i in range(1, min(len(components), 4))]
    exact = [path] if query is None else [path + b"?" + query, path]
    return list(dict.fromkeys([*exact, *prefixes]))


def expressions(url: bytes) -> list[bytes]:
    """Host-suffix/path-prefix expressions, so a list entry for a site or directory catches every page in it.

    Order is deterministic (exact host first, exact path first) so that digests of a row are stable.
    """
    parts = _parse(url)
    if parts is None:
        return []
    _, host, path, query = parts
    paths = _lookup_paths(path, query)
    return list(dict.fromkeys(h + p for h in _lookup_hosts(host) for p in paths))


def host_suffixes(url: bytes) -> list[bytes]:
    """The host and all its parent domains, so a domain block list entry catches every subdomain.

    Unlike Safe Browsing expressions there is no five-label cap: ``example.com`` on a list must catch
    ``a.b.c.d.e.example.com`` too. The bare TLD is never produced.
    """
    parts = _parse(url)
    if parts is None:
        return []
    host = parts[1]
    if is_ip_host(host):
        return [host]
    labels = host.split(b".")
    return [host] + [b".".join(labels[-k:]) for k in range(len(labels) - 1, 1, -1)]


_AUTHORITY_END = re.compile(rb"[/?#]")


def stripped(url: bytes) -> bytes | None:
    """The "stripped" recipe: only the parts that are case-insensitive by definition are normalised.

    Some lists hash URLs as published, modulo surrounding whitespace and the case of scheme and host;
    this recipe matches those without the (lossy) Safe Browsing rewriting.
    """
    text = url.strip()
    match = _SCHEME.match(text)
    if match is not None and b"." not in match[1] and not _PORT_AFTER_COLON.match(text, match.end()):
        scheme = match[1].lower()
        if scheme not in _WEB_SCHEMES or not text.startswith(b"//", match.end()):
            return None
        start = match.end() + 2
        prefix = scheme + b"://"
    else:
        start = 2 if text.startswith(b"//") else 0
        prefix = text[:start]
    end_match = _AUTHORITY_END.search(text, start)
    end = len(text) if end_match is None else end_match.start()
    authority = text[start:end]
    host_start = authority.rfind(b"@") + 1
    if host_start == len(authority):
        return None
    return b"".join((prefix, authority[:host_start], authority[host_start:].lower(), text[end:]))


# --------------------------------------------------------------------------------------------------
# Vectorised API
# --------------------------------------------------------------------------------------------------


def _re2_alternatives(*alternatives: str) -> str:
    return "(?:" + "|".join(alternatives) + ")"


# Only escapes the canonical form itself writes: the decoded byte is one that gets re-escaped. ``%25`` is
# left out because ``%25`` followed by two hex digits would be unescaped again; RE2 has no lookahead to
# allow the other cases, and they are rare.
_FP_ESCAPE = "%(?:[01][0-9A-F]|2[03]|7F|[89A-F][0-9A-F])"
# Printable ASCII except ``#``, ``%``, ``/``, ``?`` (and ``.``, handled separately for dot segments).
_FP_PATH_NODOT = _re2_alternatives(r"[\x21\x22\x24\x26-\x2d\x30-\x3e\x40-\x7e]", _FP_ESCAPE)
_FP_PATH_CHAR = _re2_alternatives(r"[\x21\x22\x24\x26-\x2e\x30-\x3e\x40-\x7e]", _FP_ESCAPE)
# A non-empty segment that is neither ``.`` nor ``..``.
_FP_SEGMENT = _re2_alternatives(
    _FP_PATH_NODOT + _FP_PATH_CHAR + "*",
    r"\." + _FP_PATH_NODOT + _FP_PATH_CHAR + "*",
    r"\.\." + _FP_PATH_CHAR + "+",
)
_FP_PATH = "/(?:" + _FP_SEGMENT + "(?:/" + _FP_SEGMENT + ")*/?)?"
_FP_QUERY = r"(?:\?" + _re2_alternatives(r"[\x21\x22\x24\x26-\x7e]", _FP_ESCAPE) + "*)?"
_FP_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])"
# A name whose last label starts with a letter can never be read as an IPv4 address.
_FP_HOST = _re2_alternatives(
    r"(?:[a-z0-9_\-]+\.)*[a-z][a-z0-9_\-]*",
    _FP_OCTET + r"\." + _FP_OCTET + r"\." + _FP_OCTET + r"\." + _FP_OCTET,
)

FAST_PATH_PATTERN: str = "^https?://" + _FP_HOST + _FP_PATH + _FP_QUERY + "$"
"""RE2 pattern matching only URLs that :func:`canonicalize` returns unchanged (it rejects some that
would be unchanged too; those just take the slow path)."""

_WS = r"\t\n\x0b\x0c\r "
# Lower-case scheme and authority, non-empty host, nothing to trim at either end.
_STRIPPED_FAST_PATTERN = (
    "(?s)^https?://[^/?#A-Z" + _WS + "]*[^/?#A-Z@" + _WS + "](?:[/?#](?:.*[^" + _WS + "])?)?$"
)


def _as_binary(urls: pa.Array | pa.ChunkedArray) -> pa.Array:
    """A ``binary`` view of the input: the regex then sees raw bytes (Latin-1 mode), UTF-8 or not."""
    if isinstance(urls, pa.ChunkedArray):
        urls = urls.combine_chunks()
    kind = urls.type
    if pa.types.is_binary(kind):
        return urls
    if pa.types.is_string(kind):
        return urls.view(pa.binary())
    if pa.types.is_large_string(kind):
        return urls.view(pa.large_binary()).cast(pa.binary())
    if pa.types.is_null(kind):
        return pa.nulls(len(urls), pa.binary())
    return urls.cast(pa.binary())


def _apply(urls: pa.Array, pattern: str, slow: Callable[[bytes], bytes | None]) -> pa.Array:
    """Pass the rows the pattern proves unchanged through untouched; run ``slow`` on the rest only."""
    values = _as_binary(urls)
    if len(values) == 0:
        return values
    unchanged = pc.match_substring_regex(values, pattern).fill_null(True)
    needs_work = pc.invert(unchanged)
    if not pc.any(needs_work).as_py():
        return values
    todo = values.filter(needs_work).to_pylist()
    done = pa.array([slow(v) for v in todo], type=pa.binary())
    return pc.replace_with_mask(values, needs_work, done)


def canonicalize_array(urls: pa.Array) -> pa.Array:
    """:func:`canonicalize` over a column; ``binary`` out, null where the input is null or unparseable."""
    return _apply(urls, FAST_PATH_PATTERN, canonicalize)


def stripped_array(urls: pa.Array) -> pa.Array:
    """:func:`stripped` over a column; ``binary`` out, null where the input is null or has no host."""
    return _apply(urls, _STRIPPED_FAST_PATTERN, stripped)
