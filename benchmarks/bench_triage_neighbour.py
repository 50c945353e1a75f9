"""Neighbour expansion benchmark: exact streaming search against the approximate IVF index.

Run by hand (it is not a test)::

    python benchmarks/bench_triage_neighbour.py [--rows 1000000 --dim 768 --seeds 1000
        --shard-rows 100000 --nprobe 1,4,16,64 --variants --crossover --json FILE]

What it measures, and why it is built this way:

* Data like LAION's: float16 ``.npy`` shards of ``--shard-rows`` rows written to a temp dir and read
  back memory-mapped. Rows are clustered like CLIP embeddings (random centres, each row a centre plus
  noise; unrelated rows rarely reach cosine 0.9), seeds are dataset rows (confirmed findings are), and
  each seed gets 20 planted near copies at cosines spread over ~0.85-0.99, so the top-k at
  ``min_cosine`` 0.9 is neither empty nor trivial.
* ``exact``: :func:`search_exact` (per-shard streaming + merge). ``approximate``: ``build_index``
  (train and add, timed separately) then ``search_index`` for each ``--nprobe``; recall is the share
  of the exact (seed, shard, row) pairs it found.
* ``--variants``: the same approximate build with float32 storage (``IndexIVFFlat``) and with a flat
  coarse quantizer, and a plain HNSW index, on the same data, to justify the choice in the module.
* ``--crossover ROWS,...``: exact and approximate (build + search) times for each data size and each
  of ``--crossover-seeds``, to choose ``EXACT_LIMIT``; the last ``--nprobe`` is used.
* Memory: the generator holds one shard in float32 at a time; the exact search holds one chunk; the
  approximate index holds every row in float16 (1.5 GB for 1M x 768). Peak RSS is reported.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from expunge.signals import neighbour as nb

PLANTED_PER_SEED = 20


def make(work: Path, n_rows: int, dim: int, n_seeds: int, shard_rows: int, seed: int = 0) -> np.ndarray:
    """Write the shards (float16 .npy) into ``work``; return the seeds (float32)."""
    rng = np.random.default_rng(seed)
    n_centres = max(1, min(1000, n_rows // 100))
    centres = rng.standard_normal((n_centres, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    seed_gid = np.sort(rng.choice(n_rows, size=n_seeds, replace=False))
    planted_gid = rng.choice(n_rows, size=min(n_rows - n_seeds, n_seeds * PLANTED_PER_SEED), replace=False)
    planted_gid = planted_gid[~np.isin(planted_gid, seed_gid)]
    planted_of = np.arange(planted_gid.size) % max(1, n_seeds)
    seeds = np.zeros((n_seeds, dim), np.float32)
    for i, start in enumerate(range(0, n_rows, shard_rows)):
        stop = min(start + shard_rows, n_rows)
        part = centres[rng.integers(0, n_centres, stop - start)]
        part += rng.standard_normal(part.shape, dtype=np.float32) * np.float32(1.2 / np.sqrt(dim))
        part /= np.linalg.norm(part, axis=1, keepdims=True)
        here = (seed_gid >= start) & (seed_gid < stop)
        seeds[here] = part[seed_gid[here] - start]
        np.save(work / f"img_emb_{i:04d}.npy", part.astype(np.float16))
    # Plant near copies of each seed: noise scale drawn so the cosines spread over ~0.85-0.99.
    for i, start in enumerate(range(0, n_rows, shard_rows)):
        stop = min(start + shard_rows, n_rows)
        idx = np.flatnonzero((planted_gid >= start) & (planted_gid < stop))
        if idx.size == 0:
            continue
        path = work / f"img_emb_{i:04d}.npy"
        part = np.load(path).astype(np.float32)
        scale = rng.uniform(0.15, 0.62, idx.size).astype(np.float32)[:, None]
        noise = rng.standard_normal((idx.size, dim), dtype=np.float32) / np.float32(np.sqrt(dim))
        near = seeds[planted_of[idx]] + scale * noise
        part[planted_gid[idx] - start] = near / np.linalg.norm(near, axis=1, keepdims=True)
        np.save(path, part.astype(np.float16))
    return seeds


def _shards(work: Path) -> list[np.ndarray]:
    return [np.load(p, mmap_mode="r") for p in sorted(work.glob("img_emb_*.npy"))]


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(
    n_rows: int,
    dim: int,
    n_seeds: int,
    *,
    shard_rows: int = 100_000,
    nprobes: tuple[int, ...] = (1, 4, 16, 64),
    k: int = 100,
    min_cosine: float = 0.9,
    variants: bool = False,
    workdir: Path | None = None,
) -> dict[str, Any]:
    """Exact and approximate neighbour search on generated data; times in seconds."""
    work = Path(tempfile.mkdtemp(prefix="expunge-bench-nb-", dir=workdir))
    try:
        t = time.perf_counter()
        seeds = make(work, n_rows, dim, n_seeds, shard_rows)
        out: dict[str, Any] = {
            "rows": n_rows,
            "dim": dim,
            "seeds": n_seeds,
            "shard_rows": shard_rows,
            "k": k,
            "min_cosine": min_cosine,
            "generate_s": round(time.perf_counter() - t, 2),
        }
        shards = _shards(work)
        params = nb.NeighbourParams(k=k, min_cosine=min_cosine)
        t = time.perf_counter()
        exact = nb.search_exact(seeds, shards, params)
        out["exact_s"] = round(time.perf_counter() - t, 2)
        out["exact_pairs"] = len(exact)
        out["exact_peak_rss_mb"] = round(_peak_mb())
        built = nb.build_index(shards)
        out["approx_train_s"] = round(built.build_seconds["train"], 2)
        out["approx_add_s"] = round(built.build_seconds["add"], 2)
        out["approx_nlist"] = int(built.index.nlist)
        out["approx"] = []
        for nprobe in nprobes:
            p = nb.NeighbourParams(k=k, min_cosine=min_cosine, nprobe=nprobe)
            t = time.perf_counter()
            approx = nb.search_index(built, seeds, shards, p)
            s = time.perf_counter() - t
            out["approx"].append(
                {"nprobe": nprobe, "search_s": round(s, 2), "recall": round(nb.recall(approx, exact), 4)}
            )
        out["approx_peak_rss_mb"] = round(_peak_mb())
        del built
        if variants:
            out["variants"] = _variants(shards, seeds, exact, params, nprobes)
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _variants(
    shards: list[np.ndarray],
    seeds: np.ndarray,
    exact: nb.Hits,
    params: nb.NeighbourParams,
    nprobes: tuple[int, ...],
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for storage, coarse in (("flat", "hnsw"), ("fp16", "flat")):
        built = nb.build_index(shards, storage=storage, coarse=coarse)
        for nprobe in nprobes:
            p = nb.NeighbourParams(k=params.k, min_cosine=params.min_cosine, nprobe=nprobe)
            t = time.perf_counter()
            approx = nb.search_index(built, seeds, shards, p)
            rows.append(
                {
                    "index": f"IVF storage={storage} coarse={coarse}",
                    "train_s": round(built.build_seconds["train"], 2),
                    "add_s": round(built.build_seconds["add"], 2),
                    "nprobe": nprobe,
                    "search_s": round(time.perf_counter() - t, 2),
                    "recall": round(nb.recall(approx, exact), 4),
                }
            )
        del built
    rows.extend(_hnsw(shards, seeds, exact, params))
    return rows


def _hnsw(
    shards: list[np.ndarray], seeds: np.ndarray, exact: nb.Hits, params: nb.NeighbourParams
) -> list[dict[str, Any]]:
    """A whole-dataset HNSW graph (M=32), for comparison only."""
    import faiss

    dim = int(shards[0].shape[1])
    offsets = np.cumsum([0] + [int(s.shape[0]) for s in shards])
    t = time.perf_counter()
    index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 40
    for emb in shards:
        for start in range(0, emb.shape[0], 65536):
            unit, _ = nb.normalise(np.asarray(emb[start : start + 65536]))
            index.add(unit)
    build = time.perf_counter() - t
    s_unit, _ = nb.normalise(seeds)
    rows = []
    for ef in (64, 256):
        index.hnsw.efSearch = ef
        t = time.perf_counter()
        dist, ids = index.search(s_unit, params.k)
        s = time.perf_counter() - t
        keep = (ids >= 0) & (dist >= params.min_cosine - 2e-3)
        si, col = np.nonzero(keep)
        gid = ids[si, col]
        shard = np.searchsorted(offsets, gid, side="right") - 1
        approx = nb.Hits(shard.astype(np.int32), gid - offsets[shard], si.astype(np.int32), dist[si, col])
        rows.append(
            {
                "index": "HNSW M=32 efConstruction=40",
                "build_s": round(build, 2),
                "efSearch": ef,
                "search_s": round(s, 2),
                "recall": round(nb.recall(approx, exact), 4),
            }
        )
    return rows


def crossover(
    rows_list: list[int], seeds_list: list[int], dim: int, shard_rows: int, nprobe: int
) -> list[dict[str, Any]]:
    """Exact against approximate (build + search) time for each rows x seeds; one data set per rows.

    The index build does not depend on the seeds, so it is timed once per data set and each seed count
    (a prefix of the seeds) is searched both ways.
    """
    out = []
    for n_rows in rows_list:
        work = Path(tempfile.mkdtemp(prefix="expunge-bench-nb-"))
        try:
            all_seeds = make(work, n_rows, dim, max(seeds_list), shard_rows)
            shards = _shards(work)
            built = nb.build_index(shards)
            build_s = built.build_seconds["train"] + built.build_seconds["add"]
            for n_seeds in seeds_list:
                seeds = all_seeds[:n_seeds]
                params = nb.NeighbourParams(nprobe=nprobe)
                t = time.perf_counter()
                exact = nb.search_exact(seeds, shards, params)
                exact_s = time.perf_counter() - t
                t = time.perf_counter()
                approx = nb.search_index(built, seeds, shards, params)
                search_s = time.perf_counter() - t
                out.append(
                    {
                        "rows": n_rows,
                        "seeds": n_seeds,
                        "rows_x_seeds": n_rows * n_seeds,
                        "exact_s": round(exact_s, 2),
                        "approx_build_s": round(build_s, 2),
                        "approx_search_s": round(search_s, 2),
                        "approx_total_s": round(build_s + search_s, 2),
                        "recall": round(nb.recall(approx, exact), 4),
                    }
                )
                print(json.dumps(out[-1]), flush=True)
            del built
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=768)
    p.add_argument("--seeds", type=int, default=1_000)
    p.add_argument("--shard-rows", type=int, default=100_000)
    p.add_argument("--nprobe", default="1,4,16,64", help="comma-separated nprobe values to search with")
    p.add_argument("--variants", action="store_true", help="also IVFFlat, flat coarse quantizer, HNSW")
    p.add_argument(
        "--crossover", default="", help="ROWS,ROWS,...: data sizes for the exact/approximate crossover"
    )
    p.add_argument("--crossover-seeds", default="100,300,1000,3000", help="seed counts searched at each size")
    p.add_argument("--workdir", type=Path, default=None)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    nprobes = tuple(int(x) for x in args.nprobe.split(","))
    if args.crossover:
        rows_list = [int(v) for v in args.crossover.split(",")]
        seeds_list = [int(v) for v in args.crossover_seeds.split(",")]
        result: Any = crossover(rows_list, seeds_list, args.dim, args.shard_rows, nprobes[-1])
    else:
        result = run(
            args.rows,
            args.dim,
            args.seeds,
            shard_rows=args.shard_rows,
            nprobes=nprobes,
            variants=args.variants,
            workdir=args.workdir,
        )
        print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
