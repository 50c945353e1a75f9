"""URL signals: digests of a URL recipe (``url_md5``, ``url_sha1``, ``url_sha256``) and plaintext URLs
(``url``), canonicalised and hashed on import."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from expunge.features.base import URL_RECIPES, WIDTHS, Feature
from expunge.features.urlcanon import canonicalize
from expunge.signals.base import PlaintextSignal, Signal


@dataclass(frozen=True)
class UrlDigest(Signal):
    """Hex digests of URLs; the recipe says which bytes of the URL were hashed."""

    algo: str = "sha256"

    def feature(self, recipe: str) -> Feature:
        return Feature("url", self.algo, recipe)


def url_digest(name: str, algo: str) -> UrlDigest:
    return UrlDigest(name, WIDTHS[algo], URL_RECIPES, algo=algo)


@dataclass(frozen=True)
class PlainUrl(PlaintextSignal):
    """URLs in the clear: stored as the SHA-256 of their canonical form, so the store holds no URL."""

    def feature(self, recipe: str) -> Feature:
        return Feature("url", "sha256", recipe)

    def parse(self, token: str) -> bytes:
        canon = canonicalize(token.encode("utf-8"))
        if canon is None:
            raise ValueError("not an http(s) URL that can be canonicalised")
        return hashlib.sha256(canon).digest()


PLAIN_URL = PlainUrl("url", 32, ("canonical",))
