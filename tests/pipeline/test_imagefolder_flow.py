"""Plain image folders (with and without a metadata parquet naming the files) through the whole flow."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from expunge import api
from expunge.demo.synth_images import _image, _jpeg
from expunge.features.images import hash_image, pdq_to_hex


def _build(root: Path, with_meta: bool) -> tuple[set[tuple[str, str]], Path]:
    """Two folders of generated images; listed originals planted as exact and re-encoded copies."""
    listed = [_image(5_000 + i, 256) for i in range(3)]
    planted: set[tuple[str, str]] = set()
    for d, folder in enumerate(("a", "b/c")):
        path = root / folder
        path.mkdir(parents=True)
        names = []
        for i in range(12):
            name = f"img{i:03d}.jpg"
            if i == 4:
                data = _jpeg(listed[d])  # exact copy
                planted.add((folder, name))
            elif i == 9:
                data = _jpeg(listed[d + 1], 60)  # re-encoded copy
                planted.add((folder, name))
            else:
                data = _jpeg(_image(d * 100 + i, 256))
            (path / name).write_bytes(data)
            names.append(name)
        (path / "notes.txt").write_text("not an image; kept as it is\n")
        if with_meta:
            pq.write_table(
                pa.table({"file": names, "caption": [f"a neutral caption {n}" for n in names]}),
                path / "meta.parquet",
            )
    lst = root.parent / "listed.pdq"
    lst.write_text("".join(f"pdq {pdq_to_hex(hash_image(_jpeg(img)).pdq or b'')}\n" for img in listed))
    return planted, lst


def _run(tmp_path: Path, with_meta: bool) -> None:
    planted, lst = _build(tmp_path / "images", with_meta)
    opts = api.Options(store=tmp_path / "store", workers=2)
    summary = api.clean([str(tmp_path / "images")], tmp_path / "out", lists=[f"{lst}:pdq"], opts=opts)
    assert summary["rows_removed"] == len(planted)
    assert summary["rows_in"] == 24
    assert summary["rows_kept"] + summary["rows_removed"] + summary["rows_quarantined"] == summary["rows_in"]
    for folder, name in planted:
        assert not (tmp_path / "out" / folder / name).exists()
    for folder in ("a", "b/c"):
        src, out = tmp_path / "images" / folder, tmp_path / "out" / folder
        assert (out / "notes.txt").read_text() == (src / "notes.txt").read_text()
        kept = sorted(p.name for p in out.glob("*.jpg"))
        assert kept == sorted(p.name for p in src.glob("*.jpg") if (folder, p.name) not in planted)
        for name in kept:
            assert (
                hashlib.sha256((out / name).read_bytes()).digest()
                == hashlib.sha256((src / name).read_bytes()).digest()
            )
        if with_meta:
            files = pq.read_table(out / "meta.parquet").column("file").to_pylist()
            assert files == [
                n for n in sorted(p.name for p in src.glob("*.jpg")) if (folder, n) not in planted
            ]
    # Each folder is labelled by its format's media type, not as a parquet file (it used to be), and no
    # parquet file set or record set claims the folders.
    doc = json.loads((tmp_path / "out" / "croissant.json").read_text())
    labels = {d["name"]: d["encodingFormat"] for d in doc["distribution"]}
    assert labels == {"a": "inode/directory", "b/c": "inode/directory"}
    assert "recordSet" not in doc


def test_image_folders_without_metadata(tmp_path: Path) -> None:
    _run(tmp_path, with_meta=False)


def test_image_folders_with_metadata_naming_the_files(tmp_path: Path) -> None:
    _run(tmp_path, with_meta=True)
