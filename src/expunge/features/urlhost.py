"""Host canonicalisation for Safe Browsing URLs (:mod:`expunge.features.urlcanon`): ports, dots, IDNA, IPv4.

A list entry and a dataset row name the same site only if their hosts reduce to the same bytes:
punycode for Unicode labels, dotted decimal for every ``inet_aton`` spelling of an address, no port,
no empty labels, lower case.
"""

from __future__ import annotations

import re

# Ports, empty ports and trailing dots, repeatedly: removing just one ``:digits`` would leave
# ``a:1`` from ``a:1:2`` for the next canonicalisation to strip again.
_PORT_TAIL = re.compile(rb"(?::[0-9]*|\.)+\Z")
_DOT_RUNS = re.compile(rb"\.{2,}")
# What an IDN conversion may produce: anything else would change how the URL parses next time.
_IDNA_RESULT = re.compile(rb"[A-Za-z0-9_.\-]+")
_MAX_IDN_LABEL = 252
_IPV4_PART = rb"(?:0x[0-9a-f]+|[0-9]+)"
_IPV4_LIKE = re.compile(_IPV4_PART + rb"(?:\." + _IPV4_PART + rb"){0,3}")
_DOTTED_QUAD = re.compile(rb"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}")
_OCTAL_DIGITS = frozenset(b"01234567")
_DIGITS = frozenset(b"0123456789")


def _ipv4_part(part: bytes) -> int | None:
    if part.startswith(b"0x"):
        digits, base = part[2:], 16
    elif len(part) > 1 and part[0] == 0x30:
        digits, base = part[1:], 8
        if not _OCTAL_DIGITS.issuperset(digits):
            return None
    else:
        digits, base = part, 10
    # Bounding the length keeps int() away from huge zero-padded inputs; 12 digits exceed 2**32 anyway.
    if len(digits.lstrip(b"0")) > 12:
        return None
    return int(digits, base)


def _ipv4(host: bytes) -> bytes | None:
    """Dotted-decimal form of an ``inet_aton`` address, so ``3279880203`` and ``195.127.0.11`` match."""
    if _IPV4_LIKE.fullmatch(host) is None:
        return None
    values: list[int] = []
    for part in host.split(b"."):
        value = _ipv4_part(part)
        if value is None:
            return None
        values.append(value)
    tail_bytes = 5 - len(values)
    if any(v > 255 for v in values[:-1]) or values[-1] >> (8 * tail_bytes):
        return None
    octets = values[:-1] + list(values[-1].to_bytes(tail_bytes, "big"))
    return b".".join(b"%d" % o for o in octets)


def _idna(host: bytes) -> bytes:
    """Punycode the labels the codec accepts, so Unicode and ``xn--`` spellings of a host agree."""
    try:
        host.decode("utf-8")
    except UnicodeDecodeError:
        return host
    labels = host.split(b".")
    for i, label in enumerate(labels):
        # Punycode is quadratic, and a label over 63 code points (252 UTF-8 bytes) cannot convert anyway.
        if label.isascii() or len(label) > _MAX_IDN_LABEL:
            continue
        try:
            ascii_label = label.decode("utf-8").encode("idna")
        except UnicodeError:
            continue
        if _IDNA_RESULT.fullmatch(ascii_label) is not None:
            labels[i] = ascii_label
    return b".".join(labels)


def canonical_host(host: bytes) -> bytes | None:
    """Unescaped canonical host, or None when nothing is left to name a site."""
    at = host.rfind(b"@")
    if at >= 0:
        host = host[at + 1 :]
    host = _PORT_TAIL.sub(b"", host)
    if host.startswith(b"[") and b"]" in host:
        return host.lower()
    if not host.isascii():
        host = _idna(host)
    if b".." in host:
        host = _DOT_RUNS.sub(b".", host)
    host = host.strip(b".").lower()
    if not host:
        return None
    if host[0] in _DIGITS:
        address = _ipv4(host)
        if address is not None:
            return address
    return host


def is_ip_host(host: bytes) -> bool:
    """A bracketed IPv6 or a dotted-quad IPv4 host: it has no parent domains to look up."""
    return host.startswith(b"[") or _DOTTED_QUAD.fullmatch(host) is not None
