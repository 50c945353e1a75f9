"""Crafted packages against match by proxy: a hostile or compromised hotline's answer, a curious
hotline reading the query, a holder's mistakes. Each test here is an attack that once got through.

The holder's side is a store that "exported" a query built without a dataset (the importer needs only
the store's copy of the query), so these run in well under a second each. Digests are random bytes;
the lists are labelled SYNTHETIC.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from expunge import api, atomic
from expunge.errors import ExpungeError
from expunge.proxy import package as pkg
from expunge.proxy.answer import answer_schema
from expunge.proxy.query import export_query
from expunge.store import Store, dataset_id
from tests.cli.test_app import assert_one_line_error, run
from tests.proxy import rewrite_part
from tests.proxy.test_package import make_query

MD5, PDQ = pkg.Part("url_md5", "raw"), pkg.Part("pdq", "decoded")


class Side:
    """A holder's store that exported one query (URL MD5 and PDQ), and a hotline's answer to it."""

    def __init__(self, base: Path) -> None:
        rng = np.random.default_rng(5)
        self.base = base
        self.md5 = [rng.bytes(16) for _ in range(30)]
        self.pdq = [rng.bytes(32) for _ in range(30)]
        self.query = make_query(base / "Q", {MD5: self.md5, PDQ: self.pdq})
        self.query_id = json.loads((self.query / pkg.QUERY_MANIFEST).read_text())["package_id"]
        self.store = Store(base / "st").ensure()
        shutil.copytree(self.query, pkg.query_record(self.store, self.query_id))
        atomic.write_json(pkg.record_file(self.store, self.query_id), {"exported_ns": 1}, self.store.tmp)
        self.md5_list = base / "iwf.txt"
        self.md5_list.write_text("# SYNTHETIC\n" + "".join(v.hex() + "\n" for v in self.md5[:6]))
        self.pdq_list = base / "pdq.txt"
        self.pdq_list.write_text("# SYNTHETIC\n" + "".join(v.hex() + "\n" for v in self.pdq[:4]))
        self.answer = self.match("A")
        self.n = 0

    def match(self, out: str) -> Path:
        lists = [f"{self.md5_list}:url_md5", f"{self.pdq_list}:pdq"]
        api.proxy_match(self.query, self.base / out, lists=lists, source="SYNTH-HOTLINE")
        return self.base / out

    def copy(self) -> Path:
        self.n += 1
        d = self.base / f"forged-{self.n}"
        shutil.copytree(self.answer, d)
        return d

    def edit_manifest(self, change: Callable[[dict[str, Any]], None]) -> Path:
        """An answer whose manifest a forger changed (and so dropped the signature)."""
        d = self.copy()
        m = json.loads((d / pkg.ANSWER_MANIFEST).read_text())
        change(m)
        (d / pkg.ANSWER_MANIFEST).write_bytes(pkg.dumps(m))
        return d

    def import_(self, answer: Path, **kw: Any) -> Any:
        return api.proxy_import(answer, store=self.store.root, **kw)


def refused(call: Callable[[], object], *needles: str) -> str:
    with pytest.raises(ExpungeError) as exc:
        call()
    line = exc.value.one_line()
    assert "\n" not in line
    for needle in needles:
        assert needle in line, (needle, line)
    return line


@pytest.fixture
def side(tmp_path: Path) -> Side:
    return Side(tmp_path)


def _set_thresholds(value: object) -> Callable[[dict[str, Any]], None]:
    def change(m: dict[str, Any]) -> None:
        for x in m["lists"]:
            if x["signal"] == "pdq":
                x["threshold"] = value

    return change


def test_answer_list_entries_are_checked_whole(side: Side) -> None:
    """The answer's list entries were only checked for their labels: a PDQ threshold of 'abc' or 1e300
    was a traceback, and [1], True, 500, None or '30' went in, as did unknown signals and a label
    named twice (whose lines were then checked against whichever entry came last)."""
    for bad in ("abc", 1e300, [1], True, -1, 500, None, "30"):
        refused(lambda b=bad: side.import_(side.edit_manifest(_set_thresholds(b))), "malformed threshold")

    def exact_threshold(m: dict[str, Any]) -> None:
        next(x for x in m["lists"] if x["signal"] == "url_md5")["threshold"] = 3

    refused(lambda: side.import_(side.edit_manifest(exact_threshold)), "malformed threshold", "url_md5")
    extra: list[tuple[dict[str, Any], str]] = [
        ({"label": "other", "signal": "made_up", "recipe": "raw", "threshold": None}, "unknown signal"),
        ({"label": "other"}, "malformed list entry"),
        ({"label": "iwf", "signal": "url_md5", "recipe": "raw", "threshold": None}, "names a list twice"),
    ]
    for entry, needle in extra:
        refused(lambda e=entry: side.import_(side.edit_manifest(lambda m: m["lists"].append(e))), needle)
    assert api.list_banks(side.store.root) == []
    side.import_(side.answer)  # the genuine answer still goes in


def test_labels_names_and_categories_carry_no_markup_or_control_characters(side: Side) -> None:
    """A hotline label with Rich markup became a bank's source, and ``expunge lists ls`` then failed
    (MarkupError) or drew a link; categories with C1 controls (0x9b is CSI), bidi overrides or line
    separators were stored; the hotline's own match accepted categories and labels the holder refuses."""
    for label in ("[/]", "[link=https://elsewhere.example]IWF[/link]", "back\\slash"):
        d = side.edit_manifest(lambda m, lab=label: m.update(hotline=lab))
        refused(lambda d=d: side.import_(d), "label")
    for cat in ("a\x9b31mb", "\u202ex", "a\u2028b", "\x85", "y" * 201):
        d = side.copy()
        t = pq.read_table(d / "url_md5-raw.parquet").cast(answer_schema(16))
        t = t.set_column(2, "category", pa.array([cat] * t.num_rows, pa.string()))
        rewrite_part(d, "url_md5-raw.parquet", t)
        line = refused(lambda d=d: side.import_(d), "malformed category", "url_md5-raw.parquet")
        assert cat not in line
    for name in ("[/]", "", "a\nb"):
        refused(lambda n=name: side.import_(side.answer, name=n), "--name")
    assert api.list_banks(side.store.root) == []
    # The hotline is refused the same things up front, naming the file and line, never the value.
    out = side.base / "A2"
    refused(
        lambda: api.proxy_match(side.query, out, lists=[f"{side.md5_list}:url_md5"], source="[/]"), "--source"
    )
    csv = side.base / "cats.csv"
    csv.write_text(f"hash,category\n{side.md5[0].hex()},ok\n{side.md5[1].hex()},esc\x1b[31m\n")
    line = refused(lambda: api.proxy_match(side.query, out, lists=[f"{csv}:url_md5"]), "cats.csv", "line 3")
    assert "esc" not in line
    marked = side.base / "iwf[2024].txt"
    shutil.copy(side.md5_list, marked)
    refused(lambda: api.proxy_match(side.query, out, lists=[f"{marked}:url_md5"]), "label")
    assert not out.exists()


