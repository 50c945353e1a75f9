"""Safe Browsing URL expressions: SHA-256 of any host-suffix/path-prefix expression of the URL."""

from __future__ import annotations

from dataclasses import dataclass

from expunge.features.base import Feature
from expunge.signals.base import Signal


@dataclass(frozen=True)
class UrlExpression(Signal):
    def feature(self, recipe: str) -> Feature:
        return Feature("url_expr", "sha256")


URL_EXPRESSION_SHA256 = UrlExpression("url_expression_sha256", 32, ("canonical",))
