"""Feature kinds: a kind declares its source column role and computes its values from batches of that
column; the index stage groups features by role and reads each column once per shard."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from expunge.errors import ExpungeError
from expunge.features.base import KINDS, Feature, FeatureKind, parse_feature, register_kind
from expunge.features.digest import digest_array
from expunge.features.url import UrlBatch
from expunge.formats.base import Shard
from expunge.index.build import IndexTask, index_shard, read_feature, read_quarantine


class _Lower:
    """A batch wrapper of the test kind: counts how often it is built."""

    built = 0

    def __init__(self, values: pa.Array) -> None:
        type(self).built += 1
        self.lower = pc.utf8_lower(values.cast(pa.string()))


@dataclass(frozen=True)
class _LowerKind(FeatureKind):
    """SHA-256 of the lower-cased column text (a kind brought from outside features/)."""

    batch_type: ClassVar[Any] = _Lower

    def values(self, batch: _Lower, feature: Feature) -> pa.Array:
        return digest_array(batch.lower, feature.algo)


@pytest.fixture
def kinds(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr("expunge.features.base.KINDS", dict(KINDS))
    parse_feature.cache_clear()
    register_kind(_LowerKind("test_lower_url", "url", ("sha256",)))
    register_kind(_LowerKind("test_lower_caption", "caption", ("sha256",)))
    register_kind(_LowerKind("test_lower_other", "other", ("sha256",)))
    yield
    parse_feature.cache_clear()


def _shard(tmp_path: Path) -> Shard:
    table = pa.table(
        {
            "url": ["http://river.example/A.jpg", None, "not a url", "http://hill.example/b.png"],
            "caption": ["A Quiet River", "a hill", None, "Hill"],
        }
    )
    pq.write_table(table, tmp_path / "part-0.parquet", row_group_size=2)
    path = str(tmp_path / "part-0.parquet")
    return Shard("part-0.parquet", "parquet", path, metadata=path)


def _task(tmp_path: Path, features: tuple[str, ...], caption: str | None = "caption") -> IndexTask:
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return IndexTask(
        shard=_shard(tmp_path),
        url_column="url",
        index_dir=str(tmp_path / "index"),
        tmp_dir=str(tmp_path / "tmp"),
        features=features,
        rows_needed=True,
        known_sha256=None,
        caption_column=caption,
    )


def _sha(v: str | None) -> bytes | None:
    return None if v is None else hashlib.sha256(v.lower().encode()).digest()


def test_a_registered_kind_parses_and_says_its_source(kinds: None) -> None:
    f = parse_feature("test_lower_caption:sha256")
    assert (f.source, f.file, f.column, f.width, f.multi, f.is_image) == (
        "caption",
        "test_lower_caption_sha256.parquet",
        "v",
        32,
        False,
        False,
    )
    with pytest.raises(KeyError):
        parse_feature("test_lower_caption:pdq")
    with pytest.raises(ValueError, match="already registered"):
        register_kind(_LowerKind("url", "url", ("sha256",)))


def test_each_column_is_read_once_and_every_kind_gets_its_values(
    kinds: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = _task(
        tmp_path,
        ("url:canonical:sha1", "domain:sha256", "test_lower_url:sha256", "test_lower_caption:sha256"),
    )
    reads: list[str] = []
    fmt = type(task.shard.handler)
    original = fmt.iter_text
    monkeypatch.setattr(
        fmt, "iter_text", lambda self, shard, col: reads.append(col) or original(self, shard, col)
    )
    _Lower.built = 0
    res = index_shard(task)
    assert sorted(reads) == ["caption", "url"]  # one pass per column, whatever the number of features
    assert _Lower.built == 2  # one wrapper per batch of each column (two batches each), not per feature
    index = Path(task.index_dir)
    urls = ["http://river.example/A.jpg", None, "not a url", "http://hill.example/b.png"]
    captions = ["A Quiet River", "a hill", None, "Hill"]
    assert read_feature(index, "test_lower_url:sha256").to_pylist() == [_sha(u) for u in urls]
    assert read_feature(index, "test_lower_caption:sha256").to_pylist() == [_sha(c) for c in captions]
    expected = UrlBatch(pa.array(urls)).feature("url:canonical:sha1").to_pylist()
    assert read_feature(index, "url:canonical:sha1").to_pylist() == expected
    # Quarantine codes come from the URL column only: the null caption quarantines nothing.
    assert read_quarantine(index).tolist() == [0, 1, 4, 0]
    assert (res.rows, res.quarantined) == (4, {"null_url": 1, "unparseable_url": 1})


def test_caption_only_features_still_take_quarantine_from_urls(kinds: None, tmp_path: Path) -> None:
    task = _task(tmp_path, ("test_lower_caption:sha256",))
    res = index_shard(task)
    assert read_quarantine(Path(task.index_dir)).tolist() == [0, 1, 4, 0]
    assert res.rows == 4


def test_a_role_the_dataset_lacks_is_refused_in_one_line(kinds: None, tmp_path: Path) -> None:
    with pytest.raises(ExpungeError, match=r"caption lists need a caption column \(set --caption-column\)"):
        index_shard(_task(tmp_path, ("test_lower_caption:sha256",), caption=None))
    with pytest.raises(ExpungeError, match="other lists need a other column"):
        index_shard(_task(tmp_path, ("test_lower_other:sha256",)))
