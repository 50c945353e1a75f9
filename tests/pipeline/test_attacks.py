"""Adversarial inputs against the fail-closed pipeline fixes (issue 8): each test is an attack that
found a hole; each is fixed, and the test keeps it fixed.

Attacks that found nothing are listed in the adversary's report, not kept here.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.cli.test_app import run

MARK = "zebrafish7731"  # a distinctive neutral token: it must appear in no byte of a release
FLAGGED = f"http://flagged.example/{MARK}.jpg"
URLS = [f"http://ok.example/{i:04d}.jpg" for i in range(6)]


def _listing(tmp: Path) -> str:
    path = tmp / "synthetic-list.txt"
    path.write_text("# SYNTHETIC\n" + hashlib.md5(FLAGGED.encode()).hexdigest() + "\n")
    return f"{path}:url_md5"


def _release_bytes_hold(out: Path, needle: bytes) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and needle in p.read_bytes())


# Defect class 2/16 (flagged content published): a dictionary-encoded URL or caption column is
# filtered with Arrow's ``filter``, which keeps the whole dictionary, and the Parquet writer writes the
# dictionary as it is: the removed row's URL and caption stay in the rewritten shard's dictionary page
# (``pq.read_table(..., read_dictionary=[...])`` shows them). formats/parquet.py ``rewrite``/``_filter``.
@pytest.mark.parametrize("column", ["url", "caption"])
def test_a_dictionary_column_keeps_no_removed_value(tmp_path: Path, column: str) -> None:
    urls = [URLS[0], FLAGGED, *URLS[1:]]
    captions = [f"a mug {i}" for i in range(len(urls))]
    captions[1] = f"a {MARK} mug"
    cols = {"url": pa.array(urls), "caption": pa.array(captions)}
    cols[column] = cols[column].dictionary_encode()
    (tmp_path / "ds").mkdir()
    pq.write_table(pa.table(cols), tmp_path / "ds" / "p.parquet")
    proc = run(["clean", "ds", "--list", _listing(tmp_path), "--out", "out", "-q", "--json"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["rows_removed"] == 1
    dictionary = pq.read_table(tmp_path / "out" / "p.parquet", read_dictionary=[column]).column(column)
    assert MARK not in str(dictionary.chunk(0).dictionary.to_pylist())
    assert _release_bytes_hold(tmp_path / "out", MARK.encode()) == []


# Defect class 5/9 (apply trusts its input): ``apply`` builds its keep-list by indexing the release's
# shards as they are on disk, without checking them against the manifest: a row added to a release
# shard after publication (here the flagged URL) is kept in the derivative. ``verify`` catches the edit;
# api.apply/_keep_bank never runs it.
def test_apply_refuses_a_tampered_release(tmp_path: Path) -> None:
    (tmp_path / "ds").mkdir()
    (tmp_path / "der").mkdir()
    pq.write_table(pa.table({"url": [URLS[0], FLAGGED, *URLS[1:]]}), tmp_path / "ds" / "p.parquet")
    pq.write_table(pa.table({"url": [FLAGGED, URLS[0]], "n": [1, 2]}), tmp_path / "der" / "d.parquet")
    made = run(["clean", "ds", "--list", _listing(tmp_path), "--out", "rel", "-q"], tmp_path)
    assert made.returncode == 0, made.stderr
    shard = tmp_path / "rel" / "p.parquet"
    table = pq.read_table(shard)
    pq.write_table(pa.concat_tables([table, pa.table({"url": [FLAGGED]}).cast(table.schema)]), shard)
    proc = run(["apply", "rel", "der", "--out", "dout", "-q"], tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "does not verify" in proc.stderr
    assert "Traceback" not in proc.stderr and MARK not in proc.stderr
    assert not (tmp_path / "dout" / "d.parquet").exists()


# Defect class 17/fail closed (a guess in the direction of publishing): with two URL-like columns
# (``url`` and ``image_url``, or ``url`` and ``URL``) the first name of URL_COLUMNS is matched and the
# other column, flagged URL and all, is published as it is. formats/parquet.py ``detect_columns``
# (``_pick``) should refuse an ambiguous URL column unless --url-column names it.
@pytest.mark.parametrize("other", ["image_url", "URL"])
def test_a_second_url_like_column_is_not_published_unmatched(tmp_path: Path, other: str) -> None:
    (tmp_path / "ds").mkdir()
    table = pa.table({"url": [URLS[0], URLS[1]], other: [FLAGGED, URLS[2]]})
    pq.write_table(table, tmp_path / "ds" / "p.parquet")
    proc = run(["clean", "ds", "--list", _listing(tmp_path), "--out", "out", "-q"], tmp_path)
    assert proc.returncode == 2 and "several URL columns" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and MARK not in proc.stderr
    named = ["clean", "ds", "--list", _listing(tmp_path), "--out", "out", "-q", "--url-column", other]
    proc = run(named, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert _release_bytes_hold(tmp_path / "out", MARK.encode()) == []


# Defect class 11/12 (a torn release): --out inside an existing release (another store, or the same)
# is neither locked against nor refused: the second run writes a release into the first, which then
# fails its own verify. pipeline/run.py ``check_out_location``/``_check_out`` look at OUT only, not at
# its parents; folder_lock holds OUT only.
def test_an_output_inside_an_existing_release_is_refused(tmp_path: Path) -> None:
    (tmp_path / "ds").mkdir()
    pq.write_table(pa.table({"url": [FLAGGED, *URLS]}), tmp_path / "ds" / "p.parquet")
    listing = _listing(tmp_path)
    first = run(["clean", "ds", "--list", listing, "--out", "rel", "-q"], tmp_path)
    assert first.returncode == 0, first.stderr
    nested = run(["clean", "ds", "--list", listing, "--out", "rel/inner", "--store", "st2", "-q"], tmp_path)
    assert nested.returncode == 2 and "Traceback" not in nested.stderr
    assert run(["verify", "rel"], tmp_path).returncode == 0


# The same class, found again by tests/test_adversarial.py: a source written from one Arrow dictionary
# repeats the whole dictionary in every row group, so the row groups that lost no row (and slices of
# merged row groups) carried the removed value too.
def test_no_row_group_of_a_dictionary_column_keeps_a_removed_value(tmp_path: Path) -> None:
    urls = [*URLS[:5], FLAGGED, *URLS[5:]]
    (tmp_path / "ds").mkdir()
    pq.write_table(pa.table({"url": pa.array(urls).dictionary_encode()}), tmp_path / "ds" / "p.parquet",
                   row_group_size=2)  # fmt: skip
    proc = run(["clean", "ds", "--list", _listing(tmp_path), "--out", "out", "-q", "--json"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    table = pq.read_table(tmp_path / "out" / "p.parquet", read_dictionary=["url"])
    assert all(FLAGGED not in chunk.dictionary.to_pylist() for chunk in table.column("url").chunks)
    assert _release_bytes_hold(tmp_path / "out", MARK.encode()) == []


# Store paths cut shard ids at their last dot (``Path.with_suffix``): ``laion.part1`` and ``laion.part2``
# shared one findings file, so one shard's matches were read as the other's and a flagged row of the
# first was published. store.py ``findings``/``soft_findings``.
def test_shards_whose_names_differ_after_a_dot_keep_their_own_findings(tmp_path: Path) -> None:
    flagged_two = f"http://flagged.example/{MARK}-2.jpg"
    (tmp_path / "ds").mkdir()
    pq.write_table(pa.table({"url": [URLS[0], FLAGGED, URLS[1]]}), tmp_path / "ds" / "laion.part1.parquet")
    pq.write_table(
        pa.table({"url": [URLS[2], URLS[3], flagged_two]}), tmp_path / "ds" / "laion.part2.parquet"
    )
    listing = tmp_path / "two.txt"  # SYNTHETIC: digests of the two made-up URLs above
    listing.write_text("".join(hashlib.md5(u.encode()).hexdigest() + "\n" for u in (FLAGGED, flagged_two)))
    proc = run(["clean", "ds", "--list", f"{listing}:url_md5", "--out", "out", "-q", "--json"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["rows_removed"] == 2
    assert _release_bytes_hold(tmp_path / "out", MARK.encode()) == []


def test_keygen_keeps_a_dotted_prefix_whole(tmp_path: Path) -> None:
    proc = run(["keygen", "release.v2"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "release.v2.key").is_file() and (tmp_path / "release.v2.pub").is_file()
