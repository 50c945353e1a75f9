"""Match by proxy at Re-LAION scale: the holder's query for 5,000,000 rows with two URL signals
(``url_md5`` raw and ``url_sha1`` canonical), and the hotline's match of it against a 16,000,000-hash list
(the size of Re-LAION's combined IWF + C3P lists).

Printed, in one run:
  (a) export from scratch: indexing the two features plus writing the package;
  (b) export again from the stored index (what a second query costs), against the index alone (a);
  size of the package's digest files against the raw digests (distinct count x width);
  (c) the hotline's ``proxy match``: reading the 16M-line list, matching, writing the answer;
  (d) the floor for (c)'s core: one SortedSet membership test of the same arrays, no I/O.

    python benchmarks/bench_proxy.py [--rows 5000000] [--shards 10] [--list 16000000] [--planted 2000]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from expunge import api
from expunge.demo import synth
from expunge.lists.bank import sorted_unique
from expunge.matchers.exact import SortedSet

SIGNALS = "url_md5,url_sha1:canonical"


def make_list(work: Path, root: Path, size: int, planted: int) -> tuple[Path, np.ndarray]:
    """``size`` MD5s: ``planted`` of the dataset's raw URLs, the rest random (SYNTHETIC)."""
    shard = sorted(root.glob("*.parquet"))[0]
    urls = [u for u in pq.read_table(shard, columns=["URL"]).column(0).to_pylist() if u]
    step = max(1, len(urls) // planted)
    picks = np.array([hashlib.md5(u.encode()).digest() for u in urls[::step][:planted]], dtype="S16")
    digests = np.concatenate([synth.random_digests(size - len(picks), 16, seed=1), picks])
    return synth.write_digest_list(work / "hotline-md5.txt", digests, "plain"), digests


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rows", type=int, default=5_000_000)
    p.add_argument("--shards", type=int, default=10)
    p.add_argument("--list", type=int, default=16_000_000)
    p.add_argument("--planted", type=int, default=2_000)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="expunge-bench-proxy-"))
    try:
        t = time.perf_counter()
        ds = synth.generate_dataset(
            work / "data", rows=args.rows, shards=args.shards, flagged=0, utf8_only=True
        )
        print(
            f"dataset: {args.rows:,} rows in {args.shards} shards"
            f" ({time.perf_counter() - t:.1f} s to generate)"
        )
        opts = api.Options(store=work / "st", workers=args.workers)
        t = time.perf_counter()
        res = api.proxy_export([str(ds.root)], work / "Q", signals=SIGNALS, opts=opts)
        a = time.perf_counter() - t
        t = time.perf_counter()
        api.proxy_export([str(ds.root)], work / "Q2", signals=SIGNALS, opts=opts)
        b = time.perf_counter() - t
        raw = res.counts["url_md5:raw"] * 16 + res.counts["url_sha1:canonical"] * 20
        size = sum(f.stat().st_size for f in (work / "Q").glob("*.parquet"))
        print(f"(a) export from scratch (index + package): {a:.1f} s, {args.rows / a:,.0f} rows/s")
        print(
            f"(b) export from the stored index:          {b:.1f} s, {args.rows / b:,.0f} rows/s"
            f" ({b / a:.2f} x (a))"
        )
        print(f"    distinct digests: {res.counts}")
        print(f"    package digest files {size:,} bytes vs raw digests {raw:,} bytes: {size / raw:.3f} x")
        t = time.perf_counter()
        lst, digests = make_list(work, ds.root, args.list, args.planted)
        print(
            f"hotline list: {args.list:,} MD5s, {lst.stat().st_size:,} bytes"
            f" ({time.perf_counter() - t:.1f} s to write)"
        )
        t = time.perf_counter()
        ans = api.proxy_match(work / "Q", work / "A", lists=[f"{lst}:url_md5"], source="SYNTH")
        c = time.perf_counter() - t
        print(
            f"(c) proxy match, {res.counts['url_md5:raw']:,}-digest query"
            f" vs {args.list:,}-hash list: {c:.1f} s"
        )
        print(f"    matched: {ans.matched}")
        query = pq.read_table(work / "Q" / "url_md5-raw.parquet").column(0).combine_chunks()
        q = np.frombuffer(query.buffers()[1], dtype="S16", count=len(query))
        t = time.perf_counter()
        hits = int(SortedSet.build(sorted_unique(q)).contains(digests).sum())
        d = time.perf_counter() - t
        print(
            f"(d) floor: one SortedSet build + membership test, no I/O: {d:.1f} s ({hits:,} hits);"
            f" (c) = {c / d:.1f} x (d)"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
