"""Every storage function on local paths and on fsspec's memory filesystem (standing in for any
protocol without its own fast path)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from expunge.errors import ExpungeError
from expunge.storage import (
    arrow_filesystem,
    copy,
    create_if_absent,
    delete,
    exists,
    filesystem,
    iter_chunks,
    listdir,
    open_input,
    parse,
    put_bytes,
    put_file,
    read_bytes,
    size,
    walk,
)


def _table(rows: int = 200) -> pa.Table:
    return pa.table(
        {
            "URL": [f"https://img.photos.example/{i:05d}.jpg" for i in range(rows)],
            "TEXT": [f"a blue mug number {i}" for i in range(rows)],
        }
    )


def test_local_round_trip(tmp_path: Path) -> None:
    loc = parse(tmp_path / "out" / "a.bin")
    assert not exists(loc)
    put_bytes(loc, b"hello")
    assert exists(loc) and size(loc) == 5 and read_bytes(loc) == b"hello"
    assert b"".join(iter_chunks(loc, chunk=2)) == b"hello"
    assert not [p for p in os.listdir(tmp_path / "out") if p != "a.bin"]  # no temporaries left
    src = tmp_path / "src.bin"
    src.write_bytes(b"x" * 1000)
    put_file(src, loc.parent.join("b.bin"))
    copy(loc, loc.parent.join("sub", "c.bin"))
    assert read_bytes(loc.parent.join("sub", "c.bin")) == b"hello"
    assert read_bytes(loc.parent.join("b.bin")) == b"x" * 1000
    delete(loc)
    delete(loc)  # already gone: fine
    assert not exists(loc)


def test_local_walk_skips_state_folders_and_hidden_files(tmp_path: Path) -> None:
    rels = ["a/1.parquet", "a/b/2.parquet", "c.parquet", ".expunge/x", "_temporary/y", "a/.tmp-z", "a/_ok"]
    for rel in rels:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"1")
    names = [os.path.relpath(x.path, tmp_path) for x in walk(tmp_path)]
    assert names == ["a/1.parquet", "a/_ok", "a/b/2.parquet", "c.parquet"]
    assert [x.name for x in listdir(tmp_path / "a")] == ["1.parquet", "_ok"]
    assert walk(tmp_path / "c.parquet") == [parse(tmp_path / "c.parquet")]
    with pytest.raises(ExpungeError, match="not found"):
        walk(tmp_path / "missing")


def test_local_create_if_absent(tmp_path: Path) -> None:
    lock = parse(tmp_path / "store" / "LOCK")
    assert create_if_absent(lock, b"run-1") is True
    assert create_if_absent(lock, b"run-2") is False
    assert read_bytes(lock) == b"run-1"
    assert sorted(os.listdir(tmp_path / "store")) == ["LOCK"]


def test_local_create_if_absent_has_one_winner(tmp_path: Path) -> None:
    lock = parse(tmp_path / "LOCK")
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def take(i: int) -> None:
        barrier.wait()
        results.append(create_if_absent(lock, f"run-{i}".encode()))

    threads = [threading.Thread(target=take, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]
    assert read_bytes(lock).startswith(b"run-")


def test_local_open_input_reads_parquet(tmp_path: Path) -> None:
    pq.write_table(_table(), tmp_path / "p.parquet")
    with open_input(tmp_path / "p.parquet") as fh:
        assert pq.ParquetFile(fh).read(columns=["URL"]).num_rows == 200
    fs, path = arrow_filesystem(tmp_path / "p.parquet")
    assert fs.get_file_info(path).size == size(tmp_path / "p.parquet")


def test_memory_round_trip_and_server_side_copy() -> None:
    root = parse("memory://expunge-test/ds")
    put_bytes(root.join("a", "1.bin"), b"one")
    put_bytes(root.join("_temporary", "x"), b"tmp")
    put_bytes(root.join("a", ".expunge-tmp-2"), b"partial")
    put_bytes(root.join("2.bin"), b"two")
    assert [x.url for x in walk(root)] == [
        "memory://expunge-test/ds/2.bin",
        "memory://expunge-test/ds/a/1.bin",
    ]
    assert [x.name for x in listdir(root)] == ["2.bin"]
    assert exists(root.join("2.bin")) and not exists(root.join("3.bin")) and size(root.join("2.bin")) == 3
    copy(root.join("2.bin"), root.join("copied.bin"))
    assert read_bytes(root.join("copied.bin")) == b"two"
    delete(root.join("copied.bin"))
    assert not exists(root.join("copied.bin"))
    with pytest.raises(ExpungeError, match="does not support conditional writes; refusing to run without"):
        create_if_absent(root.join("LOCK"), b"x")
    filesystem(root).rm(root.url, recursive=True)


def test_memory_parquet_through_arrow_wrapper(tmp_path: Path) -> None:
    pq.write_table(_table(), tmp_path / "p.parquet")
    loc = parse("memory://expunge-test/pq/p.parquet")
    put_file(tmp_path / "p.parquet", loc)
    with open_input(loc) as fh:
        got = pq.ParquetFile(fh).read(columns=["URL"]).column("URL").to_pylist()
    assert got == _table()["URL"].to_pylist()
    # Cross-store copies go through a local temporary: memory → local, local → memory, memory → memory.
    copy(loc, tmp_path / "back.parquet")
    assert (tmp_path / "back.parquet").read_bytes() == (tmp_path / "p.parquet").read_bytes()
    filesystem(loc).rm(loc.parent.url, recursive=True)


def test_missing_local_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ExpungeError) as info:
        read_bytes(tmp_path / "nope.bin")
    assert str(info.value) == f"{tmp_path / 'nope.bin'}: not found"
    with pytest.raises(ExpungeError, match="not found"):
        open_input(tmp_path / "nope.bin")


def test_missing_backend_package_is_named() -> None:
    with pytest.raises(ExpungeError, match=r"hf:// needs the huggingface_hub package"):
        try:
            import huggingface_hub  # noqa: F401
        except ImportError:
            read_bytes("hf://datasets/org/name/x.parquet")
        else:
            pytest.skip("huggingface_hub is installed here; hf:// tests need the network")


def test_importing_storage_loads_no_backend() -> None:
    code = (
        "import sys, expunge.storage as s; s.parse('s3://b/k'); s.is_remote('gs://b');"
        "bad = [m for m in ('fsspec', 's3fs', 'botocore', 'aiobotocore', 'pyarrow') if m in sys.modules];"
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
