"""The format registry: built-ins by name, discovery order (webdataset, imagefolder, parquet as the
fallback), a registered format taking part in discovery, and verify's per-shard lookup."""

from __future__ import annotations

import tarfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from expunge.errors import ExpungeError
from expunge.formats import registry
from expunge.formats.base import CleanRows, CleanTarget, Shard, ShardFormat, ShardOutputs


def _parquet(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"url": ["http://example.org/a"]}), path)


def _tar(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tf:
        tf.add(__file__, arcname="000.txt")


def _image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")


def test_builtins_by_name_in_discovery_order() -> None:
    names = [f.name for f in registry.formats()]
    assert names[:2] == ["webdataset", "imagefolder"] and names[-1] == "parquet"
    assert registry.get("parquet").fallback
    with pytest.raises(ExpungeError, match="unknown dataset format"):
        registry.get("no-such-format")


def test_discovery_order_tars_then_images_then_parquet(tmp_path: Path) -> None:
    _parquet(tmp_path / "ds" / "a.parquet")
    assert registry.discover([str(tmp_path / "ds")])[2] == "parquet"
    _image(tmp_path / "ds" / "imgs" / "x.jpg")
    root, shards, kind = registry.discover([str(tmp_path / "ds")])
    assert kind == "imagefolder" and [s.name for s in shards] == ["."]  # one folder: it is the root
    assert root == str(tmp_path / "ds" / "imgs")
    assert shards[0].format == "imagefolder" and shards[0].location == str(tmp_path / "ds" / "imgs")
    _tar(tmp_path / "ds" / "t" / "00000.tar")
    _parquet(tmp_path / "ds" / "t" / "00000.parquet")
    _root, shards, kind = registry.discover([str(tmp_path / "ds")])
    assert kind == "webdataset" and [s.name for s in shards] == ["00000.tar"]
    assert shards[0].metadata == str(tmp_path / "ds" / "t" / "00000.parquet")
    assert shards[0].files == [shards[0].location, shards[0].metadata]


def test_no_specs_refused() -> None:
    with pytest.raises(ExpungeError, match="no dataset given"):
        registry.discover([])


class _Lines(ShardFormat):
    """A toy format claiming ``*.lines`` files, to show a registered format takes part in discovery."""

    name = "test-lines"
    media_type = "text/plain"

    def claims(self, specs: Sequence[str]) -> bool:
        return any(s.endswith(".lines") for s in specs)

    def discover(self, specs: Sequence[str]) -> tuple[str, list[Shard]]:
        paths = sorted(str(Path(s).resolve()) for s in specs)
        root = str(Path(paths[0]).parent)
        return root, [Shard(Path(p).name, self.name, p, p) for p in paths]

    def content_files(self, shard: Shard) -> list[str]:
        return [shard.location]

    def rows(self, shard: Shard) -> int:
        return len(Path(shard.location).read_text().splitlines())

    def iter_text(self, shard: Shard, column: str) -> Iterator[pa.Array]:
        yield pa.array(Path(shard.location).read_text().splitlines())

    def outputs(self, shard: Shard, target: CleanTarget, drop_keys: frozenset[str]) -> ShardOutputs:
        return ShardOutputs([target.out], [target.out])

    def write_clean(self, shard: Shard, target: CleanTarget, rows: CleanRows) -> str:
        lines = Path(shard.location).read_text().splitlines(keepends=True)
        gone = set(rows.gone)
        target.out.write_text("".join(x for i, x in enumerate(lines) if i not in gone))
        return "rewritten"

    def owns_release_shard(self, release: Path, name: str) -> bool:
        return name.endswith(".lines")

    def release_files(self, release: Path, name: str) -> tuple[list[str], int | None]:
        return [str(release / name)], None


@pytest.fixture
def lines_format() -> Iterator[ShardFormat]:
    fmt = registry.register(_Lines)
    try:
        yield fmt
    finally:
        registry.unregister(_Lines.name)


def test_registered_format_is_used_by_discovery_before_the_fallback(
    tmp_path: Path, lines_format: ShardFormat
) -> None:
    data = tmp_path / "a.lines"
    data.write_text("http://example.org/1\nhttp://example.org/2\n")
    names = [f.name for f in registry.formats()]
    assert names.index("test-lines") < names.index("parquet")  # registered after it, still asked first
    _root, shards, kind = registry.discover([str(data)])
    assert kind == "test-lines" and shards[0].handler is lines_format
    assert shards[0].handler.rows(shards[0]) == 2
    assert shards[0].handler.values_at(shards[0], "url", [1, 5], lambda a: a) == [
        "http://example.org/2",
        None,
    ]
    assert registry.release_format(tmp_path, "a.lines") is lines_format
    out = tmp_path / "out.lines"
    action = lines_format.write_clean(shards[0], CleanTarget(out, tmp_path), CleanRows(2, [0]))
    assert action == "rewritten" and out.read_text() == "http://example.org/2\n"


def test_one_name_one_format(lines_format: ShardFormat) -> None:
    assert registry.register(lines_format) is lines_format  # registering the same object again is a no-op
    with pytest.raises(ValueError, match="already registered"):
        registry.register(_Lines)
    with pytest.raises(TypeError):
        registry.register(object)


def test_release_shards_are_recognised_as_verify_did(tmp_path: Path) -> None:
    (tmp_path / "imgs").mkdir()
    assert registry.release_format(tmp_path, "00000.tar").name == "webdataset"
    assert registry.release_format(tmp_path, "imgs").name == "imagefolder"
    assert registry.release_format(tmp_path, ".").name == "imagefolder"
    assert registry.release_format(tmp_path, "part-0.parquet").name == "parquet"
    assert registry.release_format(tmp_path, "missing").name == "parquet"
