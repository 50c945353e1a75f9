"""Match by proxy end to end through the CLI, on URL signals: the holder never sees the hotline's lists,
the hotline never sees a URL, caption, shard or row, and the clean removes exactly the planted rows.

The "known" lists are hashes of ordinary generated URLs, labelled SYNTHETIC (tests/conftest.py).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from expunge.demo.synth_lists import random_digests
from expunge.proxy import package as pkg
from expunge.proxy.answer import answer_schema
from tests.cli.test_app import assert_one_line_error, run
from tests.conftest import SmallDataset, build_small_dataset
from tests.proxy import package_bytes, package_strings, removed_rows, rewrite_part

SIGNALS = "url_md5,url_sha1:canonical"


def _ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    return proc


class World:
    """A holder (its dataset and store) and a hotline (its lists and keys) in two folders."""

    def __init__(self, base: Path) -> None:
        self.ds: SmallDataset = build_small_dataset(base / "holder")
        self.holder = base / "holder"
        self.hotline = base / "hotline"
        self.hotline.mkdir()
        # The hotline's lists: the SYNTHETIC lists plus hashes of nothing in the dataset.
        self.decoys = random_digests(50, 16, seed=7)
        iwf = self.ds.lists["iwf"].read_text() + "".join(
            f"{bytes(d).hex()},d{i},synthetic-decoy\n" for i, d in enumerate(self.decoys)
        )
        self.iwf = self.hotline / "iwf.csv"
        self.iwf.write_text(iwf)
        self.c3p = self.hotline / "c3p.txt"
        shutil.move(self.ds.lists["c3p"], self.c3p)
        self.ds.lists["iwf"].unlink()
        _ok(run(["keygen", "holder"], self.holder))
        _ok(run(["keygen", "hot"], self.hotline))
        self.outputs: list[str] = []

    def holder_run(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        proc = run(args, self.holder)
        if args[0] == "proxy":  # what the proxy commands print (clean's own summary names shards)
            self.outputs += [proc.stdout, proc.stderr]
        return proc

    def hotline_run(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        proc = run(args, self.hotline)
        self.outputs += [proc.stdout, proc.stderr]
        return proc

    def export(self, out: str = "Q", *extra: str) -> Path:
        _ok(self.holder_run(["proxy", "export", "dataset", "--signals", SIGNALS, "--out", out, "-q", *extra]))
        return self.holder / out

    def match(self, query: Path, out: str = "A", *extra: str) -> Path:
        lists = ["--list", f"{self.iwf}:url_md5", "--list", f"{self.c3p}:url_sha1:canonical"]
        _ok(
            self.hotline_run(
                ["proxy", "match", str(query), *lists, "--out", out, "--source", "SYNTH-HOTLINE", *extra]
            )
        )
        return self.hotline / out


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_round_trip_removes_exactly_the_planted_rows_and_nothing_leaks(world: World) -> None:
    q = world.export("Q", "--sign", "holder.key")
    a = world.match(q, "A", "--sign", "hot.key", "--pubkey", str(world.holder / "holder.pub"))
    imp = _ok(
        world.holder_run(
            [
                "proxy",
                "import",
                str(a),
                "--pubkey",
                str(world.hotline / "hot.pub"),
                "--query",
                "Q",
                "--name",
                "hot",
            ]
        )
    )
    assert "hot-url_md5-raw" in imp.stdout and "SYNTH-HOTLINE" in imp.stdout
    banks = {b["name"]: b for b in json.loads(_ok(world.holder_run(["lists", "ls", "--json"])).stdout)}
    assert set(banks) == {"hot-url_md5-raw", "hot-url_sha1-canonical"}
    answer = json.loads((a / pkg.ANSWER_MANIFEST).read_text())
    for b in banks.values():
        assert b["source"] == "SYNTH-HOTLINE" and b["label"] == answer["answer_id"]
    summary = json.loads(
        _ok(
            world.holder_run(
                [
                    "clean",
                    "dataset",
                    "--bank",
                    "hot-url_md5-raw",
                    "--bank",
                    "hot-url_sha1-canonical",
                    "--out",
                    "CLEAN",
                    "-q",
                    "--json",
                ]
            )
        ).stdout
    )
    assert summary["rows_removed"] == len(world.ds.flagged)
    assert removed_rows(world.holder / ".expunge") == world.ds.flagged
    assert summary["rows_in"] == summary["rows_kept"] + summary["rows_removed"] + summary["rows_quarantined"]
    # The holder never held the hotline's lists; the hotline's store was never made.
    assert not (world.hotline / ".expunge").exists()
    assert not any(p.name in ("iwf.csv", "c3p.txt") for p in world.holder.rglob("*"))

    # Containment: no URL, caption, shard, row key or sample key in either package or any output...
    urls, captions, keys = [], [], []
    for shard in sorted(world.ds.root.glob("*.parquet")):
        t = pq.read_table(shard)
        urls += [u for u in t.column("url").to_pylist() if u and len(u) > 12]
        captions += t.column("caption").to_pylist()
        keys += t.column("key").to_pylist()
    blobs = package_bytes(q) + package_bytes(a)
    text = "\n".join(world.outputs + package_strings(q) + package_strings(a))
    for needle in urls + captions + keys + ["part-0000"]:
        assert needle.encode() not in blobs and needle not in text
    # ... and no hotline list value that is not in the query, as bytes or as hex.
    for d in world.decoys:
        assert (
            bytes(d) not in blobs
            and bytes(d).hex() not in text
            and bytes(d).hex() not in blobs.decode("latin-1")
        )
    # Both packages hold exactly the files their manifests list, and the query a copy in the store.
    assert sorted(p.name for p in q.iterdir()) == [
        "query.json",
        "query.json.minisig",
        "url_md5-raw.parquet",
        "url_sha1-canonical.parquet",
    ]
    qid = json.loads((q / pkg.QUERY_MANIFEST).read_text())["package_id"]
    stored = world.holder / ".expunge" / "proxy" / qid
    assert (stored / pkg.QUERY_MANIFEST).read_bytes() == (q / pkg.QUERY_MANIFEST).read_bytes()


def test_query_order_says_nothing_of_shards_or_rows(world: World, tmp_path: Path) -> None:
    q = world.export()
    values = pq.read_table(q / "url_md5-raw.parquet").column("value").to_pylist()
    assert values == sorted(values) and len(values) == len(set(values))
    # The same rows in other shards and another order give the very same digest files.
    other = tmp_path / "other" / "dataset"
    other.mkdir(parents=True)
    tables = [pq.read_table(p) for p in sorted(world.ds.root.glob("*.parquet"))]
    whole = pa.concat_tables(tables)
    perm = np.random.default_rng(3).permutation(whole.num_rows)
    whole = whole.take(pa.array(perm))
    pq.write_table(whole.slice(0, 3000), other / "z.parquet")
    pq.write_table(whole.slice(3000), other / "a.parquet")
    _ok(run(["proxy", "export", "dataset", "--signals", SIGNALS, "--out", "Q2", "-q"], other.parent))
    for f in ("url_md5-raw.parquet", "url_sha1-canonical.parquet"):
        assert (other.parent / "Q2" / f).read_bytes() == (q / f).read_bytes()
    # Row order in the index is not the query's order.
    index = sorted((world.holder / ".expunge" / "datasets").glob("*/index/*/url_raw_md5.parquet"))
    first = pq.read_table(index[0]).column(0).to_pylist()
    assert [v for v in first if v is not None][:20] != values[:20]


def test_tampered_answer_is_refused_with_one_line(world: World) -> None:
    q = world.export("Q", "--sign", "holder.key")
    a = world.match(q, "A", "--sign", "hot.key")
    hot_pub = str(world.hotline / "hot.pub")
    # An edited parquet file.
    bad = world.hotline / "A-edited"
    shutil.copytree(a, bad)
    data = bytearray((bad / "url_md5-raw.parquet").read_bytes())
    data[10] ^= 1
    (bad / "url_md5-raw.parquet").write_bytes(bytes(data))
    assert_one_line_error(world.holder_run(["proxy", "import", str(bad)]), "differs from the manifest")
    # An edited manifest (self-consistent, but the signature no longer holds).
    bad2 = world.hotline / "A-manifest"
    shutil.copytree(a, bad2)
    m = json.loads((bad2 / pkg.ANSWER_MANIFEST).read_text())
    m["hotline"] = "SOMEONE-ELSE"
    (bad2 / pkg.ANSWER_MANIFEST).write_bytes(pkg.dumps(m))
    assert_one_line_error(world.holder_run(["proxy", "import", str(bad2), "--pubkey", hot_pub]), "signature")
    # A file added beside the manifest's.
    bad3 = world.hotline / "A-extra"
    shutil.copytree(a, bad3)
    (bad3 / "notes.txt").write_text("x")
    assert_one_line_error(world.holder_run(["proxy", "import", str(bad3)]), "does not list")
    # An unsigned answer where a key is required.
    bad4 = world.hotline / "A-unsigned"
    shutil.copytree(a, bad4)
    (bad4 / "answer.json.minisig").unlink()
    assert_one_line_error(world.holder_run(["proxy", "import", str(bad4), "--pubkey", hot_pub]), "not signed")
    # Signed by another key.
    assert_one_line_error(
        world.holder_run(["proxy", "import", str(a), "--pubkey", "holder.pub"]), "different key"
    )
    assert json.loads(_ok(world.holder_run(["lists", "ls", "--json"])).stdout) == []
    # The genuine answer still goes in.
    _ok(world.holder_run(["proxy", "import", str(a), "--pubkey", hot_pub]))


def test_answer_naming_a_digest_not_in_the_query_is_refused_whole(world: World) -> None:
    q = world.export()
    a = world.match(q)
    table = pq.read_table(a / "url_md5-raw.parquet")
    extra = pa.table(
        {
            "value": pa.array([bytes(world.decoys[0])], pa.binary(16)),
            "bank": ["iwf"],
            "category": [None],
            "distance": pa.nulls(1, pa.int16()),
        },
        schema=answer_schema(16),
    )
    forged = pa.concat_tables([table.cast(answer_schema(16)), extra]).sort_by("value")
    rewrite_part(a, "url_md5-raw.parquet", forged)
    proc = world.holder_run(["proxy", "import", str(a)])
    assert_one_line_error(proc, "1 answered url_md5:raw digest(s) were not in the query")
    assert bytes(world.decoys[0]).hex() not in proc.stderr
    assert json.loads(_ok(world.holder_run(["lists", "ls", "--json"])).stdout) == []


def test_answer_to_another_query_is_refused(world: World, tmp_path: Path) -> None:
    # Another holder's query (same data, another store): its answer is not to this store's query.
    other = tmp_path / "other"
    other.mkdir()
    shutil.copytree(world.ds.root, other / "dataset")
    _ok(run(["proxy", "export", "dataset", "--signals", SIGNALS, "--out", "Q", "-q"], other))
    a_other = world.match(other / "Q", "A-other")
    assert_one_line_error(world.holder_run(["proxy", "import", str(a_other)]), "did not export")
    # An answer that claims this store's query id for another manifest.
    q = world.export()
    forged = world.hotline / "A-forged"
    shutil.copytree(a_other, forged)
    m = json.loads((forged / pkg.ANSWER_MANIFEST).read_text())
    m["query_id"] = json.loads((q / pkg.QUERY_MANIFEST).read_text())["package_id"]
    (forged / pkg.ANSWER_MANIFEST).write_bytes(pkg.dumps(m))
    assert_one_line_error(world.holder_run(["proxy", "import", str(forged)]), "another query manifest")
    # --query naming another package than the one answered.
    a = world.match(q)
    assert_one_line_error(
        world.holder_run(["proxy", "import", str(a), "--query", str(other / "Q")]), "not the one"
    )


def test_query_signature_checked_by_the_hotline(world: World) -> None:
    q = world.export()  # unsigned
    lists = ["--list", f"{world.iwf}:url_md5"]
    proc = world.hotline_run(
        ["proxy", "match", str(q), *lists, "--out", "A", "--pubkey", str(world.holder / "holder.pub")]
    )
    assert_one_line_error(proc, "not signed")
    assert not (world.hotline / "A").exists()
    q2 = world.export("Q2", "--sign", "holder.key")
    m = json.loads((q2 / pkg.QUERY_MANIFEST).read_text())
    m["dataset_id"] = "elsewhere"
    (q2 / pkg.QUERY_MANIFEST).write_bytes(pkg.dumps(m))
    proc = world.hotline_run(
        ["proxy", "match", str(q2), *lists, "--out", "A", "--pubkey", str(world.holder / "holder.pub")]
    )
    assert_one_line_error(proc, "signature does not match")


def test_refusals_before_any_work(world: World) -> None:
    (world.holder / "Q").mkdir()
    (world.holder / "Q" / "old").write_text("x")
    proc = world.holder_run(["proxy", "export", "dataset", "--signals", SIGNALS, "--out", "Q", "-q"])
    assert_one_line_error(proc, "not empty")
    for signals, needle in (
        ("url", "cannot be matched by proxy"),
        ("domain", "cannot"),
        ("url_md5:nope", "recipe"),
        ("x", "unknown signal"),
        ("url_md5,url_md5", "twice"),
        (",", "no signals"),
    ):
        proc = world.holder_run(["proxy", "export", "dataset", "--signals", signals, "--out", "Q3", "-q"])
        assert_one_line_error(proc, needle)
    q = world.export("Q4")
    # A list of a signal the query does not hold is refused: "every list given is matched".
    img = world.hotline / "img.txt"
    img.write_text("# SYNTHETIC\n" + "ab" * 16 + "\n")
    assert_one_line_error(
        world.hotline_run(["proxy", "match", str(q), "--list", f"{img}:image_md5", "--out", "A"]),
        "no digests",
    )
    bad = world.hotline / "bad.txt"
    bad.write_text("# SYNTHETIC\nhttps://flagged.example/secret-path\n")
    proc = world.hotline_run(["proxy", "match", str(q), "--list", f"{bad}:url_md5", "--out", "A"])
    assert_one_line_error(proc, "line 2")
    assert "secret-path" not in proc.stderr


def test_older_answer_cannot_undo_a_newer_one_and_user_banks_are_never_overwritten(world: World) -> None:
    q1 = world.export("Q1")
    q2 = world.export("Q2")
    a1, a2 = world.match(q1, "A1"), world.match(q2, "A2")
    _ok(world.holder_run(["proxy", "import", str(a2), "--name", "hot"]))
    assert_one_line_error(world.holder_run(["proxy", "import", str(a1), "--name", "hot"]), "later query")
    _ok(world.holder_run(["proxy", "import", str(a1), "--name", "hot-old"]))
    again = _ok(world.holder_run(["proxy", "import", str(a2), "--name", "hot"]))
    assert "unchanged" in again.stdout
    mine = world.holder / "mine.txt"
    mine.write_text("# SYNTHETIC\n" + "cd" * 16 + "\n")
    _ok(world.holder_run(["lists", "import", str(mine), "--signal", "url_md5", "--name", "mine-url_md5-raw"]))
    assert_one_line_error(
        world.holder_run(["proxy", "import", str(a2), "--name", "mine"]), "does not hold proxy answers"
    )
