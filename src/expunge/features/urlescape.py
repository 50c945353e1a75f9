"""Percent escapes for Safe Browsing canonicalisation (:mod:`expunge.features.urlcanon`).

Unescaping runs to its fixed point, because lists and datasets encode the same URL to different depths;
escaping writes the one form the canonical URL uses. Both work on bytes: dataset URLs are often not
valid UTF-8.
"""

from __future__ import annotations

import re

_HEX_DIGITS = b"0123456789abcdefABCDEF"
_HEX_VALUE: dict[int, int] = {c: int(chr(c), 16) for c in _HEX_DIGITS}


def _case_variants(text: str) -> list[str]:
    variants = [""]
    for ch in text:
        variants = [v + c for v in variants for c in dict.fromkeys((ch.lower(), ch.upper()))]
    return variants


# Every spelling of every escape, so one dict lookup decodes a regex match.
_UNHEX: dict[bytes, bytes] = {
    ("%" + spelling).encode("ascii"): bytes([value])
    for value in range(256)
    for spelling in _case_variants(f"{value:02x}")
}
_ESCAPE_SEQ = re.compile(rb"%[0-9A-Fa-f]{2}")
# Bytes the canonical form always writes as %XX. Hex is upper-case (RFC 3986's normal form); Go's library
# writes lower-case, but every published example uses digit-only escapes, so they cannot tell.
_NEEDS_ESCAPE = re.compile(rb"[\x00-\x20#%\x7f-\xff]")
_ESCAPED: dict[bytes, bytes] = {bytes([b]): b"%%%02X" % b for b in range(256)}

# A few regex passes settle every realistic URL; deeper nesting (``%25252525...``) would cost one pass per
# level, quadratic on a 100 kB adversarial URL, so the remainder goes to the linear algorithm.
_REGEX_PASSES = 4


def _decode_match(match: re.Match[bytes]) -> bytes:
    return _UNHEX[match[0]]


def _encode_match(match: re.Match[bytes]) -> bytes:
    return _ESCAPED[match[0]]


def _unescape_linear(data: bytes) -> bytes:
    """Reach the unescaping fixed point in one left-to-right scan.

    Escapes never overlap (a ``%`` cannot be a hex digit), so repeated unescaping is confluent: any
    order of decoding reaches the same result, and decoding as soon as an escape appears at the end of
    the output is both correct and linear.
    """
    out = bytearray()
    for c in data:
        out.append(c)
        while c in _HEX_VALUE and len(out) >= 3 and out[-3] == 0x25 and out[-2] in _HEX_VALUE:
            c = (_HEX_VALUE[out[-2]] << 4) | _HEX_VALUE[c]
            del out[-3:]
            out.append(c)
    return bytes(out)


def unescape(data: bytes) -> bytes:
    """Undo every level of percent-encoding, because lists and datasets encode the same URL differently."""
    for _ in range(_REGEX_PASSES):
        data, count = _ESCAPE_SEQ.subn(_decode_match, data)
        if count == 0 or b"%" not in data:
            return data
    return _unescape_linear(data)


def escape(data: bytes) -> bytes:
    """Write as ``%XX`` the bytes the canonical form never holds raw (one level)."""
    if _NEEDS_ESCAPE.search(data) is None:
        return data
    return _NEEDS_ESCAPE.sub(_encode_match, data)
