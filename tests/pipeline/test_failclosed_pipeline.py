"""Fail-closed regressions of the pipeline (issue 8): each test is an attack that once got through.

Odd column types, a shard swapped behind an unchanged size and mtime, two runs into one output folder,
symlinks around the output checks, dataset files named like the release's own records, and refusals by
the operating system (full disk, read-only folders, an output path that is a file).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from expunge import api
from expunge.errors import ExpungeError
from expunge.store import folder_lock
from tests.cli.test_app import assert_one_line_error, run

URLS = [f"https://img.photos.example/{i:04d}/view.jpg" for i in range(200)]
FLAGGED = {3, 50, 151}


def _list(tmp: Path) -> Path:
    path = tmp / "synthetic-list.txt"
    path.write_text(
        "# SYNTHETIC\n" + "".join(hashlib.md5(URLS[i].encode()).hexdigest() + "\n" for i in FLAGGED)
    )
    return path


def _write(root: Path, url: pa.Array, name: str = "part-0.parquet", **kw: object) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    table = pa.table({"url": url, "caption": pa.array([f"a mug {i}" for i in range(len(url))])})
    pq.write_table(table, root / name, **kw)  # type: ignore[arg-type]
    return root / name


def _kept_urls(out: Path) -> list[str]:
    table = pq.read_table(out / "part-0.parquet")
    return [str(u) for u in table.column("url").to_pylist()]


@pytest.mark.parametrize(
    "kind",
    ["dictionary", "string_view", "large_string", "binary"],
)
def test_text_layouts_of_the_url_column_are_all_matched(tmp_path: Path, kind: str) -> None:
    arrays = {
        "dictionary": pa.array(URLS).dictionary_encode(),
        "string_view": pa.array(URLS, pa.string_view()),
        "large_string": pa.array(URLS, pa.large_string()),
        "binary": pa.array([u.encode() for u in URLS], pa.binary()),
    }
    _write(tmp_path / "ds", arrays[kind])
    proc = run(
        ["clean", "ds", "--list", f"{_list(tmp_path)}:url_md5", "--out", "out", "-q", "--workers", "1"],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    table = pq.read_table(tmp_path / "out" / "part-0.parquet")
    assert table.num_rows == len(URLS) - len(FLAGGED)
    kept = {u if isinstance(u, str) else u.decode() for u in table.column("url").to_pylist()}
    assert not kept & {URLS[i] for i in FLAGGED}
    assert (
        table.schema.field("url").type == pq.read_schema(tmp_path / "ds" / "part-0.parquet").field("url").type
    )


@pytest.mark.parametrize(
    "array",
    [
        pa.array(range(200)),
        pa.array([[u] for u in URLS]),
        pa.array([{"u": u} for u in URLS]),
        pa.array([float(i) for i in range(200)]),
    ],
    ids=["int", "list", "struct", "float"],
)
def test_a_url_column_that_is_not_text_is_refused(tmp_path: Path, array: pa.Array) -> None:
    _write(tmp_path / "ds", array)
    proc = run(["clean", "ds", "--list", f"{_list(tmp_path)}:url_md5", "--out", "out", "-q"], tmp_path)
    assert_one_line_error(proc, "part-0.parquet", "not text")
    assert not (tmp_path / "out" / "part-0.parquet").exists()


def test_a_shard_swapped_behind_the_same_size_and_mtime_is_reindexed(tmp_path: Path) -> None:
    """Rows reordered, size and mtime restored: the old index would remove the wrong rows."""
    settings = {"compression": "none", "use_dictionary": False, "write_statistics": False}
    path = _write(tmp_path / "ds", pa.array(URLS), **settings)
    listing = f"{_list(tmp_path)}:url_md5"
    opts = api.Options(store=tmp_path / "store", workers=1)
    api.clean([str(tmp_path / "ds")], tmp_path / "out", lists=[listing], opts=opts)
    before = os.stat(path)
    swapped = list(reversed(URLS))  # same lengths, so the same size, other positions
    _write(tmp_path / "ds", pa.array(swapped), **settings)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(path).st_size == before.st_size and os.stat(path).st_mtime_ns == before.st_mtime_ns
    api.clean([str(tmp_path / "ds")], tmp_path / "out2", lists=[listing], opts=opts)
    kept = _kept_urls(tmp_path / "out2")
    assert len(kept) == len(URLS) - len(FLAGGED)
    assert not set(kept) & {URLS[i] for i in FLAGGED}


def test_two_runs_into_one_output_folder_are_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _write(tmp_path / "ds", pa.array(URLS))
    held = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with folder_lock(out, "the output folder"):
            held.set()
            release.wait(30)

    t = threading.Thread(target=hold)
    t.start()
    try:
        assert held.wait(10)
        proc = run(
            ["clean", "ds", "--store", "other", "--list", f"{_list(tmp_path)}:url_md5", "--out", "out", "-q"],
            tmp_path,
        )
        assert_one_line_error(proc, "in use by another expunge process", str(out))
    finally:
        release.set()
        t.join()
    assert not (out / "part-0.parquet").exists()


def test_symlinks_do_not_get_around_the_output_checks(tmp_path: Path) -> None:
    _write(tmp_path / "ds", pa.array(URLS))
    listing = f"{_list(tmp_path)}:url_md5"
    (tmp_path / "link-to-ds").symlink_to(tmp_path / "ds")
    (tmp_path / "ds-link").symlink_to(tmp_path / "ds")
    for out in ("link-to-ds", "link-to-ds/inner"):
        proc = run(["clean", "ds", "--list", listing, "--out", out, "-q"], tmp_path)
        assert_one_line_error(proc, "must not contain, or lie inside, the dataset")
    # The dataset reached through a link, the output inside the real folder.
    proc = run(["clean", "ds-link", "--list", listing, "--out", "ds/out", "-q"], tmp_path)
    assert_one_line_error(proc, "must not contain, or lie inside, the dataset")
    # A dataset file that is a link into the output folder.
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "real.parquet").write_bytes((tmp_path / "ds" / "part-0.parquet").read_bytes())
    (tmp_path / "ds2").mkdir()
    (tmp_path / "ds2" / "part-0.parquet").symlink_to(tmp_path / "out" / "real.parquet")
    proc = run(["clean", "ds2", "--list", listing, "--out", "out", "-q"], tmp_path)
    assert_one_line_error(proc, "inside the output folder")
    # The store inside the output folder would publish its secret key.
    proc = run(["clean", "ds", "--list", listing, "--out", "out2", "--store", "out2/st", "-q"], tmp_path)
    assert_one_line_error(proc, "the store")
    assert sorted(p.name for p in (tmp_path / "ds").iterdir()) == ["part-0.parquet"]


@pytest.mark.parametrize(
    "name", ["removed.parquet", "Removed.parquet", "removed.tar", "README.md", "report.html"]
)
def test_dataset_files_named_like_release_records_are_refused(tmp_path: Path, name: str) -> None:
    root = tmp_path / "ds"
    _write(root, pa.array(URLS))
    if name.endswith(".parquet"):
        _write(root, pa.array(URLS), name=name)
    elif name.endswith(".tar"):  # its companion parquet would land on the release's records
        import io
        import tarfile

        (root / "part-0.parquet").unlink()
        with tarfile.open(root / name, "w") as tar:
            info = tarfile.TarInfo("000000000.txt")
            info.size = 5
            tar.addfile(info, io.BytesIO(b"a mug"))
        pq.write_table(pa.table({"key": ["000000000"], "url": [URLS[0]]}), root / "removed.parquet")
        name = "removed.parquet"
    else:
        (root / name).write_text("not a shard\n")
        # Only shards and their companions are published: a stray README is not a shard at all.
        proc = run(["clean", "ds", "--list", f"{_list(tmp_path)}:url_md5", "--out", "out", "-q"], tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert (tmp_path / "out" / "README.md").read_text() != "not a shard\n"
        return
    proc = run(["clean", "ds", "--list", f"{_list(tmp_path)}:url_md5", "--out", "out", "-q"], tmp_path)
    assert_one_line_error(proc, "reserved for the release's own records", name)


def test_an_output_path_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    _write(tmp_path / "ds", pa.array(URLS))
    (tmp_path / "afile").write_text("x")
    proc = run(["clean", "ds", "--list", f"{_list(tmp_path)}:url_md5", "--out", "afile", "-q"], tmp_path)
    assert_one_line_error(proc, "afile")


def _mount_tmpfs(where: Path, options: str) -> None:
    where.mkdir(parents=True, exist_ok=True)
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root on Linux")
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip()})")


@pytest.fixture
def small_mount(tmp_path: Path):  # type: ignore[no-untyped-def]
    mounts: list[Path] = []

    def make(name: str, options: str) -> Path:
        where = tmp_path / name
        _mount_tmpfs(where, options)
        mounts.append(where)
        return where

    yield make
    for where in mounts:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def test_a_full_disk_is_one_line_and_publishes_nothing_partial(tmp_path: Path, small_mount) -> None:  # type: ignore[no-untyped-def]
    urls = [f"https://img.photos.example/{i:06d}/{'x' * 40}.jpg" for i in range(40_000)]
    _write(tmp_path / "ds", pa.array(urls), compression="none")
    listing = tmp_path / "l.txt"
    listing.write_text(hashlib.md5(urls[7].encode()).hexdigest() + "\n")
    full = small_mount("full", "size=256k")
    proc = run(["clean", "ds", "--list", f"{listing}:url_md5", "--out", str(full / "out"), "-q"], tmp_path)
    assert_one_line_error(proc, "No space left on device", str(full))
    assert not (full / "out" / "part-0.parquet").exists()


def test_read_only_store_and_output_are_one_line(tmp_path: Path, small_mount) -> None:  # type: ignore[no-untyped-def]
    _write(tmp_path / "ds", pa.array(URLS))
    ro = small_mount("ro", "ro,size=64k")
    listing = f"{_list(tmp_path)}:url_md5"
    proc = run(["clean", "ds", "--list", listing, "--out", "out", "--store", str(ro / "st"), "-q"], tmp_path)
    assert_one_line_error(proc, "Read-only file system")
    proc = run(["clean", "ds", "--list", listing, "--out", str(ro / "out"), "-q"], tmp_path)
    assert_one_line_error(proc, "Read-only file system")


def test_folder_lock_refuses_a_second_holder(tmp_path: Path) -> None:
    with (
        folder_lock(tmp_path / "o", "the output folder"),
        pytest.raises(ExpungeError, match="in use"),
        folder_lock(tmp_path / "o", "the output folder"),
    ):
        pass
    with folder_lock(tmp_path / "o", "the output folder"):  # released on exit
        pass


def test_an_index_of_an_older_layout_is_rebuilt(tmp_path: Path) -> None:
    _write(tmp_path / "ds", pa.array(URLS))
    opts = api.Options(store=tmp_path / "store", workers=1)
    listing = f"{_list(tmp_path)}:url_md5"
    api.clean([str(tmp_path / "ds")], tmp_path / "out", lists=[listing], opts=opts)
    assert api.index([str(tmp_path / "ds")], opts=opts).shards_run == 0
    (saved,) = (tmp_path / "store" / "datasets").glob("*/dataset.json")
    state = json.loads(saved.read_text())
    del state["index_format"]  # as a store written before the per-member image index
    saved.write_text(json.dumps(state))
    assert api.index([str(tmp_path / "ds")], opts=opts).shards_run == 1


def test_a_folder_companion_changed_after_indexing_is_checked(tmp_path: Path) -> None:
    """A text file beside the images is published too: changed to hold a listed image, it must not
    ride through on the index made before the change."""
    from PIL import Image

    folder = tmp_path / "ds" / "imgs"
    folder.mkdir(parents=True)
    listed = tmp_path / "listed.png"
    for i, path in enumerate([folder / "a.png", folder / "b.png", listed]):
        Image.new("RGB", (32, 32), (40 * i, 90, 200 - 30 * i)).save(path)
    (folder / "notes.txt").write_text("benign notes\n")
    listing = tmp_path / "img.txt"
    listing.write_text("# SYNTHETIC\n" + hashlib.md5(listed.read_bytes()).hexdigest() + "\n")
    args = ["clean", "ds", "--list", f"{listing}:image_md5", "-q", "--workers", "1"]
    assert run([*args, "--out", "out1"], tmp_path).returncode == 0
    before = os.stat(folder)
    (folder / "notes.txt").write_bytes(listed.read_bytes())
    os.utime(folder, ns=(before.st_atime_ns, before.st_mtime_ns))
    proc = run([*args, "--out", "out2"], tmp_path)
    assert proc.returncode in (0, 2), proc.stderr
    needle = listed.read_bytes()
    published = [p for p in (tmp_path / "out2").rglob("*") if p.is_file() and needle in p.read_bytes()]
    assert published == []


def test_a_root_image_folder_with_a_file_named_like_a_release_record_is_refused(tmp_path: Path) -> None:
    """The root folder's companions are published at the release's top level, beside its card."""
    from PIL import Image

    folder = tmp_path / "ds"
    folder.mkdir()
    Image.new("RGB", (16, 16), (1, 2, 3)).save(folder / "a.png")
    (folder / "README.md").write_text("the dataset's own readme\n")
    listing = tmp_path / "img.txt"
    listing.write_text("# SYNTHETIC\n" + "0" * 32 + "\n")
    proc = run(["clean", "ds", "--list", f"{listing}:image_md5", "--out", "out", "-q"], tmp_path)
    assert_one_line_error(proc, "reserved for the release's own records", "README.md")
