"""The URL benchmark's realistic variant: hits in one shard of ten, as with real lists.

Re-LAION removed 2,236 of 5.85 billion rows; most shards of a real release are untouched and expunge
hard-links them. Same data size as ``bench_urls.py`` (rows without quarantine cases, so untouched shards
really are untouched), 2,000 planted MD5s all in shard 0, a 1,000,000-hash bank. In one run:
(a) ``api.clean`` first run, (d) DuckDB's one-statement baseline writing all shards, (e) the floor.

    python benchmarks/bench_urls_sparse.py [--rows 5000000] [--shards 10]
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import shutil
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from expunge import api
from expunge.demo import synth


def make(work: Path, rows: int, shards: int, bank: int, planted: int) -> tuple[Path, Path]:
    ds = synth.generate_dataset(work / "data", rows=rows, shards=shards, flagged=0, utf8_only=True)
    for shard in ds.shards:  # drop the quarantine cases so untouched shards stay untouched
        table = pq.read_table(shard)
        ok = pc.fill_null(pc.match_substring_regex(table.column("URL"), r"^https?://[^/]+\.[^/]+/"), False)
        pq.write_table(table.filter(ok), shard, row_group_size=10_000, compression="zstd")
    urls = pq.read_table(ds.shards[0], columns=["URL"]).column(0).to_pylist()
    step = max(1, len(urls) // planted)
    picks = [hashlib.md5(u.encode()).digest() for u in urls[::step][:planted]]
    randoms = synth.random_digests(bank - len(picks), 16, seed=1)
    digests = np.concatenate([randoms, np.array(picks, dtype="S16")])
    return ds.root, synth.write_digest_list(work / "bank.txt", digests, "plain")


def _floor_one(path: str) -> int:
    n = 0
    for batch in pq.ParquetFile(path).iter_batches(columns=["URL"]):
        for u in batch.column(0).to_pylist():
            hashlib.md5(u.encode()).digest()
            n += 1
    return n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rows", type=int, default=5_000_000)
    p.add_argument("--shards", type=int, default=10)
    p.add_argument("--bank", type=int, default=1_000_000)
    p.add_argument("--planted", type=int, default=2_000)
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="expunge-bench-sparse-"))
    try:
        root, lst = make(work, args.rows, args.shards, args.bank, args.planted)
        t = time.perf_counter()
        with multiprocessing.get_context("forkserver").Pool(2) as pool:
            pool.map(_floor_one, [str(s) for s in sorted(root.glob("*.parquet"))])
        e = time.perf_counter() - t
        t = time.perf_counter()
        summary = api.clean(
            [str(root)],
            work / "out",
            lists=[f"{lst}:url_md5"],
            opts=api.Options(store=work / "st", workers=2),
        )
        a = time.perf_counter() - t
        con = duckdb.connect(config={"threads": 2})
        columns = "{'column0': 'VARCHAR'}"
        source = f"read_csv('{lst}', header=false, columns={columns})"
        con.execute(f"CREATE TABLE bank AS SELECT column0 AS h FROM {source}")
        t = time.perf_counter()
        con.execute(
            f"COPY (SELECT t.* EXCLUDE (filename), regexp_extract(t.filename, '[^/]+$') AS shard "
            f"FROM read_parquet('{root}/*.parquet', filename=true) AS t "
            "ANTI JOIN bank ON md5(t.URL) = bank.h) "
            f"TO '{work / 'out_d'}' (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (shard))"
        )
        d = time.perf_counter() - t
        print(f"rows {summary['rows_in']:,}; removed {summary['rows_removed']:,}; shards rewritten "
              f"{summary['shards_rewritten']}, copied {summary['shards_copied']}")  # fmt: skip
        print(f"(a) expunge first clean, list import included: {a:6.2f} s")
        print(f"(d) DuckDB one statement:                      {d:6.2f} s")
        print(f"(e) floor (URL column + hashlib md5):          {e:6.2f} s")
        print(f"(a)/(e) = {a / e:.2f} (target <= 1.5); (d)/(a) = {d / a:.2f} (target >= 2)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
