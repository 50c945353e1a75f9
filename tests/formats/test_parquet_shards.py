"""The parquet format through the whole flow: identity of rewritten shards whatever their suffix."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from expunge import api
from expunge.config import RunConfig


def test_a_rewritten_pq_shard_is_identified_by_its_bytes(tmp_path: Path) -> None:
    """A ``.pq`` shard with removals: the summary and manifest name the SHA-256 of the rewritten file
    (it was the hash of no file at all: only ``.tar``/``.parquet`` outputs were counted), so verify passes."""
    urls = [f"http://example.org/{w}" for w in ("apple", "river", "stone", "cloud")]
    (tmp_path / "ds").mkdir()
    pq.write_table(pa.table({"url": urls}), tmp_path / "ds" / "part-0.pq")
    listed = tmp_path / "iwf.txt"
    listed.write_text(hashlib.md5(urls[1].encode()).hexdigest() + "\n")
    out = tmp_path / "out"
    opts = RunConfig(store=tmp_path / "store", workers=1)
    summary = api.clean([str(tmp_path / "ds")], out, lists=[f"{listed}:url_md5"], opts=opts)
    assert summary["rows_removed"] == 1
    shard = summary["shards"][0]
    assert shard["sha256"] == hashlib.sha256((out / "part-0.pq").read_bytes()).hexdigest()
    assert api.verify(out) == []
