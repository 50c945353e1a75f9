"""Scale-out overhead: the URL benchmark dataset through ``api.clean`` with the local executor and with
Ray (1 and 2 workers, a local Ray started here), in one run. Target: Ray at 2 workers within 1.3 x the
local executor at 2 workers on this machine.

    python benchmarks/bench_scale.py [--rows 5000000] [--shards 10] [--bank 1000000] [--planted 2000]
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


def make(work: Path, rows: int, shards: int, bank: int, planted: int) -> tuple[Path, Path]:
    ds = synth.generate_dataset(work / "data", rows=rows, shards=shards, flagged=0, utf8_only=True)
    picks: list[bytes] = []
    per = max(1, planted // shards)
    for shard in ds.shards:
        urls = pq.read_table(shard, columns=["URL"]).column(0).to_pylist()
        step = max(1, len(urls) // per)
        picks += [hashlib.md5(u.encode()).digest() for u in urls[::step][:per] if u]
    # numpy 'S16' arrays keep every byte; .tolist() would drop trailing zero bytes
    randoms = synth.random_digests(bank - len(picks), 16, seed=1)
    digests = np.concatenate([randoms, np.array(picks, dtype="S16")])
    lst = synth.write_digest_list(work / "bank.txt", digests, "plain")
    return ds.root, lst


def run(root: Path, lst: Path, work: Path, name: str, executor: str, workers: int) -> tuple[float, dict]:
    store, out = work / f"store-{name}", work / f"out-{name}"
    api.import_list(lst, store=store, name="bank", signal="url_md5")
    started = time.perf_counter()
    summary = api.clean(
        [str(root)], out, banks=["bank"], opts=api.Options(store=store, workers=workers, executor=executor)
    )
    return time.perf_counter() - started, summary


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rows", type=int, default=5_000_000)
    p.add_argument("--shards", type=int, default=10)
    p.add_argument("--bank", type=int, default=1_000_000)
    p.add_argument("--planted", type=int, default=2_000)
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="expunge-bench-scale-"))
    try:
        root, lst = make(work, args.rows, args.shards, args.bank, args.planted)
        results = {}
        for name, executor, workers in (("local-2", "local", 2), ("ray-1", "ray", 1), ("ray-2", "ray", 2)):
            seconds, summary = run(root, lst, work, name, executor, workers)
            results[name] = seconds
            print(f"{name:8} {seconds:7.2f} s  removed {summary['rows_removed']:,} of {summary['rows_in']:,}")
        a, b = (work / "out-local-2"), (work / "out-ray-2")
        same = all(
            (b / p.relative_to(a)).read_bytes() == p.read_bytes()
            for p in a.rglob("*")
            if p.is_file() and "removed" not in p.name
        )
        print(f"ray-2 / local-2: {results['ray-2'] / results['local-2']:.2f}  (target <= 1.3)")
        print(f"ray speed-up 1 -> 2 workers: {results['ray-1'] / results['ray-2']:.2f}")
        print(f"shards byte-identical between local and ray: {same}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
