"""Image signals through the whole flow on img2dataset-style shards (tar + parquet + stats)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from expunge import api
from expunge.demo.synth_images import SynthImages, generate_image_dataset, write_image_lists
from expunge.formats.tar_scan import sample_keys
from tests.cli.test_app import AUDIT
from tests.conftest import tree_bytes


@pytest.fixture
def image_ds(tmp_path: Path) -> SynthImages:
    ds = generate_image_dataset(tmp_path / "data", samples=300, shards=2, listed=10)
    write_image_lists(ds, tmp_path / "lists", listed=10)
    return ds


def _clean(
    ds: SynthImages, tmp: Path, out: str = "out", store: str = "store", workers: int = 2, **kw: object
) -> dict:
    lists = [f"{ds.lists['pdq']}:pdq", f"{ds.lists['image_md5']}:image_md5", *kw.pop("extra", [])]  # type: ignore[misc]
    kw.setdefault("publish_records", True)  # these tests read removed.parquet
    opts = api.Options(store=tmp / store, workers=workers, **kw)  # type: ignore[arg-type]
    return api.clean([str(ds.root)], tmp / out, lists=lists, opts=opts)


def test_planted_copies_are_removed_from_tar_parquet_and_stats(image_ds: SynthImages, tmp_path: Path) -> None:
    summary = _clean(image_ds, tmp_path)
    assert summary["rows_in"] == image_ds.rows
    assert summary["rows_removed"] == len(image_ds.flagged)
    assert summary["removed_by_signal"]["image_md5"] == len(image_ds.exact)
    assert summary["removed_by_signal"]["pdq"] == len(image_ds.flagged)  # PDQ also catches the exact copies
    assert summary["rows_quarantined"] == len(image_ds.bad)
    assert set(summary["quarantined_by_reason"]) <= {"empty_image", "not_an_image", "truncated_image"}
    assert summary["rows_kept"] + summary["rows_removed"] + summary["rows_quarantined"] == summary["rows_in"]
    removed = pq.read_table(tmp_path / "out" / "removed.parquet").to_pylist()
    assert {(r["shard"], r["row"]) for r in removed if r["action"] == "removed"} == image_ds.flagged
    assert {(r["shard"], r["row"]) for r in removed if r["action"] == "quarantined"} == image_ds.bad
    for name in image_ds.shards:
        stem = name.removesuffix(".tar")
        src_meta = pq.read_table(image_ds.root / f"{stem}.parquet")
        gone = {r for s, r in image_ds.flagged | image_ds.bad if s == name}
        gone_keys = {src_meta.column("key")[r].as_py() for r in gone}
        out_meta = pq.read_table(tmp_path / "out" / f"{stem}.parquet")
        assert out_meta.num_rows == src_meta.num_rows - len(gone)
        assert not gone_keys & set(out_meta.column("key").to_pylist())
        out_keys = sample_keys(str(tmp_path / "out" / name))
        assert not gone_keys & set(out_keys)
        assert set(out_keys) == set(sample_keys(str(image_ds.root / name))) - gone_keys
        stats = json.loads((tmp_path / "out" / f"{stem}_stats.json").read_text())
        assert stats["count"] == out_meta.num_rows and stats["successes"] == len(out_keys)


def test_pdq_findings_carry_their_distance(image_ds: SynthImages, tmp_path: Path) -> None:
    _clean(image_ds, tmp_path)
    findings = pq.read_table(next((tmp_path / "store" / "datasets").rglob("findings/*.parquet"))).to_pylist()
    pdq = [f for f in findings if f["signal"] == "pdq"]
    md5 = [f for f in findings if f["signal"] == "image_md5"]
    assert pdq and all(0 <= f["distance"] <= 31 for f in pdq)
    assert any(f["distance"] > 0 for f in pdq)
    assert all(f["distance"] is None for f in md5)


def test_a_url_match_removes_the_sample_from_the_tar_too(image_ds: SynthImages, tmp_path: Path) -> None:
    meta = pq.read_table(image_ds.root / "00001.parquet")
    statuses = meta.column("status").to_pylist()
    row = next(
        i
        for i, st in enumerate(statuses)
        if st == "success" and ("00001.tar", i) not in image_ds.flagged | image_ds.bad
    )
    url = meta.column("url")[row].as_py()
    key = meta.column("key")[row].as_py()
    url_list = tmp_path / "urls.txt"
    url_list.write_text(hashlib.md5(url.encode()).hexdigest() + "\n")
    summary = _clean(image_ds, tmp_path, extra=[f"{url_list}:url_md5"])
    assert summary["removed_by_signal"]["url_md5"] == 1
    assert key not in sample_keys(str(tmp_path / "out" / "00001.tar"))
    assert key not in pq.read_table(tmp_path / "out" / "00001.parquet").column("key").to_pylist()


def test_image_release_is_deterministic_across_worker_counts_and_reruns(
    image_ds: SynthImages, tmp_path: Path
) -> None:
    _clean(image_ds, tmp_path, out="a", store="s", workers=1)
    first = tree_bytes(tmp_path / "a")
    _clean(image_ds, tmp_path, out="a", store="s", workers=2)
    assert tree_bytes(tmp_path / "a") == first
    (tmp_path / "s2").mkdir()
    (tmp_path / "s2" / "key").write_bytes((tmp_path / "s" / "key").read_bytes())
    _clean(image_ds, tmp_path, out="b", store="s2", workers=2)
    assert tree_bytes(tmp_path / "b") == first


def test_pdq_bank_growth_is_matched_incrementally(image_ds: SynthImages, tmp_path: Path) -> None:
    lines = image_ds.lists["pdq"].read_text().splitlines()
    part = tmp_path / "pdq-part.txt"
    part.write_text("\n".join(lines[:4]) + "\n")  # comment + 3 hashes
    store = tmp_path / "store"
    api.import_list(part, store=store, name="pdq", signal="pdq")
    opts = api.Options(store=store, workers=1)
    first = api.match([str(image_ds.root)], opts=opts)
    part.write_text("\n".join(lines) + "\n")
    api.import_list(part, store=store, name="pdq", signal="pdq")
    grown = api.match([str(image_ds.root)], opts=opts)
    assert grown["stage"].details["modes"] == {"incremental": 2}
    assert (
        grown["rows_matched_by_bank"]["pdq"] == len(image_ds.flagged) > first["rows_matched_by_bank"]["pdq"]
    )


def test_hash_command_output_imports_and_matches(image_ds: SynthImages, tmp_path: Path) -> None:
    from expunge.demo.synth_images import _image, _jpeg

    files = []
    for i in range(10):
        p = tmp_path / f"listed-{i}.jpg"
        p.write_bytes(_jpeg(_image(10_000_000 + i, 256)))
        files.append(str(p))
    proc = subprocess.run(
        [sys.executable, "-m", "expunge.cli", "hash", *files, "--signal", "pdq"],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert all(line.startswith("pdq ") and len(line.split()) == 3 for line in proc.stdout.splitlines())
    listed = tmp_path / "partner.pdq"
    listed.write_text(proc.stdout)
    store = tmp_path / "hs"
    res = api.import_list(listed, store=store)
    assert res.count == 10
    summary = api.clean(
        [str(image_ds.root)], tmp_path / "o", banks=["partner"], opts=api.Options(store=store, workers=1)
    )
    assert summary["rows_removed"] == len(image_ds.flagged)


def test_image_clean_opens_no_socket_and_leaks_no_image_bytes(image_ds: SynthImages, tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(AUDIT)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")])
    env["EXPUNGE_TEST_NET_LOG"] = str(tmp_path / "net.log")
    proc = subprocess.run(
        [sys.executable, "-m", "expunge.cli", "clean", str(image_ds.root), "--out", "o", "--workers", "2",
         "--list", f"{image_ds.lists['pdq']}:pdq", "--list", f"{image_ds.lists['image_md5']}:image_md5"],
        cwd=tmp_path, env=env, capture_output=True, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "net.log").exists()
    # No flagged image's bytes anywhere in the store, the release, or the output streams.
    import tarfile

    flagged_bytes: list[bytes] = []
    for name in image_ds.shards:
        meta = pq.read_table(image_ds.root / name.replace(".tar", ".parquet"))
        keys = {meta.column("key")[r].as_py() for s, r in image_ds.flagged if s == name}
        with tarfile.open(image_ds.root / name) as tar:
            for m in tar.getmembers():
                if m.name.endswith(".jpg") and m.name[:-4] in keys:
                    fh = tar.extractfile(m)
                    assert fh is not None
                    data = fh.read()
                    mid = len(data) // 2  # entropy-coded scan data: distinctive, unlike the JPEG headers
                    flagged_bytes.append(data[mid : mid + 64])
    assert len(flagged_bytes) == len(image_ds.flagged)
    blobs = [proc.stdout, proc.stderr]
    for root in (tmp_path / "o", tmp_path / ".expunge"):
        blobs += [p.read_bytes() for p in root.rglob("*") if p.is_file()]
    assert not [b for b in flagged_bytes if any(b in blob for blob in blobs)]


def test_quarantined_images_are_named_by_shard_and_key(image_ds: SynthImages, tmp_path: Path) -> None:
    _clean(image_ds, tmp_path)
    records = pq.read_table(tmp_path / "out" / "removed.parquet").to_pylist()
    bad = [r for r in records if r["action"] == "quarantined"]
    assert len(bad) == len(image_ds.bad)
    for r in bad:
        assert (r["shard"], r["row"]) in image_ds.bad
        assert r["reasons"][0].startswith("quarantine:") and r["reasons"][0].endswith("_image")


def test_a_truncated_tar_is_one_line_naming_shard_and_offset(image_ds: SynthImages, tmp_path: Path) -> None:
    tar = image_ds.root / "00001.tar"
    data = tar.read_bytes()
    tar.write_bytes(data[: len(data) // 2 + 77])
    proc = subprocess.run(
        [sys.executable, "-m", "expunge.cli", "clean", str(image_ds.root), "--out", "o", "-q",
         "--list", f"{image_ds.lists['pdq']}:pdq"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert "00001.tar" in lines[0] and "offset" in lines[0]


def test_a_pdq_threshold_change_is_a_new_version_and_a_full_rematch(
    image_ds: SynthImages, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    run = [sys.executable, "-m", "expunge.cli"]
    common = dict(cwd=tmp_path, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    imp = subprocess.run(
        [*run, "lists", "import", str(image_ds.lists["pdq"]), "--threshold", "0", "--store", str(store)],
        **common,
    )  # type: ignore[call-overload]
    assert imp.returncode == 0, imp.stderr
    ls = subprocess.run([*run, "lists", "ls", "--json", "--store", str(store)], **common)  # type: ignore[call-overload]
    assert json.loads(ls.stdout)[0]["threshold"] == 0
    opts = api.Options(store=store, workers=1)
    exact_only = api.match([str(image_ds.root)], opts=opts)["rows_matched_by_bank"]["pdq"]
    assert (
        len(image_ds.exact) <= exact_only < len(image_ds.flagged)
    )  # distance 0: byte copies (and lucky re-encodes)
    again = subprocess.run(
        [*run, "lists", "import", str(image_ds.lists["pdq"]), "--threshold", "31", "--store", str(store)],
        **common,
    )  # type: ignore[call-overload]
    assert "version 2" in again.stdout
    res = api.match([str(image_ds.root)], opts=opts)
    assert res["stage"].details["modes"] == {"full": 2}
    assert res["rows_matched_by_bank"]["pdq"] == len(image_ds.flagged)


def test_pixel_limit_and_quality_floor_are_honoured(image_ds: SynthImages, tmp_path: Path) -> None:
    bombs = _clean(image_ds, tmp_path, out="o1", store="s1", max_pixels=1_000)
    assert bombs["rows_removed"] == len(image_ds.exact)  # MD5 still matches bytes it cannot decode
    assert bombs["quarantined_by_reason"]["decompression_bomb"] == image_ds.samples - len(image_ds.bad) - len(
        image_ds.exact
    )
    floor = _clean(image_ds, tmp_path, out="o2", store="s2", quality_floor=101)
    assert floor["images_low_quality"] == image_ds.samples - len(image_ds.bad)
    assert floor["removed_by_signal"] == {"image_md5": len(image_ds.exact)}  # nothing matched by PDQ
