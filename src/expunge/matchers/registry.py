"""The matchers a signal type can name (:attr:`expunge.signals.base.Signal.matcher`)."""

from __future__ import annotations

from expunge.matchers.base import Matcher
from expunge.matchers.exact import ExactMatcher
from expunge.matchers.keep import KeepMatcher
from expunge.matchers.perceptual import HammingMatcher

MATCHERS: dict[str, Matcher] = {}


def register_matcher(name: str, matcher: Matcher) -> Matcher:
    if name in MATCHERS and MATCHERS[name] is not matcher:
        raise ValueError(f"matcher {name!r} is already registered")
    MATCHERS[name] = matcher
    return matcher


def get_matcher(name: str) -> Matcher:
    try:
        return MATCHERS[name]
    except KeyError:
        raise KeyError(f"unknown matcher {name!r} (known: {', '.join(MATCHERS)})") from None


register_matcher("exact", ExactMatcher())
register_matcher("hamming", HammingMatcher())
register_matcher("keep", KeepMatcher())