def test_a_replayed_answer_cannot_undo_a_later_one(side: Side) -> None:
    """Two answers to one query (the hotline's list grew between them): the older one, replayed after
    the newer was taken in, replaced the bank with its smaller set."""
    first = side.answer
    side.md5_list.write_text("# SYNTHETIC\n" + "".join(v.hex() + "\n" for v in side.md5[:10]))
    later = side.match("A-later")
    assert side.import_(first, name="hot").banks[0].count == 6
    assert side.import_(later, name="hot").banks[0].count == 10
    refused(lambda: side.import_(first, name="hot"), "took this answer in before")
    assert all(b.unchanged for b in side.import_(later, name="hot").banks)  # the current one: idempotent
    assert next(b for b in api.list_banks(side.store.root) if b.signal == "url_md5").count == 10
    side.import_(first, name="hot-first")  # a bank of its own is fine


def test_no_symbolic_link_in_a_package_is_followed(side: Side, tmp_path: Path) -> None:
    """The signature file was read through a symbolic link (from anywhere on the holder's disk), and a
    link there was accepted when no public key was given."""
    outside = tmp_path / "outside.txt"
    outside.write_text("not part of the package\n")
    for name in (pkg.ANSWER_MANIFEST + pkg.SIG_SUFFIX, "notes.txt"):
        d = side.copy()
        (d / name).unlink(missing_ok=True)
        (d / name).symlink_to(outside)
        refused(lambda d=d: side.import_(d), "symbolic link")
        refused(lambda d=d: side.import_(d, pubkey=tmp_path / "any.pub"), "symbolic link")
    q = tmp_path / "Q-linked"
    shutil.copytree(side.query, q)
    (q / (pkg.QUERY_MANIFEST + pkg.SIG_SUFFIX)).symlink_to(outside)
    refused(lambda: api.proxy_match(q, tmp_path / "A-x", lists=[f"{side.md5_list}:url_md5"]), "symbolic link")
    assert api.list_banks(side.store.root) == []


