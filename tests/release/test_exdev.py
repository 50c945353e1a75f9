"""A store and a release folder on different filesystems: every rename keeps its temporary on the
destination's filesystem (a rename across devices fails with EXDEV)."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from expunge import api, atomic
from expunge.release.verify import verify_release
from tests.conftest import SmallDataset, tree_bytes


@pytest.fixture
def other_fs(tmp_path: Path) -> Iterator[Path]:
    """A folder on another filesystem than ``tmp_path`` (/dev/shm is a tmpfs on Linux)."""
    base = Path("/dev/shm")
    if not base.is_dir() or not os.access(base, os.W_OK) or os.stat(base).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("no writable folder on another filesystem than the test's tmp folder (/dev/shm)")
    where = Path(tempfile.mkdtemp(prefix="expunge-exdev-", dir=base))
    try:
        yield where
    finally:
        shutil.rmtree(where, ignore_errors=True)


@pytest.mark.parametrize("cover", [0, 5])
def test_store_and_release_on_different_filesystems(
    small_ds: SmallDataset, tmp_path: Path, other_fs: Path, cover: int
) -> None:
    lists = [f"{small_ds.lists['iwf']}:url_md5"]
    opts = api.Options(store=other_fs / "store", workers=2, cover=cover)
    api.clean([str(small_ds.root)], tmp_path / "out", lists=lists, opts=opts)
    assert verify_release(tmp_path / "out") == []
    first = tree_bytes(tmp_path / "out")
    api.clean([str(small_ds.root)], tmp_path / "out", lists=lists, opts=opts)  # resumes across devices
    assert tree_bytes(tmp_path / "out") == first
    assert not list(tmp_path.glob(".*expunge-tmp*"))  # temporaries beside OUT are cleared


def test_simulated_exdev_every_rename_stays_on_its_device(
    small_ds: SmallDataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same disk, but the store is made to look like another device: a rename between the two fails."""
    store = tmp_path / "store"
    real_stat, real_replace, real_link = os.stat, os.replace, os.link

    def device(path: object) -> int:
        return 1 if Path(os.fsdecode(path)).absolute().is_relative_to(store) else 2  # type: ignore[arg-type]

    def fake_stat(path: object, *args: object, **kw: object) -> os.stat_result:
        st = real_stat(path, *args, **kw)  # type: ignore[arg-type]
        if isinstance(path, int):
            return st
        fields = list(st[:10])
        fields[2] = device(path)
        return os.stat_result(fields)

    def crossing(src: object, dst: object) -> bool:
        return device(Path(os.fsdecode(src)).parent) != device(Path(os.fsdecode(dst)).parent)  # type: ignore[arg-type]

    def fake_replace(src: object, dst: object) -> None:
        if crossing(src, dst):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real_replace(src, dst)  # type: ignore[arg-type]

    def fake_link(src: object, dst: object) -> None:
        if crossing(src, dst):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real_link(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "stat", fake_stat)
    monkeypatch.setattr(os, "replace", fake_replace)
    monkeypatch.setattr(os, "link", fake_link)
    lists = [f"{small_ds.lists['iwf']}:url_md5"]
    for cover in (0, 5):  # workers=1: the tasks run in this process, under the patches
        opts = api.Options(store=store, workers=1, cover=cover)
        api.clean([str(small_ds.root)], tmp_path / f"out{cover}", lists=lists, opts=opts)
        monkeypatch.setattr(os, "stat", real_stat)
        assert verify_release(tmp_path / f"out{cover}") == []
        monkeypatch.setattr(os, "stat", fake_stat)


def test_temp_dir_for_falls_back_to_the_destination_folder(tmp_path: Path, other_fs: Path) -> None:
    final = tmp_path / "a" / "f.txt"
    assert atomic.temp_dir_for(final, other_fs) == final.parent
    assert atomic.temp_dir_for(final, tmp_path / "t") == tmp_path / "t"
    atomic.write_bytes(final, b"x", other_fs)
    assert final.read_bytes() == b"x" and not list(other_fs.iterdir())
