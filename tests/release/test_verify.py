"""``verify`` covers every file of a release: the manifest lists each one (path, SHA-256, size), the
whole folder is walked (hidden and ``_`` names too), and an older release cannot pose as the current one.
The release folder holds published files only, and a rerun writes it byte for byte again."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from expunge import api
from expunge.errors import ExpungeError
from expunge.release import manifest as mf
from expunge.release.sign import keygen
from expunge.release.verify import verify_release
from tests.conftest import SmallDataset, tree_bytes

CLI = [sys.executable, "-m", "expunge.cli"]
SIGNALS = {"iwf": "url_md5", "c3p": "url_sha1:canonical"}


def _release(
    ds: SmallDataset, tmp: Path, out: str = "rel", lists: tuple[str, ...] = ("iwf",), **kw: object
) -> Path:
    opts = api.Options(store=tmp / "store", workers=2, **kw)  # type: ignore[arg-type]
    api.clean([str(ds.root)], tmp / out, lists=[f"{ds.lists[n]}:{SIGNALS[n]}" for n in lists], opts=opts)
    return tmp / out


def _rewrite(path: Path, change: Callable[[bytes], bytes]) -> None:
    data = change(path.read_bytes())
    path.unlink()  # it may be a hard link to the source: never write through it
    path.write_bytes(data)


def _flip(data: bytes) -> bytes:
    b = bytearray(data)
    b[len(b) // 2] ^= 0x01
    return bytes(b)


def test_the_manifest_lists_every_file_and_the_folder_holds_nothing_else(
    small_ds: SmallDataset, tmp_path: Path
) -> None:
    rel = _release(small_ds, tmp_path, publish_records=True)
    man = json.loads((rel / "MANIFEST.json").read_text())
    listed = {f["path"] for f in man["files"]}
    on_disk = set(tree_bytes(rel))
    assert on_disk == listed | {"MANIFEST.json"}
    assert {"summary.json", "report.html", "croissant.json", "README.md", "removed.parquet"} <= listed
    for f in man["files"]:
        data = (rel / f["path"]).read_bytes()
        assert f["sha256"] == hashlib.sha256(data).hexdigest() and f["size"] == len(data)
    assert man["files_root"] == mf.merkle_root([(f["path"], f["sha256"]) for f in man["files"]])
    assert man["release"] == {"sequence": 1, "previous": None}
    assert verify_release(rel) == []


@pytest.mark.parametrize(
    "name",
    ["summary.json", "report.html", "croissant.json", "README.md", "removed.parquet", "part-00001.parquet"],
)
def test_any_edited_file_fails(small_ds: SmallDataset, tmp_path: Path, name: str) -> None:
    rel = _release(small_ds, tmp_path, publish_records=True)
    _rewrite(rel / name, _flip)
    assert f"{rel / name}: SHA-256 differs from the manifest" in verify_release(rel)


@pytest.mark.parametrize(
    "extra",
    [
        "_SUCCESS",
        ".hidden",
        "_tmp/part-00009.parquet",
        ".git/config",
        "sub/dir/notes.txt",
        "part-00009.parquet",
    ],
)
def test_any_unlisted_file_fails_whatever_its_name(
    small_ds: SmallDataset, tmp_path: Path, extra: str
) -> None:
    rel = _release(small_ds, tmp_path)
    (rel / extra).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(rel / "part-00000.parquet", rel / extra)
    problems = verify_release(rel)
    assert f"{rel / extra}: not in the manifest" in problems


def test_links_empty_folders_and_missing_files_fail(small_ds: SmallDataset, tmp_path: Path) -> None:
    rel = _release(small_ds, tmp_path)
    (rel / "_empty").mkdir()
    os.symlink(rel / "part-00000.parquet", rel / "link.parquet")
    (rel / "README.md").unlink()
    problems = verify_release(rel)
    assert f"{rel / '_empty'}: folder not in the manifest" in problems
    assert any(p.startswith(f"{rel / 'link.parquet'}: not a regular file") for p in problems)
    assert f"{rel / 'README.md'}: missing" in problems


def test_a_listed_file_replaced_by_a_symlink_fails(small_ds: SmallDataset, tmp_path: Path) -> None:
    rel = _release(small_ds, tmp_path)
    copy = tmp_path / "elsewhere.parquet"
    shutil.copyfile(rel / "part-00000.parquet", copy)
    (rel / "part-00000.parquet").unlink()
    os.symlink(copy, rel / "part-00000.parquet")  # same bytes, but not a file of the release
    problems = verify_release(rel)
    assert any("part-00000.parquet: not a regular file" in p for p in problems)


def test_a_manifest_naming_paths_outside_the_release_fails(small_ds: SmallDataset, tmp_path: Path) -> None:
    rel = _release(small_ds, tmp_path)
    man = json.loads((rel / "MANIFEST.json").read_text())
    (tmp_path / "outside.txt").write_text("x")
    man["files"].append({"path": "../outside.txt", "sha256": hashlib.sha256(b"x").hexdigest(), "size": 1})
    man["files_root"] = mf.merkle_root([(f["path"], f["sha256"]) for f in man["files"]])
    (rel / "MANIFEST.json").write_bytes(mf.dumps(man))
    assert any("lists a path that is not a file of the release" in p for p in verify_release(rel))


def test_a_corrupt_shard_is_a_problem_not_a_crash(small_ds: SmallDataset, tmp_path: Path) -> None:
    rel = _release(small_ds, tmp_path)
    _rewrite(rel / "part-00002.parquet", lambda d: d[:-4] + b"XXXX")  # the trailing magic bytes
    problems = verify_release(rel)
    assert f"{rel / 'part-00002.parquet'}: not a readable parquet file" in problems


def test_an_older_manifest_format_cannot_vouch_for_the_files(small_ds: SmallDataset, tmp_path: Path) -> None:
    rel = _release(small_ds, tmp_path)
    man = json.loads((rel / "MANIFEST.json").read_text())
    for key in ("files", "files_root", "release"):
        man.pop(key)
    man["format"] = "expunge-manifest/1"
    (rel / "MANIFEST.json").write_bytes(mf.dumps(man))
    assert any("lists no files" in p for p in verify_release(rel))


def test_replaced_embeddings_fail(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    root.mkdir()
    urls = [f"https://e.example/{i}.jpg" for i in range(50)]
    pq.write_table(pa.table({"url": urls}), root / "part.parquet")
    np.save(root / "part.npy", np.arange(100, dtype=np.float32).reshape(50, 2))
    lst = tmp_path / "l.txt"
    lst.write_text(hashlib.md5(urls[3].encode()).hexdigest() + "\n")
    out = tmp_path / "out"
    api.clean([str(root)], out, lists=[f"{lst}:url_md5"], opts=api.Options(store=tmp_path / "s", workers=1))
    assert "part.npy" in {f["path"] for f in json.loads((out / "MANIFEST.json").read_text())["files"]}
    assert verify_release(out) == []
    emb = np.load(out / "part.npy")
    (out / "part.npy").unlink()
    np.save(out / "part.npy", emb[::-1].copy())  # same shape, other rows: misaligned
    assert f"{out / 'part.npy'}: SHA-256 differs from the manifest" in verify_release(out)


def test_tar_release_stats_and_extra_parquet_fail(tmp_path: Path) -> None:
    from expunge.demo.synth_images import generate_image_dataset, write_image_lists

    ds = generate_image_dataset(tmp_path / "data", samples=60, shards=2, listed=4)
    lists = write_image_lists(ds, tmp_path / "lists", listed=4)
    out = tmp_path / "out"
    opts = api.Options(store=tmp_path / "s", workers=1)
    api.clean([str(ds.root)], out, lists=[f"{lists['image_md5']}:image_md5"], opts=opts)
    assert verify_release(out) == []
    stats = out / "00000_stats.json"
    _rewrite(stats, lambda d: d.replace(b"successes", b"successez"))
    shutil.copyfile(out / "00001.parquet", out / "00002.parquet")  # no tar beside it
    problems = verify_release(out)
    assert f"{stats}: SHA-256 differs from the manifest" in problems
    assert f"{out / '00002.parquet'}: not in the manifest" in problems


def test_a_rerun_is_byte_identical_and_keeps_its_sequence(small_ds: SmallDataset, tmp_path: Path) -> None:
    secret, _ = keygen(tmp_path / "key")
    rel = _release(small_ds, tmp_path, sign_key=secret)
    first = tree_bytes(rel)
    _release(small_ds, tmp_path, sign_key=secret)
    assert tree_bytes(rel) == first


def test_a_signed_older_release_is_caught_as_a_rollback(small_ds: SmallDataset, tmp_path: Path) -> None:
    secret, public = keygen(tmp_path / "key")
    rel = _release(small_ds, tmp_path, sign_key=secret)
    old = tmp_path / "old"
    shutil.copytree(rel, old)
    _release(small_ds, tmp_path, lists=("iwf", "c3p"), sign_key=secret)  # a new release, same folder
    new_man = json.loads((rel / "MANIFEST.json").read_text())
    old_man = json.loads((old / "MANIFEST.json").read_text())
    assert new_man["release"]["sequence"] == 2
    assert new_man["release"]["previous"]["files_root"] == old_man["files_root"]
    assert (
        new_man["release"]["previous"]["manifest_sha256"]
        == hashlib.sha256((old / "MANIFEST.json").read_bytes()).hexdigest()
    )
    assert verify_release(rel, pubkey=public, previous=old / "MANIFEST.json", min_sequence=2) == []
    # The old release is intact and validly signed, so only its sequence gives it away.
    assert verify_release(old, pubkey=public) == []
    assert any("older than the minimum 2" in p for p in verify_release(old, pubkey=public, min_sequence=2))
    assert any("not newer" in p for p in verify_release(old, previous=rel / "MANIFEST.json"))
    bad = subprocess.run(
        [*CLI, "verify", str(old), "--pubkey", str(public), "--previous", str(rel / "MANIFEST.json")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 1 and "rollback" in bad.stderr
    ok = subprocess.run([*CLI, "verify", str(rel), "--min-sequence", "2"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr


def test_previous_continues_the_sequence_in_a_new_folder(small_ds: SmallDataset, tmp_path: Path) -> None:
    first = _release(small_ds, tmp_path, out="v1")
    second = _release(
        small_ds, tmp_path, out="v2", lists=("iwf", "c3p"), previous_manifest=first / "MANIFEST.json"
    )
    man = json.loads((second / "MANIFEST.json").read_text())
    assert man["release"]["sequence"] == 2
    assert verify_release(second, previous=first / "MANIFEST.json") == []
    again = tree_bytes(second)
    _release(small_ds, tmp_path, out="v2", lists=("iwf", "c3p"), previous_manifest=first / "MANIFEST.json")
    assert tree_bytes(second) == again


def test_a_foreign_file_in_the_release_folder_is_refused_not_published(
    small_ds: SmallDataset, tmp_path: Path
) -> None:
    rel = _release(small_ds, tmp_path)
    (rel / "notes.txt").write_text("mine")
    with pytest.raises(ExpungeError, match="not part of the release"):
        _release(small_ds, tmp_path)
    assert (rel / "notes.txt").read_text() == "mine"  # refused, never deleted


def test_stale_files_of_earlier_releases_leave_the_folder(small_ds: SmallDataset, tmp_path: Path) -> None:
    secret, _ = keygen(tmp_path / "key")
    rel = _release(small_ds, tmp_path, sign_key=secret, publish_records=True)
    (small_ds.root / "part-00000.parquet").unlink()
    _release(small_ds, tmp_path)  # unsigned, records private, one shard fewer
    on_disk = set(tree_bytes(rel))
    assert "part-00000.parquet" not in on_disk
    assert "removed.parquet" not in on_disk and "MANIFEST.json.minisig" not in on_disk
    assert verify_release(rel) == []


def test_a_shard_changed_in_the_folder_behind_its_size_is_not_vouched_for(
    small_ds: SmallDataset, tmp_path: Path
) -> None:
    rel = _release(small_ds, tmp_path)
    shard = rel / small_ds.clean_shard  # hard-linked from the source: same size, other bytes
    st = shard.stat()
    _rewrite(shard, _flip)
    os.utime(shard, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(ExpungeError, match="not the one expunge wrote"):
        _release(small_ds, tmp_path)
    _release(small_ds, tmp_path)  # the next run writes it again
    assert shard.read_bytes() == (small_ds.root / small_ds.clean_shard).read_bytes()
    assert verify_release(rel) == []


def test_a_symlinked_folder_fails(small_ds: SmallDataset, tmp_path: Path) -> None:
    rel = _release(small_ds, tmp_path)
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", rel / "_extra")
    assert any(p.startswith(f"{rel / '_extra'}: not a regular file") for p in verify_release(rel))
    with pytest.raises(ExpungeError, match="link or special file"):
        _release(small_ds, tmp_path)


def test_an_image_kept_before_and_flagged_now_leaves_the_folder(tmp_path: Path) -> None:
    from expunge.demo.synth_images import _image, _jpeg
    from expunge.features.images import hash_image, pdq_to_hex

    folder = tmp_path / "images" / "a"
    for sub in ("a", "b"):
        (tmp_path / "images" / sub).mkdir(parents=True)
        for i in range(8):
            (tmp_path / "images" / sub / f"img{i}.jpg").write_bytes(
                _jpeg(_image(300 + i + 10 * (sub == "b"), 128))
            )
    out, store = tmp_path / "out", tmp_path / "store"

    def run(flag: list[int]) -> None:
        lst = tmp_path / "listed.pdq"
        lst.write_text(
            "".join(
                f"pdq {pdq_to_hex(hash_image((folder / f'img{i}.jpg').read_bytes()).pdq or b'')}\n"
                for i in flag
            )
        )
        api.clean(
            [str(tmp_path / "images")], out, lists=[f"{lst}:pdq"], opts=api.Options(store=store, workers=1)
        )

    run([1])
    assert (out / "a" / "img5.jpg").is_file()
    run([1, 5])  # img5 was published by the first release and is flagged now
    assert not (out / "a" / "img5.jpg").exists() and not (out / "a" / "img1.jpg").exists()
    assert verify_release(out) == []