def _refit(folder: Path, manifest: str, file: str) -> None:
    """A forger's fix-up of the manifest's entry for a rewritten file (size and SHA-256)."""
    m = json.loads((folder / manifest).read_text())
    next(e for e in m["signals"] if e["file"] == file).update(pkg.file_entry(folder / file))
    (folder / manifest).write_bytes(pkg.dumps(m))


def test_parquet_metadata_and_row_claims_are_checked_before_reading(side: Side) -> None:
    """A part carrying key-value metadata (data the format does not name) was accepted; a manifest's
    row count was compared only after the whole file had been read into memory."""
    d = side.copy()
    t = pq.read_table(d / "url_md5-raw.parquet").cast(answer_schema(16))
    rewrite_part(d, "url_md5-raw.parquet", t)  # the manifest's entry, then the file with metadata
    pq.write_table(t.replace_schema_metadata({"note": "x" * 1000}), d / "url_md5-raw.parquet")
    _refit(d, pkg.ANSWER_MANIFEST, "url_md5-raw.parquet")
    refused(lambda: side.import_(d), "metadata", "url_md5-raw.parquet")

    def many_rows(m: dict[str, Any]) -> None:
        m["signals"][0]["rows"] = 10**12

    refused(lambda: side.import_(side.edit_manifest(many_rows)), "more lines than the query has digests")
    # The query's side: the hotline reads no part whose footer disagrees with the manifest.
    q = side.base / "Q-meta"
    shutil.copytree(side.query, q)
    t = pq.read_table(q / "url_md5-raw.parquet")
    pq.write_table(t.replace_schema_metadata({"note": "hello"}), q / "url_md5-raw.parquet")
    _refit(q, pkg.QUERY_MANIFEST, "url_md5-raw.parquet")
    refused(lambda: api.proxy_match(q, side.base / "A-m", lists=[f"{side.md5_list}:url_md5"]), "metadata")


def test_a_deeply_nested_or_huge_manifest_is_one_line(side: Side, tmp_path: Path) -> None:
    """A manifest nested 50,000 deep was a RecursionError (a traceback); a huge one was read whole."""
    deep = tmp_path / "deep"
    deep.mkdir()
    (deep / pkg.QUERY_MANIFEST).write_text('{"a":' * 50_000 + "1" + "}" * 50_000)
    lists = [f"{side.md5_list}:url_md5"]
    refused(lambda: api.proxy_match(deep, tmp_path / "A1", lists=lists), "not valid JSON")
    d = side.copy()
    (d / pkg.ANSWER_MANIFEST).write_text('{"a":' * 50_000 + "1" + "}" * 50_000)
    refused(lambda: side.import_(d), "not valid JSON")
    (d / pkg.ANSWER_MANIFEST).write_text(json.dumps({"pad": "x" * (pkg.MAX_MANIFEST_BYTES + 1)}))
    refused(lambda: side.import_(d), "too large")
    # Through the CLI: one line, exit 2.
    assert_one_line_error(
        run(["proxy", "match", str(deep), "--list", lists[0], "--out", str(tmp_path / "A2")], tmp_path),
        "not valid JSON",
    )


