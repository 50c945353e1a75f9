"""Remote data (issue 13): the URL benchmark with dataset, store and release on an S3 API, against the
same run on local disk, and the bytes the index stage reads per remote shard.

The S3 API is moto in server mode on a loopback port (the tests' server, ``tests/s3server.py``): expunge
talks HTTP to it through s3fs and Arrow as it would to AWS. moto is a Python server that keeps objects
in memory, so the ratio is a bound on expunge's own overhead plus a slow server, not a cloud figure.

    python benchmarks/bench_remote.py                      # 5,000,000 rows in 10 shards
    python benchmarks/bench_remote.py --rows 500000        # a quick look

Prints every figure and the ratio remote / local; ``--results FILE`` writes them as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from tests.s3server import ACCESS_KEY, REGION, SECRET_KEY, S3Server  # noqa: E402

import bench_urls  # noqa: E402

BUCKET = "bench"


def _env(server: S3Server, cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ENDPOINT_URL=server.endpoint,
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        EXPUNGE_CACHE=str(cache),
    )
    return env


def _timed(cmd: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return seconds


def _expunge(*args: str) -> list[str]:
    return [sys.executable, "-m", "expunge.cli", *args]


def _range_bytes(header: str | None, size: int) -> int:
    if not header:
        return size
    m = re.fullmatch(r"bytes=(\d+)-(\d*)", header.strip())
    if m is None:
        return size
    start, end = int(m.group(1)), int(m.group(2) or size - 1)
    return max(0, min(end, size - 1) - start + 1)


def _column_bytes(path: Path, column: str) -> int:
    """The compressed bytes of one column's chunks in a parquet file, plus its footer."""
    import pyarrow.parquet as pq

    md = pq.ParquetFile(path).metadata
    total = md.serialized_size
    for i in range(md.num_row_groups):
        rg = md.row_group(i)
        for j in range(rg.num_columns):
            if rg.column(j).path_in_schema == column:
                total += rg.column(j).total_compressed_size
    return total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--shards", type=int, default=10)
    ap.add_argument("--bank", type=int, default=1_000_000)
    ap.add_argument("--planted", type=int, default=2_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--results", type=Path)
    args = ap.parse_args()

    from expunge.demo import synth

    work = Path(tempfile.mkdtemp(prefix="expunge-bench-remote-"))
    print(f"generating {args.rows:,} rows in {args.shards} shards in {work} ...", flush=True)
    info, ds = bench_urls._generate(work / "data", args.rows, args.shards, args.planted, args.seed)
    random = synth.random_digests(args.bank - args.planted, 16, seed=args.seed + 1)
    planted = bench_urls._digests_of([ds.listed[f].raw for f in ds.flagged])
    bank = synth.write_digest_list(work / "bank.txt", bench_urls._bank(random, planted, args.seed), "plain")
    server = S3Server(work)
    server.start()
    results: dict[str, Any] = {"rows": args.rows, "shards": args.shards, "bytes": info["bytes"]}
    try:
        client = server.client()
        client.create_bucket(Bucket=BUCKET)
        started = time.perf_counter()
        sizes: dict[str, int] = {}
        for p in sorted((work / "data").glob("*.parquet")):
            client.upload_file(str(p), BUCKET, f"data/{p.name}")
            sizes[p.name] = p.stat().st_size
        results["upload_seconds"] = time.perf_counter() - started
        env = _env(server, work / "cache")
        lst = f"{bank}:url_md5"
        w = ["--workers", str(args.workers), "-q"]
        print("local run ...", flush=True)
        local = _timed(
            _expunge(
                "clean",
                str(work / "data"),
                "--list",
                lst,
                "--store",
                str(work / "st"),
                "--out",
                str(work / "out"),
                *w,
            ),
            env,
        )
        print(f"  {local:.2f} s", flush=True)
        print("remote run (dataset, store and release on S3) ...", flush=True)
        remote = _timed(
            _expunge(
                "clean",
                f"s3://{BUCKET}/data",
                "--list",
                lst,
                "--store",
                f"s3://{BUCKET}/store",
                "--out",
                f"s3://{BUCKET}/out",
                *w,
            ),
            env,
        )
        print(f"  {remote:.2f} s", flush=True)
        same = all(
            client.get_object(Bucket=BUCKET, Key=f"out/{name}")["Body"].read()
            == (work / "out" / name).read_bytes()
            for name in sizes
        )
        # The index stage alone, recorded: what it reads of each remote shard.
        subprocess.run(
            _expunge("lists", "import", str(bank), "--signal", "url_md5", "--store", str(work / "st2")),
            check=True,
            capture_output=True,
            env=env,
        )
        with server.recording() as requests:
            index = _timed(_expunge("index", f"s3://{BUCKET}/data", "--store", str(work / "st2"), *w), env)
        read: dict[str, int] = dict.fromkeys(sizes, 0)
        gets = 0
        for r in requests:
            if r.method != "GET":
                continue
            name = r.url.split("?", 1)[0].rsplit("/", 1)[-1]
            if name in read:
                read[name] += _range_bytes(r.header("Range"), sizes[name])
                gets += 1
        share = [read[n] / sizes[n] for n in sizes]
        url_bytes = {n: _column_bytes(work / "data" / n, "URL") for n in sizes}
        over = [read[n] / url_bytes[n] for n in sizes]
        results.update(
            local_seconds=local,
            remote_seconds=remote,
            ratio=remote / local,
            byte_identical_shards=same,
            index_seconds=index,
            index_gets=gets,
            index_bytes_read=read,
            index_share_min=min(share),
            index_share_max=max(share),
            url_column_share=sum(url_bytes.values()) / sum(sizes.values()),
            index_read_over_url_column_min=min(over),
            index_read_over_url_column_max=max(over),
        )
    finally:
        server.stop()
    print(
        f"remote / local: {results['ratio']:.2f}x ({results['remote_seconds']:.2f} s / "
        f"{results['local_seconds']:.2f} s); shards byte-identical: {results['byte_identical_shards']}"
    )
    print(
        f"index stage on S3: {results['index_gets']} GETs; bytes read per shard / its size: "
        f"{results['index_share_min']:.1%} - {results['index_share_max']:.1%} (shard about "
        f"{sum(sizes.values()) / len(sizes) / 2**20:.1f} MiB)"
    )
    print(
        f"  the URL column's pages are {results['url_column_share']:.1%} of the shards; bytes read / URL "
        f"column bytes: {results['index_read_over_url_column_min']:.2f} - "
        f"{results['index_read_over_url_column_max']:.2f} (the rest: footer and Arrow's read-ahead)"
    )
    print(f"upload of the dataset to the server (setup, not timed): {results['upload_seconds']:.1f} s")
    if args.results:
        args.results.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
