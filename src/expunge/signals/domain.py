"""Domain lists: a domain matches every URL on it or on its subdomains (host suffixes of the row)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from expunge.features.base import Feature
from expunge.features.urlcanon import host_suffixes
from expunge.lists.readers import parse_hex
from expunge.signals.base import PlaintextSignal

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
# A canonical host that can stand in a domain list: labels of letters, digits, '-', '_' (IDN as punycode).
_DOMAIN = re.compile(rb"[a-z0-9_-]+(?:\.[a-z0-9_-]+)+|\[[0-9a-f:.]+\]")


@dataclass(frozen=True)
class Domain(PlaintextSignal):
    """Domain names (or their SHA-256 as 64 hex digits), stored as the SHA-256 of the canonical host."""

    def feature(self, recipe: str) -> Feature:
        return Feature("domain", "sha256")

    def parse(self, token: str) -> bytes:
        if _HEX64.fullmatch(token):
            return parse_hex(token, self.width, self.name)
        text = token.strip().encode("utf-8")
        # "*.example.com" means the domain and its subdomains, which is what a domain entry means.
        text = text.removeprefix(b"*.")
        # An entry written as a URL keeps its own scheme: another prefix would make "http" the host.
        hosts = host_suffixes(text if b"://" in text else b"http://" + text + b"/")
        if not hosts or not _DOMAIN.fullmatch(hosts[0]):
            raise ValueError("not a domain name or a 64-digit hex SHA-256")
        return hashlib.sha256(hosts[0]).digest()


DOMAIN = Domain("domain", 32, ("canonical",))
