"""Adversarial inputs against the fail-closed pipeline fixes (issue 8): each test is an attack that
found a hole. Those the pipeline owners have not fixed yet are strict xfails naming the finding.

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
@pytest.mark.xfail(
    strict=True,
    reason="finding: dictionary columns keep the removed row's value in the rewritten dictionary",
)
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
@pytest.mark.xfail(strict=True, reason="finding: apply keeps rows of a tampered release (no verify step)")
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
    if proc.returncode == 2:
        assert "Traceback" not in proc.stderr and MARK not in proc.stderr
        return
    assert proc.returncode == 0, proc.stderr
    kept = pq.read_table(tmp_path / "dout" / "d.parquet").column("url").to_pylist()
    assert FLAGGED not in kept
