"""Image shards fail closed (issue 8, defects 3, 4 and 14).

Every sample must link to exactly one metadata row (names normalised, integer keys by value) or the
shard is refused; every member of every sample is hashed and tried as an image, whatever its
extension; duplicate member names, non-UTF-8 names and duplicate metadata keys are refused. Each test
builds a tiny img2dataset-style shard (or image folder) so a run takes about a second.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from expunge import api
from expunge.demo.synth_images import _image, _jpeg
from expunge.errors import ExpungeError
from expunge.features.images import hash_image, pdq_to_hex
from expunge.formats.tar_scan import sample_keys
from expunge.release.verify import verify_release

KEYS = [f"{i:09d}" for i in range(6)]


def _img(seed: int) -> bytes:
    return _jpeg(_image(seed, 64))


def _url(key: str) -> str:
    return f"http://img.example/{key}.jpg"


def _tar(path: Path, members: Sequence[tuple[str, bytes]]) -> None:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in members:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mtime = 1_700_000_000
            tf.addfile(ti, io.BytesIO(data))


def _sample(key: str, name: str | None = None, seed: int = 0) -> list[tuple[str, bytes]]:
    """An img2dataset sample: image, caption, and json holding the URL (what must never stay behind)."""
    base = name if name is not None else key
    return [
        (f"{base}.jpg", _img(seed or int(key) + 1)),
        (f"{base}.txt", b"a neutral caption"),
        (f"{base}.json", json.dumps({"key": key, "url": _url(key)}).encode()),
    ]


def _meta(path: Path, keys: Sequence[Any], key_type: pa.DataType = pa.string()) -> None:
    n = len(keys)
    pq.write_table(
        pa.table(
            {
                "key": pa.array(list(keys), key_type),
                "url": [_url(f"{i:09d}") for i in range(n)],
                "caption": ["a neutral caption"] * n,
                "status": ["success"] * n,
            }
        ),
        path,
    )


def _dataset(
    root: Path,
    members: Sequence[tuple[str, bytes]],
    keys: Sequence[Any] | None = None,
    key_type: pa.DataType = pa.string(),
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    _tar(root / "00000.tar", members)
    if keys is not None:
        _meta(root / "00000.parquet", keys, key_type)
        stats = {"count": len(keys), "successes": len(keys), "status_dict": {"success": len(keys)}}
        (root / "00000_stats.json").write_text(json.dumps(stats))
    return root


def _lists(
    tmp: Path, urls: Sequence[str] = (), images: Sequence[bytes] = (), pdq: Sequence[bytes] = ()
) -> list[str]:
    out = []
    if urls:
        (tmp / "urls.txt").write_text("".join(hashlib.md5(u.encode()).hexdigest() + "\n" for u in urls))
        out.append(f"{tmp / 'urls.txt'}:url_md5")
    if images:
        (tmp / "md5.txt").write_text("".join(hashlib.md5(b).hexdigest() + "\n" for b in images))
        out.append(f"{tmp / 'md5.txt'}:image_md5")
    if pdq:
        (tmp / "pdq.txt").write_text("".join(f"pdq {pdq_to_hex(hash_image(b).pdq or b'')}\n" for b in pdq))
        out.append(f"{tmp / 'pdq.txt'}:pdq")
    return out


def _clean(tmp: Path, root: Path, lists: list[str], out: str = "out") -> dict[str, Any]:
    opts = api.Options(store=tmp / "store", workers=1)
    return api.clean([str(root)], tmp / out, lists=lists, opts=opts)


def _refused(tmp: Path, root: Path, lists: list[str], *words: str, out: str = "out") -> ExpungeError:
    with pytest.raises(ExpungeError) as info:
        _clean(tmp, root, lists, out)
    err = info.value
    text = str(err)
    assert "\n" not in text
    for w in words:
        assert w in text, text
    for key in KEYS[1:]:  # never quotes keys or URLs
        assert key not in err.message and "img.example" not in text
    assert not (tmp / out / "00000.tar").exists()
    return err


def _names(tar: Path) -> list[str]:
    with tarfile.open(tar) as tf:
        return tf.getnames()


def _accounted(summary: dict[str, Any]) -> None:
    assert summary["rows_kept"] + summary["rows_removed"] + summary["rows_quarantined"] == summary["rows_in"]


# ------------------------------------------------------------------------------------------------
# Defect 3: samples that do not link to their row
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["./", "/", ".//", "./././"])
def test_dot_slash_member_names_link_and_the_flagged_sample_leaves_the_tar(
    tmp_path: Path, prefix: str
) -> None:
    members = [m for k in KEYS[:4] for m in _sample(k, prefix + k)]
    root = _dataset(tmp_path / "ds", members, KEYS[:4])
    summary = _clean(tmp_path, root, _lists(tmp_path, urls=[_url(KEYS[2])]))
    assert (summary["rows_in"], summary["rows_removed"], summary["rows_kept"]) == (4, 1, 3)
    _accounted(summary)
    names = _names(tmp_path / "out" / "00000.tar")
    assert len(names) == 9 and not [n for n in names if KEYS[2] in n]  # image, caption and json gone
    assert pq.read_table(tmp_path / "out" / "00000.parquet").column("key").to_pylist() == [
        KEYS[0], KEYS[1], KEYS[3]
    ]  # fmt: skip
    assert verify_release(tmp_path / "out") == []


def test_integer_key_column_links_zero_padded_tar_keys(tmp_path: Path) -> None:
    members = [m for k in KEYS[:4] for m in _sample(k)]
    root = _dataset(tmp_path / "ds", members, [0, 1, 2, 3, 99], pa.int64())  # 99: a failed download
    summary = _clean(tmp_path, root, _lists(tmp_path, urls=[_url(KEYS[1])]))
    assert (summary["rows_in"], summary["rows_removed"], summary["rows_kept"]) == (5, 1, 4)
    assert not [n for n in _names(tmp_path / "out" / "00000.tar") if KEYS[1] in n]
    assert pq.read_table(tmp_path / "out" / "00000.parquet").column("key").to_pylist() == [0, 2, 3, 99]
    assert json.loads((tmp_path / "out" / "00000_stats.json").read_text())["count"] == 4
    assert verify_release(tmp_path / "out") == []


def test_integer_key_column_with_ambiguous_tar_keys_is_refused(tmp_path: Path) -> None:
    members = _sample("1") + _sample("01", seed=7) + _sample("2", seed=8)
    root = _dataset(tmp_path / "ds", members, [1, 2], pa.int64())
    _refused(tmp_path, root, _lists(tmp_path, urls=[_url("000000001")]), "00000.tar", "2 of 3 sample(s)")


def test_a_sample_without_a_row_refuses_the_shard(tmp_path: Path) -> None:
    members = [m for k in KEYS[:4] for m in _sample(k)]
    root = _dataset(tmp_path / "ds", members, KEYS[:3])  # the tar has one more sample than the metadata
    _refused(tmp_path, root, _lists(tmp_path, urls=[_url(KEYS[0])]), "00000.tar", "1 of 4 sample(s)")


def test_rows_without_a_sample_are_fine_and_counted_once(tmp_path: Path) -> None:
    members = [m for k in (KEYS[0], KEYS[2]) for m in _sample(k)]
    root = _dataset(tmp_path / "ds", members, KEYS[:4])
    summary = _clean(tmp_path, root, _lists(tmp_path, urls=[_url(KEYS[1]), _url(KEYS[2])]))
    assert (summary["rows_in"], summary["rows_removed"], summary["rows_kept"]) == (4, 2, 2)
    assert _names(tmp_path / "out" / "00000.tar") == [n for n, _ in _sample(KEYS[0])]


def test_a_sample_under_a_directory_does_not_link_to_the_bare_key(tmp_path: Path) -> None:
    members = _sample(KEYS[0]) + _sample(KEYS[1]) + [(f"a/{KEYS[1]}.jpg", _img(50))]
    root = _dataset(tmp_path / "ds", members, KEYS[:2])
    _refused(tmp_path, root, _lists(tmp_path, urls=[_url(KEYS[1])]), "1 of 3 sample(s)")


def test_null_keys_link_no_sample(tmp_path: Path) -> None:
    members = _sample(KEYS[0]) + _sample(KEYS[1])
    ok = _dataset(tmp_path / "ok", members, [KEYS[0], KEYS[1], None])  # a keyless failed row: fine
    summary = _clean(tmp_path, ok, _lists(tmp_path, urls=[_url(KEYS[2])]))
    assert (summary["rows_in"], summary["rows_removed"], summary["rows_kept"]) == (3, 1, 2)
    bad = _dataset(tmp_path / "bad", members, [KEYS[0], None])  # the second sample's row has no key
    _refused(tmp_path, bad, _lists(tmp_path, urls=[_url(KEYS[1])]), "1 of 2 sample(s)", out="o2")


def test_a_sample_of_only_json_is_removed_with_its_row(tmp_path: Path) -> None:
    members = [*_sample(KEYS[0]), _sample(KEYS[1])[2]]
    root = _dataset(tmp_path / "ds", members, KEYS[:2])
    summary = _clean(tmp_path, root, _lists(tmp_path, urls=[_url(KEYS[1])], pdq=[_img(999)]))
    assert (summary["rows_removed"], summary["rows_quarantined"], summary["rows_kept"]) == (1, 0, 1)
    assert _names(tmp_path / "out" / "00000.tar") == [n for n, _ in _sample(KEYS[0])]


def test_a_float_key_column_is_refused(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "ds", _sample(KEYS[0]), [0.0], pa.float64())
    _refused(tmp_path, root, _lists(tmp_path, urls=[_url(KEYS[0])]), "not text or integers")


# ------------------------------------------------------------------------------------------------
# Defect 14: duplicate keys
# ------------------------------------------------------------------------------------------------


def test_duplicate_metadata_keys_refuse_the_shard(tmp_path: Path) -> None:
    members = _sample(KEYS[0]) + _sample(KEYS[1])
    root = _dataset(tmp_path / "ds", members, [KEYS[0], KEYS[1], KEYS[1], KEYS[1]])
    err = _refused(tmp_path, root, _lists(tmp_path, urls=[_url(KEYS[3])]), "2 duplicate key(s)", "'key'")
    assert err.path is not None and err.path.endswith("00000.parquet")


def test_duplicate_integer_keys_refuse_the_shard(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "ds", _sample(KEYS[0]), [0, 5, 5], pa.int64())
    _refused(tmp_path, root, _lists(tmp_path, urls=[_url(KEYS[1])]), "1 duplicate key(s)")


# ------------------------------------------------------------------------------------------------
# Defect 4: every member is checked
# ------------------------------------------------------------------------------------------------

LISTED = 4242  # seed of the SYNTHETIC "listed" image


@pytest.mark.parametrize(
    "name",
    ["{k}.png", "{k}.JPG", "{k}.jpg.bak", "{k}.avif", "{k}.jxl", "{k}", "{k}.seg.jpeg", "{k}.txt.x"],
)
def test_a_listed_second_member_removes_the_whole_sample(tmp_path: Path, name: str) -> None:
    """A listed image hidden in a second member (any extension, or none) is found by MD5 and by PDQ."""
    listed = _img(LISTED)
    members = _sample(KEYS[0]) + _sample(KEYS[1]) + [(name.format(k=KEYS[1]), listed)] + _sample(KEYS[2])
    root = _dataset(tmp_path / "ds", members, KEYS[:3])
    for signal, lists in (
        ("image_md5", _lists(tmp_path, images=[listed])),
        ("pdq", _lists(tmp_path, pdq=[listed])),
    ):
        summary = _clean(tmp_path, root, lists, out=signal)
        assert summary["rows_removed"] == 1 and summary["removed_by_signal"] == {signal: 1}, signal
        assert not [n for n in _names(tmp_path / signal / "00000.tar") if KEYS[1] in n]
        _accounted(summary)


def test_a_listed_caption_member_is_found_by_its_bytes(tmp_path: Path) -> None:
    listed = _img(LISTED)
    members = [*_sample(KEYS[0]), (f"{KEYS[0]}.cls", listed)]  # a JPEG behind a companion extension
    root = _dataset(tmp_path / "ds", members, KEYS[:1])
    assert _clean(tmp_path, root, _lists(tmp_path, pdq=[listed]))["rows_removed"] == 1


@pytest.mark.parametrize("name", ["{k}.heic", "{k}.jpg.bak", "{k}", "{k}.npy", "{k}.png"])
def test_an_undecodable_member_that_may_be_an_image_quarantines_its_row(tmp_path: Path, name: str) -> None:
    members = _sample(KEYS[0]) + _sample(KEYS[1]) + [(name.format(k=KEYS[1]), b"\x00\x01 opaque bytes")]
    root = _dataset(tmp_path / "ds", members, KEYS[:2])
    summary = _clean(tmp_path, root, _lists(tmp_path, pdq=[_img(LISTED)]))
    assert (summary["rows_quarantined"], summary["rows_kept"]) == (1, 1)
    assert not [n for n in _names(tmp_path / "out" / "00000.tar") if KEYS[1] in n]


def test_text_companions_are_not_quarantined(tmp_path: Path) -> None:
    extra = [(f"{KEYS[0]}.cls", b"3"), (f"{KEYS[0]}.id", b""), (f"{KEYS[0]}.md", b"#")]
    members = [*_sample(KEYS[0]), *extra]
    root = _dataset(tmp_path / "ds", members, KEYS[:1])
    summary = _clean(tmp_path, root, _lists(tmp_path, pdq=[_img(LISTED)]))
    assert (summary["rows_quarantined"], summary["rows_kept"]) == (0, 1)


@pytest.mark.parametrize(
    ("first", "second"), [("{k}.jpg", "{k}.jpg"), ("./{k}.jpg", "{k}.jpg"), ("a//{k}.txt", "a/{k}.txt")]
)
def test_duplicate_member_names_refuse_the_shard(tmp_path: Path, first: str, second: str) -> None:
    twins = [(first.format(k=KEYS[1]), _img(3)), (second.format(k=KEYS[1]), _img(LISTED))]
    members = [*_sample(KEYS[0]), *twins]
    root = _dataset(tmp_path / "ds", members)
    _refused(tmp_path, root, _lists(tmp_path, images=[_img(LISTED)]), "1 member name(s) occur more than once")


def test_upper_and_lower_case_extensions_are_one_sample_and_both_checked(tmp_path: Path) -> None:
    listed = _img(LISTED)
    members = [(f"{KEYS[0]}.jpg", _img(1)), (f"{KEYS[0]}.JPG", listed), *_sample(KEYS[1])]
    root = _dataset(tmp_path / "ds", members, KEYS[:2])
    summary = _clean(tmp_path, root, _lists(tmp_path, images=[listed]))
    assert summary["rows_removed"] == 1
    assert _names(tmp_path / "out" / "00000.tar") == [n for n, _ in _sample(KEYS[1])]


def test_data_outside_every_sample_is_checked(tmp_path: Path) -> None:
    listed = _img(LISTED)
    members = _sample(KEYS[0])
    readme = _dataset(tmp_path / "a", [*members, ("README", b"neutral words"), ("__index__", b"")], KEYS[:1])
    assert _clean(tmp_path, readme, _lists(tmp_path, images=[listed]), out="o1")["rows_kept"] == 1
    hidden = _dataset(tmp_path / "b", [*members, (".hidden.jpg", listed)], KEYS[:1])
    with pytest.raises(ExpungeError, match="1 file\\(s\\) outside every sample match"):
        _clean(tmp_path, hidden, _lists(tmp_path, images=[listed]), out="o2")
    opaque = _dataset(tmp_path / "c", [*members, ("__blob__", b"\x00\x01 opaque")], KEYS[:1])
    with pytest.raises(ExpungeError, match="outside every sample may be images"):
        _clean(tmp_path, opaque, _lists(tmp_path, images=[listed]), out="o3")


def test_data_in_an_entry_of_unknown_type_is_checked(tmp_path: Path) -> None:
    """tar extracts an unknown typeflag as a regular file: its data is a member like any other."""
    listed = _img(LISTED)
    root = _dataset(tmp_path / "ds", [*_sample(KEYS[0]), *_sample(KEYS[1])], KEYS[:2])
    with tarfile.open(root / "00000.tar", "a") as tf:
        ti = tarfile.TarInfo(f"{KEYS[1]}.x")
        ti.size, ti.type = len(listed), b"Z"
        tf.addfile(ti, io.BytesIO(listed))
    summary = _clean(tmp_path, root, _lists(tmp_path, images=[listed]))
    assert (summary["rows_removed"], summary["rows_kept"]) == (1, 1)
    assert listed not in (tmp_path / "out" / "00000.tar").read_bytes()


def test_key_columns_spelled_otherwise_still_link(tmp_path: Path) -> None:
    listed = _img(LISTED)
    members = [*_sample(KEYS[0]), *_sample(KEYS[1]), (f"{KEYS[1]}.png", listed)]
    spellings: list[tuple[Any, pa.DataType]] = [
        (pa.array(KEYS[:2]).dictionary_encode(), pa.dictionary(pa.int32(), pa.string())),
        (KEYS[:2], pa.large_string()),
        ([f"./{k}" for k in KEYS[:2]], pa.string()),
        ([7, 1, 0], pa.uint64()),
    ]
    for i, (keys, key_type) in enumerate(spellings):
        root = _dataset(tmp_path / f"ds{i}", members, keys, key_type)
        summary = _clean(tmp_path, root, _lists(tmp_path, images=[listed]), out=f"o{i}")
        assert summary["rows_removed"] == 1, key_type
        assert listed not in (tmp_path / f"o{i}" / "00000.tar").read_bytes()


def test_non_utf8_member_names_are_one_line_exit_2(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "ds", _sample(KEYS[0]), KEYS[:1])
    raw = bytearray((root / "00000.tar").read_bytes())
    with tarfile.open(root / "00000.tar") as tf:
        hdr = tf.getmembers()[1].offset
    raw[hdr] = 0xFF  # the caption member's name now starts with a byte that is not UTF-8
    block = raw[hdr : hdr + 512]
    block[148:156] = b" " * 8
    raw[hdr + 148 : hdr + 156] = b"%06o\x00 " % sum(block)
    (root / "00000.tar").write_bytes(bytes(raw))
    lst = _lists(tmp_path, urls=[_url(KEYS[0])])
    proc = subprocess.run(
        [sys.executable, "-m", "expunge.cli", "clean", str(root), "--out", "o", "--list", lst[0], "-q"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "not valid UTF-8" in lines[0] and "00000.tar" in lines[0]
    assert not (tmp_path / "o" / "00000.tar").exists()


def test_image_only_tar_keys_are_normalised(tmp_path: Path) -> None:
    members = [m for k in KEYS[:3] for m in _sample(k, "./" + k)]
    root = _dataset(tmp_path / "ds", members)
    listed = members[3][1]  # the second sample's image
    summary = _clean(tmp_path, root, _lists(tmp_path, images=[listed]))
    assert (summary["rows_in"], summary["rows_removed"]) == (3, 1)
    assert sample_keys(str(tmp_path / "out" / "00000.tar")) == [KEYS[0], KEYS[2]]


# ------------------------------------------------------------------------------------------------
# Image folders
# ------------------------------------------------------------------------------------------------


def _files(out: Path) -> list[str]:
    """The image folder's files in a release (one folder: it is the release's root), without release files."""
    return sorted(
        p.name for p in out.iterdir() if p.is_file() and p.suffix in (".jpg", ".parquet", ".txt", "")
    )


def _folder(root: Path, files: dict[str, bytes], meta: list[Any] | None = None, column: str = "file") -> Path:
    d = root / "imgs"
    d.mkdir(parents=True)
    for name, data in files.items():
        (d / name).write_bytes(data)
    if meta is not None:
        pq.write_table(
            pa.table({column: meta, "url": [_url(f"{i:09d}") for i in range(len(meta))]}), d / "meta.parquet"
        )
    return root


@pytest.mark.parametrize(
    "spell", ["x{i}.jpg", "./x{i}.jpg", "imgs/x{i}.jpg", "imgs//./x{i}.jpg", "{abs}/x{i}.jpg"]
)
def test_folder_metadata_paths_link_relative_to_the_folder(tmp_path: Path, spell: str) -> None:
    files = {f"x{i}.jpg": _img(i + 1) for i in range(3)}
    abs_dir = str(tmp_path / "ds" / "imgs")
    root = _folder(tmp_path / "ds", files, [spell.format(i=i, abs=abs_dir) for i in range(3)])
    summary = _clean(tmp_path, root, _lists(tmp_path, urls=[_url(KEYS[1])]))
    assert (summary["rows_in"], summary["rows_removed"], summary["rows_kept"]) == (3, 1, 2)
    assert _files(tmp_path / "out") == ["meta.parquet", "x0.jpg", "x2.jpg"]
    assert verify_release(tmp_path / "out") == []


@pytest.mark.parametrize(
    ("meta", "words"),
    [
        (["x0.jpg", "./x0.jpg", "x1.jpg"], "1 duplicate file name(s)"),
        (["x0.jpg", "other/x1.jpg"], "1 of 2 file(s) are named by no row"),
        (["x0.jpg", "x1.jpg", "notes.txt"], "name a file that is not a sample"),
        (["x0.jpg", "../imgs/x1.jpg"], "1 of 2 file(s)"),
    ],
)
def test_folder_metadata_that_does_not_correspond_is_refused(
    tmp_path: Path, meta: list[str], words: str
) -> None:
    root = _folder(tmp_path / "ds", {"x0.jpg": _img(1), "x1.jpg": _img(2), "notes.txt": b"words"}, meta)
    with pytest.raises(ExpungeError) as info:
        _clean(tmp_path, root, _lists(tmp_path, urls=[_url(KEYS[0])]))
    assert words in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "out" / "x0.jpg").exists()


def test_folder_files_of_any_extension_are_checked(tmp_path: Path) -> None:
    listed = _img(LISTED)
    files = {
        "a.jpg": _img(1),
        "a.jpg.bak": listed,
        "b.heic": b"\x00 opaque",
        "_c.jpg": _img(3),
        "notes.txt": b"w",
        "LICENSE": b"neutral words",  # documentation: a companion, not a sample
    }
    root = _folder(tmp_path / "ds", files)
    summary = _clean(tmp_path, root, _lists(tmp_path, pdq=[listed]))
    assert (summary["rows_in"], summary["rows_removed"], summary["rows_quarantined"]) == (4, 1, 1)
    assert _files(tmp_path / "out") == ["LICENSE", "_c.jpg", "a.jpg", "notes.txt"]


def test_a_listed_companion_in_a_folder_is_refused(tmp_path: Path) -> None:
    listed = _img(LISTED)
    root = _folder(tmp_path / "ds", {"a.jpg": _img(1), "notes.txt": listed})
    with pytest.raises(ExpungeError, match="outside every sample match"):
        _clean(tmp_path, root, _lists(tmp_path, images=[listed]))


def test_two_parquets_in_one_image_folder_are_refused(tmp_path: Path) -> None:
    root = _folder(tmp_path / "ds", {"x0.jpg": _img(1)}, ["x0.jpg"])
    _meta(root / "imgs" / "other.parquet", ["k"])
    with pytest.raises(ExpungeError, match="2 parquet files in one image folder"):
        _clean(tmp_path, root, _lists(tmp_path, urls=[_url(KEYS[0])]))
