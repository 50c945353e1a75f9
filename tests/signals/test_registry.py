"""The signal registry: every signal parses its own values, names a feature whose stored name
round-trips, and names a known matcher; a registered (or plug-in) signal is usable by list import."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from expunge import plugins
from expunge.errors import ExpungeError
from expunge.features.base import Feature, parse_feature
from expunge.features.urlcanon import canonicalize
from expunge.lists.bank import import_list, load_info
from expunge.matchers.registry import MATCHERS
from expunge.signals import SIGNALS, Signal, get_signal, register
from expunge.signals import registry as signal_registry
from expunge.store import Store

PLAINTEXT = {"url": "http://River.example/a/../b", "domain": "*.River.example"}
PLAIN_WANT = {
    "url": hashlib.sha256(canonicalize(b"http://River.example/a/../b") or b"").digest(),
    "domain": hashlib.sha256(b"river.example").digest(),
}


@pytest.mark.parametrize("name", list(SIGNALS))
def test_every_signal_parses_its_values(name: str) -> None:
    signal = get_signal(name)
    if name in PLAINTEXT:
        assert signal.parse(PLAINTEXT[name]) == PLAIN_WANT[name]
    else:
        value = bytes(range(1, signal.width + 1))
        assert signal.parse(value.hex()) == value
        assert signal.parse(value.hex().upper()) == value
        with pytest.raises(ValueError):
            signal.parse(value.hex()[:-2])


@pytest.mark.parametrize("name", list(SIGNALS))
def test_every_signal_names_a_feature_that_round_trips_and_a_known_matcher(name: str) -> None:
    signal = get_signal(name)
    assert signal.default_recipe == signal.recipes[0]
    assert signal.matcher in MATCHERS
    for recipe in signal.recipes:
        f = signal.feature(recipe)
        assert parse_feature(f.name) == f and parse_feature(f.name).name == f.name
        assert f.width == signal.width
    assert signal.thresholded == (signal.matcher == "hamming")


def test_stored_feature_names_are_unchanged() -> None:
    """These strings are in existing stores (bank.json, dataset.json, index file names)."""
    names = {s.feature(r).name for s in SIGNALS.values() for r in s.recipes}
    assert names == {
        *(f"url:{r}:{a}" for r in ("raw", "stripped", "canonical") for a in ("md5", "sha1", "sha256")),
        "domain:sha256",
        "url_expr:sha256",
        "image:md5",
        "image:sha1",
        "image:sha256",
        "image:pdq",
        "caption:nfc:sha256",
    }
    assert parse_feature("url:canonical:sha1").file == "url_canonical_sha1.parquet"
    assert parse_feature("url_expr:sha256").multi and parse_feature("domain:sha256").multi
    assert (
        parse_feature("image:pdq8").column == "dihedral"
        and parse_feature("image:pdq").file == "images.parquet"
    )
    for bad in ("url:lowercase:md5", "image:crc", "domain:pdq", "url:sha256", "pdq", "image:raw:md5", ""):
        with pytest.raises(KeyError):
            parse_feature(bad)


@dataclass(frozen=True)
class _RawSha256(Signal):
    """A third-party style signal: hex SHA-256 of the raw URL bytes."""

    def feature(self, recipe: str) -> Feature:
        return Feature("url", "sha256", recipe)


def test_a_registered_signal_is_usable_by_import_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(signal_registry, "SIGNALS", dict(SIGNALS))
    monkeypatch.setattr("expunge.lists.bank.SIGNALS", signal_registry.SIGNALS)
    register(_RawSha256("raw_url_sha256_test", 32, ("raw",)))
    digest = hashlib.sha256(b"http://river.example/x.jpg").digest()
    listing = tmp_path / "known.txt"
    listing.write_text(digest.hex() + "\n")
    store = Store(tmp_path / "st")
    res = import_list(store, listing, signal="raw_url_sha256_test")
    info = load_info(store, res.name)
    assert (info.signal, info.recipe, info.feature, info.width, res.count) == (
        "raw_url_sha256_test",
        "raw",
        "url:raw:sha256",
        32,
        1,
    )
    bad = tmp_path / "bad.txt"
    bad.write_text("zz" * 32 + "\n")
    with pytest.raises(ExpungeError, match="invalid hex digit in raw_url_sha256_test value"):
        import_list(store, bad, signal="raw_url_sha256_test")


def test_a_name_is_registered_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(signal_registry, "SIGNALS", dict(SIGNALS))
    register(get_signal("url_md5"))  # the same definition again is harmless
    with pytest.raises(ValueError, match="already registered"):
        register(_RawSha256("url_md5", 32, ("raw",)))
    with pytest.raises(TypeError):
        register("url_md5")  # type: ignore[arg-type]


PLUGIN = _RawSha256("plugin_sha256_test", 32, ("raw",))


def test_plugins_load_from_entry_points_and_a_broken_one_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(signal_registry, "SIGNALS", dict(SIGNALS))
    monkeypatch.setattr(signal_registry, "PLUGIN_ERRORS", {})
    eps = [
        EntryPoint("plugin_sha256_test", f"{__name__}:PLUGIN", "expunge.signals"),
        EntryPoint("broken_test", "expunge_no_such_module_test:SIGNAL", "expunge.signals"),
    ]
    monkeypatch.setattr(plugins, "entry_points", lambda group: eps if group == "expunge.signals" else [])
    signal_registry.load_plugins()
    assert get_signal("plugin_sha256_test") is PLUGIN
    with pytest.raises(KeyError, match="plug-in 'broken_test' failed to load: ModuleNotFoundError"):
        get_signal("broken_test")
