"""The release manifest: Merkle root, minisign-compatible signature, verification against tampering."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from expunge import api
from expunge.release.manifest import dumps as manifest_dumps
from expunge.release.manifest import merkle_root
from expunge.release.sign import keygen
from expunge.release.verify import verify_release
from tests.conftest import SmallDataset

CLI = [sys.executable, "-m", "expunge.cli"]


def _release(ds: SmallDataset, tmp: Path, sign: Path | None = None, out: str = "rel") -> Path:
    opts = api.Options(store=tmp / "store", workers=2, sign_key=sign)
    api.clean([str(ds.root)], tmp / out, lists=[f"{ds.lists['iwf']}:url_md5"], opts=opts)
    return tmp / out


def test_merkle_root_binds_names_hashes_and_order() -> None:
    a, b, c = ("a", "00" * 32), ("b", "11" * 32), ("c", "22" * 32)
    root = merkle_root([a, b, c])
    assert root == merkle_root([a, b, c])
    assert root != merkle_root([b, a, c])
    assert root != merkle_root([a, b, ("c", "23" * 32)])
    assert root != merkle_root([a, b, ("d", "22" * 32)])
    assert root != merkle_root([a, b])
    assert merkle_root([]) == hashlib.sha256(b"").hexdigest()


def test_manifest_lists_every_shard_and_untouched_shards_keep_their_hash(
    small_ds: SmallDataset, tmp_path: Path
) -> None:
    rel = _release(small_ds, tmp_path)
    man = json.loads((rel / "MANIFEST.json").read_text())
    assert [s["name"] for s in man["shards"]] == sorted(p.name for p in small_ds.root.glob("*.parquet"))
    untouched = next(s for s in man["shards"] if s["name"] == small_ds.clean_shard)
    assert (
        untouched["sha256"] == hashlib.sha256((small_ds.root / small_ds.clean_shard).read_bytes()).hexdigest()
    )
    assert {b["name"] for b in man["banks"]} == {"iwf"} and "values" not in json.dumps(man["banks"])
    assert man["counts"]["rows_in"] == small_ds.rows
    assert verify_release(rel) == []


@pytest.fixture
def signed(small_ds: SmallDataset, tmp_path: Path) -> tuple[Path, Path]:
    secret, public = keygen(tmp_path / "release-key")
    return _release(small_ds, tmp_path, sign=secret), public


def test_signed_release_verifies(signed: tuple[Path, Path]) -> None:
    rel, public = signed
    assert (rel / "MANIFEST.json.minisig").is_file()
    assert verify_release(rel, pubkey=public) == []


@pytest.mark.skipif(
    shutil.which("minisign") is None, reason="minisign is not installed (Debian package minisign)"
)
def test_minisign_itself_accepts_the_signature(signed: tuple[Path, Path]) -> None:
    rel, public = signed
    proc = subprocess.run(
        ["minisign", "-Vm", str(rel / "MANIFEST.json"), "-p", str(public)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert "Signature and comment signature verified" in proc.stdout + proc.stderr


def test_a_flipped_byte_is_caught(signed: tuple[Path, Path]) -> None:
    rel, public = signed
    shard = rel / "part-00001.parquet"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x01
    shard.unlink()  # it may be a hard link to the source: never write through it
    shard.write_bytes(bytes(data))
    problems = verify_release(rel, pubkey=public)
    assert any("part-00001.parquet: SHA-256 differs" in p for p in problems)


def test_a_removed_shard_is_caught(signed: tuple[Path, Path]) -> None:
    rel, public = signed
    (rel / "part-00002.parquet").unlink()
    assert any("part-00002.parquet: shard missing" in p for p in verify_release(rel, pubkey=public))


def test_an_added_row_is_caught(signed: tuple[Path, Path]) -> None:
    rel, public = signed
    shard = rel / "part-00000.parquet"
    table = pq.read_table(shard)
    bigger = pa.concat_tables([table, table.slice(0, 1)])
    shard.unlink()
    pq.write_table(bigger, shard)
    problems = verify_release(rel, pubkey=public)
    assert any("part-00000.parquet: SHA-256 differs" in p for p in problems)
    assert any(f"{table.num_rows + 1} rows, the manifest says {table.num_rows}" in p for p in problems)


def test_an_added_shard_is_caught(signed: tuple[Path, Path]) -> None:
    rel, public = signed
    shutil.copyfile(rel / "part-00000.parquet", rel / "part-00009.parquet")
    assert any("part-00009.parquet: not in the manifest" in p for p in verify_release(rel, pubkey=public))


def test_a_forged_manifest_is_caught(signed: tuple[Path, Path]) -> None:
    rel, public = signed
    shard = rel / "part-00001.parquet"
    table = pq.read_table(shard)
    shard.unlink()
    pq.write_table(table.slice(1), shard)  # a different shard...
    man = json.loads((rel / "MANIFEST.json").read_text())
    for s in man["shards"]:  # ...and a manifest forged to match it, Merkle root and all
        if s["name"] == "part-00001.parquet":
            s["sha256"] = hashlib.sha256(shard.read_bytes()).hexdigest()
            s["rows"] = table.num_rows - 1
    man["merkle_root"] = merkle_root([(s["name"], s["sha256"]) for s in man["shards"]])
    for f in man["files"]:
        if f["path"] == "part-00001.parquet":
            f["sha256"], f["size"] = hashlib.sha256(shard.read_bytes()).hexdigest(), shard.stat().st_size
    man["files_root"] = merkle_root([(f["path"], f["sha256"]) for f in man["files"]])
    (rel / "MANIFEST.json").write_text(json.dumps(man, indent=2, sort_keys=True) + "\n")
    assert verify_release(rel) == [
        f"{rel / 'MANIFEST.json'}: edited or corrupt (its bytes are not what expunge wrote)"
    ]
    (rel / "MANIFEST.json").write_bytes(manifest_dumps(man))  # a forger recomputes the self-digest too
    assert verify_release(rel) == []  # without the key, a consistent forgery is consistent
    problems = verify_release(rel, pubkey=public)
    assert problems == [f"{rel / 'MANIFEST.json.minisig'}: signature does not match the manifest"]


def test_verify_with_lists_finds_rows_that_still_match(small_ds: SmallDataset, tmp_path: Path) -> None:
    rel = _release(small_ds, tmp_path)
    assert api.verify(rel, lists=[f"{small_ds.lists['iwf']}:url_md5"]) == []
    kept = pq.read_table(rel / "part-00000.parquet").column("url")[0].as_py()
    extra = tmp_path / "late.txt"
    extra.write_text(hashlib.md5(kept.encode()).hexdigest() + "\n")
    problems = api.verify(rel, lists=[f"{extra}:url_md5"])
    assert problems == [f"{rel}: 1 rows still match bank late@v1"]


def test_cli_verify_and_diff_release(small_ds: SmallDataset, tmp_path: Path) -> None:
    first = _release(small_ds, tmp_path, out="v1")
    lines = small_ds.lists["iwf"].read_text().splitlines()
    fewer = tmp_path / "iwf.csv"
    fewer.write_text("\n".join(lines[:3]) + "\n")  # header + 2 hashes: fewer shards touched
    opts = api.Options(store=tmp_path / "store2", workers=1)
    api.clean([str(small_ds.root)], tmp_path / "v2", lists=[f"{fewer}:url_md5"], opts=opts)
    ok = subprocess.run([*CLI, "verify", str(first)], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "verified" in ok.stdout
    diff = subprocess.run(
        [*CLI, "diff-release", str(first), str(tmp_path / "v2"), "--json"], capture_output=True, text=True
    )
    changed = json.loads(diff.stdout)
    assert changed["added"] == [] and changed["removed"] == [] and changed["changed"]
    assert changed["unchanged"] >= 1
    (first / "part-00002.parquet").unlink()
    bad = subprocess.run([*CLI, "verify", str(first)], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "part-00002.parquet: shard missing" in bad.stderr
