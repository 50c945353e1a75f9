"""Match by proxy end to end through the CLI, on URL signals: the holder never sees the hotline's lists,
the hotline never sees a URL, caption, shard or row, and the clean removes exactly the planted rows.

The "known" lists are hashes of ordinary generated URLs, labelled SYNTHETIC (tests/conftest.py).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from expunge import api
from expunge.config import RunConfig
from expunge.demo.synth_lists import random_digests
from expunge.errors import ExpungeError
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
        api.keygen(self.holder / "holder")
        api.keygen(self.hotline / "hot")
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

    @property
    def store(self) -> Path:
        return self.holder / ".expunge"

    def export(self, out: str = "Q", sign: bool = False) -> Path:
        """In process (the CLI round trip is the first test): a subprocess per step would be slow."""
        key = self.holder / "holder.key" if sign else None
        opts = RunConfig(store=self.store, workers=1, sign_key=key)
        api.proxy_export([str(self.ds.root)], self.holder / out, signals=SIGNALS, opts=opts)
        return self.holder / out

    def match(self, query: Path, out: str = "A", sign: bool = False, pubkey: Path | None = None) -> Path:
        lists = [f"{self.iwf}:url_md5", f"{self.c3p}:url_sha1:canonical"]
        key = self.hotline / "hot.key" if sign else None
        target = self.hotline / out
        api.proxy_match(query, target, lists=lists, source="SYNTH-HOTLINE", sign_key=key, pubkey=pubkey)
        return target

    def import_(self, answer: Path, **kw: Any) -> Any:
        return api.proxy_import(answer, store=self.store, **kw)


def refused(call: Callable[[], object], *needles: str) -> str:
    """The call raises one ExpungeError, one line, naming each needle; returns the line."""
    with pytest.raises(ExpungeError) as exc:
        call()
    line = exc.value.one_line()
    assert "\n" not in line
    for needle in needles:
        assert needle in line, (needle, line)
    return line


def banks(world: World) -> list[str]:
    return [b.name for b in api.list_banks(world.store)]


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_round_trip_removes_exactly_the_planted_rows_and_nothing_leaks(world: World) -> None:
    """Through the CLI, as the two sides would run it."""
    hot_pub, holder_pub = str(world.hotline / "hot.pub"), str(world.holder / "holder.pub")
    _ok(
        world.holder_run(
            [
                "proxy",
                "export",
                "dataset",
                "--signals",
                SIGNALS,
                "--out",
                "Q",
                "--sign",
                "holder.key",
                "-q",
                "--workers",
                "1",
            ]
        )
    )
    q = world.holder / "Q"
    lists = ["--list", f"{world.iwf}:url_md5", "--list", f"{world.c3p}:url_sha1:canonical"]
    match_args = ["--out", "A", "--source", "SYNTH-HOTLINE", "--sign", "hot.key", "--pubkey", holder_pub]
    _ok(world.hotline_run(["proxy", "match", str(q), *lists, *match_args]))
    a = world.hotline / "A"
    imp = _ok(
        world.holder_run(["proxy", "import", str(a), "--pubkey", hot_pub, "--query", "Q", "--name", "hot"])
    )
    assert "hot-url_md5-raw" in imp.stdout and "SYNTH-HOTLINE" in imp.stdout
    found = {b.name: b for b in api.list_banks(world.store)}
    assert set(found) == {"hot-url_md5-raw", "hot-url_sha1-canonical"}
    answer = json.loads((a / pkg.ANSWER_MANIFEST).read_text())
    for b in found.values():
        assert b.source == "SYNTH-HOTLINE" and b.versions[-1]["label"] == answer["answer_id"]
    clean = [
        "clean",
        "dataset",
        "--bank",
        "hot-url_md5-raw",
        "--bank",
        "hot-url_sha1-canonical",
        "--out",
        "CLEAN",
    ]
    summary = json.loads(_ok(world.holder_run([*clean, "-q", "--json", "--workers", "1"])).stdout)
    assert summary["rows_removed"] == len(world.ds.flagged)
    assert removed_rows(world.store) == world.ds.flagged
    assert summary["rows_in"] == summary["rows_kept"] + summary["rows_removed"] + summary["rows_quarantined"]
    # The holder never held the hotline's lists; the hotline kept no store.
    assert not (world.hotline / ".expunge").exists()
    assert not any(p.name in ("iwf.csv", "c3p.txt") for p in world.holder.rglob("*"))
    # One refusal through the CLI: one line, exit 2.
    assert_one_line_error(
        world.holder_run(["proxy", "import", str(a), "--pubkey", holder_pub]), "different key"
    )

    # Containment: no URL, caption, shard or sample key in either package or any proxy output...
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
        raw = bytes(d)
        assert raw not in blobs and raw.hex() not in text and raw.hex().encode() not in blobs
    # Both packages hold exactly the files their manifests list; the store keeps a copy of the query.
    assert sorted(p.name for p in q.iterdir()) == [
        "query.json",
        "query.json.minisig",
        "url_md5-raw.parquet",
        "url_sha1-canonical.parquet",
    ]
    qid = json.loads((q / pkg.QUERY_MANIFEST).read_text())["package_id"]
    assert (world.store / "proxy" / qid / pkg.QUERY_MANIFEST).read_bytes() == (
        q / pkg.QUERY_MANIFEST
    ).read_bytes()


def test_query_order_says_nothing_of_shards_or_rows(world: World, tmp_path: Path) -> None:
    q = world.export()
    values = pq.read_table(q / "url_md5-raw.parquet").column("value").to_pylist()
    assert values == sorted(values) and len(values) == len(set(values))
    # The same rows in other shards and another order give the very same digest files.
    other = tmp_path / "other" / "dataset"
    other.mkdir(parents=True)
    whole = pa.concat_tables([pq.read_table(p) for p in sorted(world.ds.root.glob("*.parquet"))])
    whole = whole.take(pa.array(np.random.default_rng(3).permutation(whole.num_rows)))
    pq.write_table(whole.slice(0, 3000), other / "z.parquet")
    pq.write_table(whole.slice(3000), other / "a.parquet")
    opts = RunConfig(store=tmp_path / "other" / "st", workers=1)
    api.proxy_export([str(other)], tmp_path / "other" / "Q2", signals=SIGNALS, opts=opts)
    for f in ("url_md5-raw.parquet", "url_sha1-canonical.parquet"):
        assert (tmp_path / "other" / "Q2" / f).read_bytes() == (q / f).read_bytes()
    # The index's row order is not the query's order.
    index = sorted(world.store.glob("datasets/*/index/*/url_raw_md5.parquet"))
    first = [v for v in pq.read_table(index[0]).column(0).to_pylist() if v is not None]
    assert first[:20] != values[:20]


def test_tampered_answer_is_refused(world: World) -> None:
    q = world.export(sign=True)
    a = world.match(q, sign=True)
    hot_pub = world.hotline / "hot.pub"
    # An edited parquet file.
    bad = world.hotline / "A-edited"
    shutil.copytree(a, bad)
    data = bytearray((bad / "url_md5-raw.parquet").read_bytes())
    data[10] ^= 1
    (bad / "url_md5-raw.parquet").write_bytes(bytes(data))
    refused(lambda: world.import_(bad), "differs from the manifest")
    # An edited manifest (self-consistent, but the signature no longer holds).
    bad2 = world.hotline / "A-manifest"
    shutil.copytree(a, bad2)
    m = json.loads((bad2 / pkg.ANSWER_MANIFEST).read_text())
    m["hotline"] = "SOMEONE-ELSE"
    (bad2 / pkg.ANSWER_MANIFEST).write_bytes(pkg.dumps(m))
    refused(lambda: world.import_(bad2, pubkey=hot_pub), "signature does not match")
    # A file added beside the manifest's.
    bad3 = world.hotline / "A-extra"
    shutil.copytree(a, bad3)
    (bad3 / "notes.txt").write_text("x")
    refused(lambda: world.import_(bad3), "does not list")
    # A listed file removed.
    bad4 = world.hotline / "A-missing"
    shutil.copytree(a, bad4)
    (bad4 / "url_md5-raw.parquet").unlink()
    refused(lambda: world.import_(bad4), "missing")
    # An unsigned answer where a key is required.
    bad5 = world.hotline / "A-unsigned"
    shutil.copytree(a, bad5)
    (bad5 / "answer.json.minisig").unlink()
    refused(lambda: world.import_(bad5, pubkey=hot_pub), "not signed")
    # Signed by another key.
    refused(lambda: world.import_(a, pubkey=world.holder / "holder.pub"), "different key")
    # A distance on an exact match, a line naming an unknown list (self-consistent, unsigned).
    for change in ("distance", "bank"):
        bad6 = world.hotline / f"A-{change}"
        shutil.copytree(a, bad6)
        t = pq.read_table(bad6 / "url_md5-raw.parquet")
        n = t.num_rows
        new = pa.array([3] * n, pa.int16()) if change == "distance" else pa.array(["nobody"] * n)
        t = t.set_column(t.schema.get_field_index(change), change, new)
        rewrite_part(bad6, "url_md5-raw.parquet", t.cast(answer_schema(16)))
        refused(lambda d=bad6: world.import_(d), "a distance" if change == "distance" else "names a list")
    assert banks(world) == []
    # The genuine answer still goes in.
    world.import_(a, pubkey=hot_pub)
    assert len(banks(world)) == 2


def test_answer_naming_a_digest_not_in_the_query_is_refused_whole(world: World) -> None:
    q = world.export()
    a = world.match(q)
    table = pq.read_table(a / "url_md5-raw.parquet").cast(answer_schema(16))
    extra = pa.table(
        {
            "value": pa.array([bytes(world.decoys[0])], pa.binary(16)),
            "bank": ["iwf"],
            "category": [None],
            "distance": pa.nulls(1, pa.int16()),
        },
        schema=answer_schema(16),
    )
    rewrite_part(a, "url_md5-raw.parquet", pa.concat_tables([table, extra]).sort_by("value"))
    line = refused(lambda: world.import_(a), "1 answered url_md5:raw digest(s) were not in the query")
    assert bytes(world.decoys[0]).hex() not in line
    assert banks(world) == []


def test_answer_to_another_query_is_refused(world: World, tmp_path: Path) -> None:
    # Another holder's query (same data, another store): its answer is not to this store's query.
    other = tmp_path / "other"
    opts = RunConfig(store=other / "st", workers=1)
    api.proxy_export([str(world.ds.root)], other / "Q", signals=SIGNALS, opts=opts)
    a_other = world.match(other / "Q", "A-other")
    refused(lambda: world.import_(a_other), "did not export")
    # An answer that claims this store's query id for another manifest.
    q = world.export()
    forged = world.hotline / "A-forged"
    shutil.copytree(a_other, forged)
    m = json.loads((forged / pkg.ANSWER_MANIFEST).read_text())
    m["query_id"] = json.loads((q / pkg.QUERY_MANIFEST).read_text())["package_id"]
    (forged / pkg.ANSWER_MANIFEST).write_bytes(pkg.dumps(m))
    refused(lambda: world.import_(forged), "another query manifest")
    # --query naming another package than the one answered.
    a = world.match(q)
    refused(lambda: world.import_(a, query=other / "Q"), "not the one")
    assert banks(world) == []


def test_query_signature_checked_by_the_hotline(world: World) -> None:
    holder_pub = world.holder / "holder.pub"
    q = world.export()  # unsigned
    refused(lambda: world.match(q, pubkey=holder_pub), "not signed")
    assert not (world.hotline / "A").exists()
    q2 = world.export("Q2", sign=True)
    m = json.loads((q2 / pkg.QUERY_MANIFEST).read_text())
    m["dataset_id"] = "elsewhere"
    (q2 / pkg.QUERY_MANIFEST).write_bytes(pkg.dumps(m))
    refused(lambda: world.match(q2, pubkey=holder_pub), "signature does not match")
    assert world.match(world.export("Q3", sign=True), pubkey=holder_pub).is_dir()


def test_refusals_before_any_work(world: World) -> None:
    (world.holder / "Q").mkdir()
    (world.holder / "Q" / "old").write_text("x")
    refused(lambda: world.export("Q"), "not empty")
    cases = (
        ("url", "cannot be matched by proxy"),
        ("domain", "cannot be matched by proxy"),
        ("url_md5:nope", "recipe"),
        ("x", "unknown signal"),
        ("url_md5,url_md5", "twice"),
        (",", "no signals"),
    )
    for signals, needle in cases:
        refused(
            lambda s=signals: api.proxy_export([str(world.ds.root)], world.holder / "Q3", signals=s), needle
        )
    assert not (world.holder / "Q3").exists()
    q = world.export("Q4")
    # A list of a signal the query does not hold is refused: every list given is matched.
    img = world.hotline / "img.txt"
    img.write_text("# SYNTHETIC\n" + "ab" * 16 + "\n")
    refused(lambda: api.proxy_match(q, world.hotline / "A", lists=[f"{img}:image_md5"]), "no digests")
    bad = world.hotline / "bad.txt"
    bad.write_text("# SYNTHETIC\nhttps://flagged.example/secret-path\n")
    line = refused(lambda: api.proxy_match(q, world.hotline / "A", lists=[f"{bad}:url_md5"]), "line 2")
    assert "secret-path" not in line
    refused(lambda: api.proxy_match(q, world.hotline / "A", lists=[]), "no lists")
    assert not (world.hotline / "A").exists()


def test_older_answer_cannot_undo_a_newer_one_and_user_banks_are_never_overwritten(world: World) -> None:
    q1, q2 = world.export("Q1"), world.export("Q2")
    a1, a2 = world.match(q1, "A1"), world.match(q2, "A2")
    world.import_(a2, name="hot")
    refused(lambda: world.import_(a1, name="hot"), "later query")
    world.import_(a1, name="hot-old")
    assert all(b.unchanged for b in world.import_(a2, name="hot").banks)
    mine = world.holder / "mine.txt"
    mine.write_text("# SYNTHETIC\n" + "cd" * 16 + "\n")
    api.import_list(mine, store=world.store, signal="url_md5", name="mine-url_md5-raw")
    refused(lambda: world.import_(a2, name="mine"), "does not hold proxy answers")