def test_threshold_out_of_range_is_refused_without_pdq_lists(side: Side) -> None:
    """--threshold -5 with URL lists only was silently ignored."""
    out = side.base / "A-t"
    for t in (-5, 129):
        refused(
            lambda t=t: api.proxy_match(side.query, out, lists=[f"{side.md5_list}:url_md5"], threshold=t),
            "--threshold",
        )
    assert not out.exists()


@dataclass
class _Dataset:
    """A dataset view with no shards: enough for the query's manifest."""

    root: str
    id: str = ""
    shards: list[Any] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    dihedral: bool = False

    def __post_init__(self) -> None:
        self.id = dataset_id(self.root)


def test_query_dataset_id_does_not_name_or_hash_the_path(tmp_path: Path) -> None:
    """The query carried the store's dataset id: the folder's name and the first 12 hex digits of the
    SHA-256 of its absolute path, which a hotline could test guessed paths (user names) against."""
    root = "/home/alice-example/private-crawl-2024"
    ds = _Dataset(root)
    ids = []
    for n, store in enumerate(
        (Store(tmp_path / "st1").ensure(), Store(tmp_path / "st1"), Store(tmp_path / "st2"))
    ):
        export_query(store, ds, [pkg.Part("url_md5", "raw")], tmp_path / f"Q{n}", quality_floor=0)  # type: ignore[arg-type]
        text = (tmp_path / f"Q{n}" / pkg.QUERY_MANIFEST).read_text()
        for leak in ("alice", "private-crawl", ds.id, ds.id.rsplit("-", 1)[-1]):
            assert leak not in text
        ids.append(json.loads(text)["dataset_id"])
    assert ids[0] == ids[1] != ids[2]  # stable for one store and dataset, unlinkable across stores


def test_answer_manifest_keys_the_format_does_not_name_are_refused(side: Side) -> None:
    """A hostile hotline put data under keys of its own (here a list value that was never in the
    query): the answer was accepted and its manifest, with the value, kept in the holder's store."""
    secret = np.random.default_rng(9).bytes(16).hex()
    changes: list[Callable[[dict[str, Any]], None]] = [
        lambda m: m.update(note=secret),
        lambda m: m["signals"][0].update(note=secret),
        lambda m: m["lists"][0].update(note=secret),
        lambda m: m.update(tool_version=secret * 2),
    ]
    for change in changes:
        line = refused(lambda c=change: side.import_(side.edit_manifest(c)), "answer's manifest")
        assert secret not in line
    assert secret not in "".join(
        p.read_text(errors="replace") for p in side.store.root.rglob("*") if p.is_file()
    )
    assert api.list_banks(side.store.root) == []


def test_packages_are_never_written_inside_what_they_describe(tmp_path: Path) -> None:
    """Red-team finding: a query written into its own dataset (or an answer into its query) spoils it."""
    from expunge import api
    from expunge.errors import ExpungeError
    from tests.conftest import build_small_dataset

    ds = build_small_dataset(tmp_path, shards=1, rows_per_shard=50)
    opts = api.Options(store=tmp_path / "st", workers=1)
    with pytest.raises(ExpungeError, match="inside the dataset"):
        api.proxy_export([str(ds.root)], ds.root / "query", signals="url_md5", opts=opts)
    assert not (ds.root / "query").exists()
    query = tmp_path / "query"
    api.proxy_export([str(ds.root)], query, signals="url_md5", opts=opts)
    with pytest.raises(ExpungeError, match="inside the query"):
        api.proxy_match(query, query / "answer", lists=[f"{ds.lists['iwf']}:url_md5"])
