"""Signal types: how a list value is parsed, and which index feature of a row it is compared with.

Signal types are kept apart from content types (as in python-threatexchange): a bank holds values of
one signal type; the index holds, per shard, the *features* those signal types need (for example
``url:canonical:sha1``). Adding a signal type is one entry in :data:`SIGNALS`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

RECIPES = ("raw", "stripped", "canonical")
_HEX = re.compile(r"[0-9a-fA-F]*")
# A canonical host that can stand in a domain list: labels of letters, digits, '-', '_' (IDN as punycode).
_DOMAIN = re.compile(rb"[a-z0-9_-]+(?:\.[a-z0-9_-]+)+|\[[0-9a-f:.]+\]")


@dataclass(frozen=True)
class SignalType:
    name: str
    width: int  # bytes per stored value
    feature_kind: str  # "url" | "url_expr" | "domain" | "image"
    algo: str  # digest of the feature value: md5 | sha1 | sha256 | pdq
    recipes: tuple[str, ...]  # allowed recipes; the first is the default
    plaintext: bool = False  # list holds plaintext (URL or domain) that is hashed on import
    matcher: str = "exact"  # "exact" membership | "hamming" distance within a threshold | "keep" absence
    default_threshold: int | None = None  # for hamming matchers

    @property
    def is_image(self) -> bool:
        return self.feature_kind == "image"

    def feature(self, recipe: str) -> str:
        """Name of the index column this signal type is matched against."""
        if self.feature_kind == "url":
            return f"url:{recipe}:{self.algo}"
        return f"{self.feature_kind}:{self.algo}"

    def parse(self, token: str) -> bytes:
        """One list value → the stored binary value. Raises ValueError with a content-free message."""
        if self.name == "url":
            from expunge.features.urlcanon import canonicalize

            canon = canonicalize(token.encode("utf-8"))
            if canon is None:
                raise ValueError("not an http(s) URL that can be canonicalised")
            return hashlib.sha256(canon).digest()
        if self.name == "domain" and not (len(token) == 64 and _HEX.fullmatch(token)):
            from expunge.features.urlcanon import host_suffixes

            text = token.strip().encode("utf-8")
            # "*.example.com" means the domain and its subdomains, which is what a domain entry means.
            text = text.removeprefix(b"*.")
            # An entry written as a URL keeps its own scheme: another prefix would make "http" the host.
            hosts = host_suffixes(text if b"://" in text else b"http://" + text + b"/")
            if not hosts or not _DOMAIN.fullmatch(hosts[0]):
                raise ValueError("not a domain name or a 64-digit hex SHA-256")
            return hashlib.sha256(hosts[0]).digest()
        return parse_hex(token, self.width, self.name)


def parse_hex(token: str, width: int, name: str) -> bytes:
    if not _HEX.fullmatch(token):
        raise ValueError(f"invalid hex digit in {name} value")
    if len(token) != 2 * width:
        raise ValueError(f"expected {2 * width} hex digits for {name}, found {len(token)}")
    return bytes.fromhex(token)


SIGNALS: dict[str, SignalType] = {
    s.name: s
    for s in (
        SignalType("url_md5", 16, "url", "md5", RECIPES),
        SignalType("url_sha1", 20, "url", "sha1", RECIPES),
        SignalType("url_sha256", 32, "url", "sha256", RECIPES),
        SignalType("url", 32, "url", "sha256", ("canonical",), plaintext=True),
        SignalType("domain", 32, "domain", "sha256", ("canonical",), plaintext=True),
        SignalType("url_expression_sha256", 32, "url_expr", "sha256", ("canonical",)),
        # A keep-list: SHA-256 of the exact URL bytes of a cleaned release. Rows whose URL is NOT in it are
        # removed ("not in the release"), which is how derivative copies follow a release (LAION's way).
        # Exact bytes, not a canonical form: a raw-recipe list may flag one spelling of a URL that the
        # release kept in another, and a keep-list must never widen what it keeps.
        SignalType("release_keep", 32, "url", "sha256", ("raw",), matcher="keep"),
        # Image signals: digests of the exact stored bytes, and PDQ of the decoded pixels.
        SignalType("image_md5", 16, "image", "md5", ("stored",)),
        SignalType("image_sha1", 20, "image", "sha1", ("stored",)),
        SignalType("image_sha256", 32, "image", "sha256", ("stored",)),
        SignalType("pdq", 32, "image", "pdq", ("decoded",), matcher="hamming", default_threshold=31),
    )
}


def get_signal(name: str) -> SignalType:
    try:
        return SIGNALS[name]
    except KeyError:
        raise KeyError(f"unknown signal type {name!r} (known: {', '.join(SIGNALS)})") from None


def feature_width(feature: str) -> int:
    return {"md5": 16, "sha1": 20, "sha256": 32, "pdq": 32}[feature.rsplit(":", 1)[1]]


def feature_is_image(feature: str) -> bool:
    return feature.startswith("image:")


def feature_is_multi(feature: str) -> bool:
    """Multi-valued features yield a list of digests per row (expressions, host suffixes)."""
    return feature.split(":", 1)[0] in ("url_expr", "domain")
