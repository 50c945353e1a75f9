"""Nearest neighbours of confirmed findings ("seeds") in CLIP space: the ``neighbour`` soft signal.

The Stanford Internet Observatory expanded 27 confirmed hits in LAION into 2,773 candidates by k-NN on
CLIP embeddings. Here a row's ``neighbour`` value is its cosine to the nearest seed among the hits kept:
each seed keeps its top ``k`` rows with cosine >= ``min_cosine``.

Exact search streams: one shard at a time, ``chunk_rows`` rows at a time, read through a read-only
memory map, so memory is bounded by one chunk (and one block of scores) whatever the dataset size, and
each shard is an independent task (:func:`search_shard`) whose partial top-k lists :func:`merge` turns
into the global top-k. Scores are a numpy/BLAS matmul: per 65,536 x 768 chunk and 1,000 seeds it took
0.90 s against 0.71 s for faiss ``IndexFlatIP`` add + search (k=100) and 1.24 s for its range search;
the faiss k-NN is a little faster but returns exactly k per seed, picking arbitrarily among ties at the
boundary, which would make the result depend on chunking. numpy keeps the threshold and the ties in our
hands.

Determinism: BLAS sums in an order that can depend on the matrix shape, so a score may differ in its
last bit between chunk sizes. Candidates are therefore selected from the BLAS scores with a slack
(a bound on float32 dot-product error), and the cosine of every candidate is recomputed one pair at a
time in float64 from the float32 unit vectors, then rounded to float32; thresholds and top-k use that
value only, with ties broken by (shard, row). The same recomputation serves the approximate path, so
a pair found by both paths has the same cosine.

Zero vectors and rows holding NaN or inf are never neighbours (nor seeds); they are counted in
``Hits.invalid_rows`` / ``Hits.invalid_seeds``, never a crash.

Approximate search (rows x seeds > ``exact_limit``): a faiss inverted-file index over every valid row,
inner product on unit vectors, vectors stored as float16 (``IndexIVFScalarQuantizer``, ``QT_fp16``: half
the memory of ``IndexIVFFlat``, 1.5 GB for 1M x 768; the cosines of what it returns are recomputed
exactly), ``nlist = sqrt(N)`` lists trained on a fixed-seed sample with a flat coarse quantizer.

Measurements (``benchmarks/bench_triage_neighbour.py``, 768-d float16, clustered rows with planted
near copies, k=100, min_cosine 0.9; this 2-core machine, shared, so +-20 %):

* 1M rows (10 shards of 100k), 1,000 seeds: exact 25.8 s; approximate build 33.6 s (train 7.2, add
  26.4), search 0.45 / 1.2 / 1.9 / 3.2 / 6.3 s at nprobe 1 / 4 / 8 / 16 / 32, recall 0.998 / 1.0 /
  1.0 / 1.0 / 1.0. Peak RSS 3.7 GB with the index.
* Crossover at 1M rows (nprobe 16, build once, each seed count searched both ways): 1,000 seeds exact
  29.3 s vs approximate 29.5 s; 2,000: 57.9 vs 33.9; 3,000: 73.3 vs 37.1. At 300k rows: 1,000 seeds
  8.3 vs 13.3; 3,000: 23.3 vs 18.2 (crossover ~2,000 seeds, 6e8). At 100k rows exact wins up to 1,000
  seeds (3.2 vs 5.5 s).
* Building the index costs about as much as an exact search with nlist seeds (each row is scored
  against every list centre), so the crossover is at seeds ~ 1-2 x sqrt(rows): rows x seeds grows like
  rows^1.5, and no single product fits every size. ``EXACT_LIMIT`` = 1e9 is the measured crossover at
  1M rows (a LAION-sized run); smaller datasets then stay exact a little past their own crossover,
  which costs at most ~25 % time and gives recall 1.0.
* The index must fit in memory and exact search streams, so above ``INDEX_BYTES_LIMIT`` of float16
  vectors (~2.8M rows at 768-d) :func:`search` stays exact whatever ``exact_limit`` says; by the
  scaling above, exact is also the faster there for up to a few thousand seeds.
* ``NPROBE`` = 16: recall reached 1.0 at nprobe 4 on this data; real CLIP data is less kind than
  planted copies, and 16 costs ~10 % of the build.
* Rejected: an HNSW coarse quantizer (assigning 65,536 rows to 1,000 centres: flat 1.6 s, HNSW
  efSearch 16 / 64: 6.6 / 13.2 s); a whole-dataset HNSW graph (200k rows: build 140 s against 14 s for
  the IVF, recall 0.95 / 0.98 at efSearch 64 / 256 against 1.0); float32 IVF storage (twice the
  memory, same recall).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from expunge.errors import ExpungeError
from expunge.signals.base import ValueSignal

# Chosen by measurement; see the module docstring and benchmarks/bench_triage_neighbour.py.
EXACT_LIMIT = 1_000_000_000
NPROBE = 16

# Above this many bytes of float16 vectors the approximate index is not built (see the docstring).
INDEX_BYTES_LIMIT = 4 << 30

# Scores are computed for at most this many (seed, row) pairs at once: 16M float32 = 64 MB.
_MAX_SCORE_BLOCK = 1 << 24
# A squared norm at or below this is treated as a zero vector: 1/norm must stay finite in float32.
_TINY_NORM2 = 1e-30
# k-means for the coarse lists: faiss warns below 39 points per list; 10 iterations (faiss: 25) because
# list quality barely moves recall at nprobe >= 4 and training is a large share of the build.
_TRAIN_PER_LIST = 40
_TRAIN_ITERATIONS = 10
_FAISS_MISSING = "neighbour expansion needs faiss: pip install 'expunge[triage]'"


@dataclass(frozen=True)
class NeighbourParams:
    """How far to expand: per seed its ``k`` nearest rows whose cosine is at least ``min_cosine``."""

    k: int = 100  # neighbours per seed
    min_cosine: float = 0.9
    exact_limit: int = EXACT_LIMIT  # dataset rows x seeds up to which exact search is used
    nprobe: int = NPROBE

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise ExpungeError("neighbour k must be a whole number of at least 1")
        if not isinstance(self.min_cosine, (int, float)) or not -1.0 <= float(self.min_cosine) <= 1.0:
            raise ExpungeError("neighbour min_cosine must be a number between -1 and 1")
        if (
            isinstance(self.exact_limit, bool)
            or not isinstance(self.exact_limit, int)
            or self.exact_limit < 0
        ):
            raise ExpungeError("neighbour exact_limit must be a whole number of at least 0")
        if isinstance(self.nprobe, bool) or not isinstance(self.nprobe, int) or self.nprobe < 1:
            raise ExpungeError("neighbour nprobe must be a whole number of at least 1")


@dataclass(frozen=True, eq=False)
class Hits:
    """One line per (row, seed) pair kept, sorted by seed, then cosine descending, then shard, row."""

    shard: np.ndarray  # int32 index into the shard list given
    row: np.ndarray  # int64
    seed: np.ndarray  # int32 index into the seeds matrix
    cosine: np.ndarray  # float32
    invalid_rows: int = 0  # dataset rows that were zero, NaN or inf: never neighbours
    invalid_seeds: int = 0  # seeds that were zero, NaN or inf: they find nothing

    def __len__(self) -> int:
        return int(self.row.shape[0])


@dataclass
class ApproximateIndex:
    """A faiss IVF index over every valid row of a dataset; ids are global row numbers."""

    index: Any  # faiss.Index
    offsets: np.ndarray  # int64, len(shards) + 1: global id of each shard's first row
    dim: int
    invalid_rows: int
    build_seconds: dict[str, float] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------
# Vectors


def normalise(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(float32 unit vectors, valid mask). Invalid rows (zero, NaN, inf) come back as zeros.

    Each row is normalised on its own, so a row's unit vector is the same whatever batch it is in.
    """
    if vectors.ndim != 2:
        raise ValueError("vectors must be 2-D (rows, dim)")
    unit = np.array(vectors, dtype=np.float32, copy=True, order="C")
    return unit, _normalise_inplace(unit)


def _normalise_inplace(unit: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        norm2 = np.einsum("ij,ij->i", unit, unit)
    valid: np.ndarray = np.isfinite(norm2) & (norm2 > _TINY_NORM2)
    if not valid.all():
        unit[~valid] = 0.0  # NaN * 0 is NaN: overwrite before scaling
    inv = np.zeros(norm2.shape, dtype=np.float32)
    inv[valid] = 1.0 / np.sqrt(norm2[valid])
    unit *= inv[:, None]
    return valid


def _slack(dim: int) -> float:
    """A bound on |float32 BLAS dot - exact dot| for unit vectors of this dimension (~ dim * eps32)."""
    return 2.0 * dim * 2.0**-24 + 1e-6


def _exact_cosine(rows: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """Pairwise cosine of matching lines of two float32 unit-vector arrays, in float64, as float32."""
    if rows.shape[0] == 0:
        return np.zeros(0, dtype=np.float32)
    cos: np.ndarray = np.einsum("ij,ij->i", rows.astype(np.float64), seeds.astype(np.float64))
    out: np.ndarray = np.clip(cos, -1.0, 1.0).astype(np.float32)
    return out


def _check_dim(seeds: np.ndarray, embeddings: np.ndarray, shard: int | None) -> None:
    where = f"shard {shard}" if shard is not None else None
    path = getattr(embeddings, "filename", None)
    if embeddings.ndim != 2:
        raise ExpungeError(
            f"embeddings must be 2-D (rows, dim); they have {embeddings.ndim} dimensions", path, where
        )
    if embeddings.shape[1] != seeds.shape[1]:
        raise ExpungeError(
            f"embeddings have dimension {embeddings.shape[1]} but the seeds have {seeds.shape[1]}",
            path,
            where,
        )


def _check_seeds(seeds: np.ndarray) -> None:
    if seeds.ndim != 2:
        raise ExpungeError(f"seeds must be 2-D (seeds, dim); they have {seeds.ndim} dimensions")


# ---------------------------------------------------------------------------------------------------
# Top-k bookkeeping


def _top_k(
    seed: np.ndarray, cos: np.ndarray, shard: np.ndarray, row: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Keep each seed's k best pairs; sorted by seed, cosine descending, shard, row."""
    order = np.lexsort((row, shard, -cos, seed))
    seed, cos, shard, row = seed[order], cos[order], shard[order], row[order]
    n = seed.shape[0]
    if n:
        starts = np.flatnonzero(np.r_[True, seed[1:] != seed[:-1]])
        counts = np.diff(np.r_[starts, n])
        rank = np.arange(n) - np.repeat(starts, counts)
        keep = rank < k
        seed, cos, shard, row = seed[keep], cos[keep], shard[keep], row[keep]
    return seed, cos, shard, row


def _empty_parts() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32)


# ---------------------------------------------------------------------------------------------------
# Exact search


def search_shard(
    seeds: np.ndarray, embeddings: np.ndarray, k: int, min_cosine: float, chunk_rows: int = 65536
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact search of one shard: (row, seed, cosine) of each seed's top-k rows with cosine >= min_cosine.

    ``embeddings`` may be a float16 memmap; it is read ``chunk_rows`` rows at a time.
    """
    row, seed, cos, _ = search_shard_counted(seeds, embeddings, k, min_cosine, chunk_rows)
    return row, seed, cos


def search_shard_counted(
    seeds: np.ndarray,
    embeddings: np.ndarray,
    k: int,
    min_cosine: float,
    chunk_rows: int = 65536,
    *,
    shard: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """:func:`search_shard` plus the number of rows that were zero, NaN or inf (never neighbours).

    ``shard`` only names the shard in errors.
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be at least 1")
    _check_seeds(seeds)
    _check_dim(seeds, embeddings, shard)
    seed_unit, seed_valid = normalise(seeds)
    seed_ids = np.flatnonzero(seed_valid).astype(np.int32)
    seed_unit = seed_unit[seed_ids]
    n_rows, dim = embeddings.shape
    threshold = np.float32(min_cosine)
    low = np.float32(float(threshold) - _slack(dim))
    slack = np.float32(_slack(dim))
    seed_block = max(1, _MAX_SCORE_BLOCK // max(1, min(chunk_rows, n_rows)))

    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    held = 0
    invalid = 0
    for start in range(0, n_rows, chunk_rows):
        stop = min(start + chunk_rows, n_rows)
        unit = np.array(embeddings[start:stop], dtype=np.float32, copy=True, order="C")
        valid = _normalise_inplace(unit)
        n_invalid = int(unit.shape[0] - np.count_nonzero(valid))
        invalid += n_invalid
        if seed_ids.size == 0:
            continue
        width = stop - start
        for s0 in range(0, seed_ids.size, seed_block):
            block = seed_unit[s0 : s0 + seed_block]
            scores = block @ unit.T  # (seeds, rows)
            if n_invalid:
                scores[:, ~valid] = -np.inf
            best = scores.max(axis=1)
            live = np.flatnonzero(best >= low)
            if live.size == 0:
                continue
            sub = scores[live]
            mask = sub >= low
            counts = np.count_nonzero(mask, axis=1)
            heavy = np.flatnonzero(counts > k)
            if heavy.size:
                # Only candidates within the slack of each heavy seed's k-th best score can be its top-k.
                kth = np.partition(sub[heavy], width - k, axis=1)[:, width - k]
                mask[heavy] &= sub[heavy] >= (kth - slack)[:, None]
            si, ri = np.nonzero(mask)
            local_seed = live[si] + s0
            cos = _exact_cosine(unit[ri], seed_unit[local_seed])
            ok = cos >= threshold
            found.append(((ri[ok] + start).astype(np.int64), seed_ids[local_seed[ok]], cos[ok]))
            held += int(np.count_nonzero(ok))
        if held > 4 * k * seed_ids.size:
            found = [_reduce_shard(found, k)]
            held = found[0][0].shape[0]
    if not found:
        row, seed, cos = _empty_parts()
        return row, seed, cos, invalid
    row, seed, cos = _reduce_shard(found, k)
    return row, seed, cos, invalid


def _reduce_shard(
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]], k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    row = np.concatenate([f[0] for f in found])
    seed = np.concatenate([f[1] for f in found])
    cos = np.concatenate([f[2] for f in found])
    seed, cos, _, row = _top_k(seed, cos, np.zeros(row.shape[0], np.int32), row, k)
    return row, seed, cos


def merge(
    parts: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]],
    k: int,
    *,
    invalid_rows: int = 0,
    invalid_seeds: int = 0,
) -> Hits:
    """Global top-k per seed from per-shard results ``(shard_index, row, seed, cosine)``.

    Ties are broken by (shard, row), so the result does not depend on the order of ``parts``.
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    shard_ids = [int(p[0]) for p in parts]
    if len(set(shard_ids)) != len(shard_ids):
        raise ValueError("merge: a shard index appears in more than one part")
    if not parts:
        return Hits(
            np.zeros(0, np.int32),
            np.zeros(0, np.int64),
            np.zeros(0, np.int32),
            np.zeros(0, np.float32),
            invalid_rows,
            invalid_seeds,
        )
    row = np.concatenate([np.asarray(p[1], dtype=np.int64) for p in parts])
    seed = np.concatenate([np.asarray(p[2], dtype=np.int32) for p in parts])
    cos = np.concatenate([np.asarray(p[3], dtype=np.float32) for p in parts])
    shard = np.concatenate([np.full(len(p[1]), p[0], dtype=np.int32) for p in parts])
    seed, cos, shard, row = _top_k(seed, cos, shard, row, k)
    return Hits(shard, row, seed, cos, invalid_rows, invalid_seeds)


def search(seeds: np.ndarray, shards: list[np.ndarray], params: NeighbourParams) -> Hits:
    """Whole dataset: exact when rows x seeds <= ``params.exact_limit``, else approximate.

    Exact also when the approximate index would not fit in memory (``INDEX_BYTES_LIMIT``).
    """
    _check_seeds(seeds)
    for i, emb in enumerate(shards):
        _check_dim(seeds, emb, i)
    total = sum(int(emb.shape[0]) for emb in shards)
    fits = total * seeds.shape[1] * 2 <= INDEX_BYTES_LIMIT
    if total * seeds.shape[0] > params.exact_limit and fits:
        return search_approximate(seeds, shards, params)
    return search_exact(seeds, shards, params)


def search_exact(seeds: np.ndarray, shards: list[np.ndarray], params: NeighbourParams) -> Hits:
    """Exact search of every shard in turn, then :func:`merge`."""
    _check_seeds(seeds)
    parts: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []
    invalid = 0
    for i, emb in enumerate(shards):
        row, seed, cos, bad = search_shard_counted(seeds, emb, params.k, params.min_cosine, shard=i)
        parts.append((i, row, seed, cos))
        invalid += bad
    return merge(parts, params.k, invalid_rows=invalid, invalid_seeds=_invalid_seeds(seeds))


def _invalid_seeds(seeds: np.ndarray) -> int:
    return int(seeds.shape[0] - np.count_nonzero(normalise(seeds)[1]))


# ---------------------------------------------------------------------------------------------------
# Approximate search


def _faiss() -> Any:
    try:
        import faiss
    except ImportError:
        raise ExpungeError(_FAISS_MISSING) from None
    return faiss


def build_index(
    shards: list[np.ndarray],
    chunk_rows: int = 65536,
    nlist: int | None = None,
    *,
    storage: str = "fp16",
    coarse: str = "flat",
) -> ApproximateIndex:
    """An IVF index (inner product, float16 storage, flat coarse quantizer) over every valid row."""
    import time

    faiss = _faiss()
    if not shards:
        raise ValueError("build_index needs at least one shard")
    dim = int(shards[0].shape[1])
    for i, emb in enumerate(shards):
        if emb.ndim != 2 or emb.shape[1] != dim:
            raise ExpungeError(
                f"embeddings have dimension {emb.shape[-1]} but shard 0 has {dim}",
                getattr(emb, "filename", None),
                f"shard {i}",
            )
    offsets = np.zeros(len(shards) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([int(emb.shape[0]) for emb in shards])
    total = int(offsets[-1])
    lists = nlist if nlist is not None else max(1, round(math.sqrt(total)))
    lists = max(1, min(lists, total))

    t0 = time.perf_counter()
    # Training sample: fixed seed, so the same data always gives the same index.
    rng = np.random.default_rng(0)
    n_train = min(total, max(lists * _TRAIN_PER_LIST, 10_000))
    picks = np.sort(rng.choice(total, size=n_train, replace=False)) if total else np.zeros(0, np.int64)
    sample = (
        np.concatenate(
            [
                _rows_unit(shards[i], picks[(picks >= offsets[i]) & (picks < offsets[i + 1])] - offsets[i])[0]
                for i in range(len(shards))
            ]
        )
        if total
        else np.zeros((0, dim), np.float32)
    )
    sample = sample[np.any(sample != 0, axis=1)]
    lists = max(1, min(lists, sample.shape[0] // 39))  # faiss wants >= 39 training points per list
    if coarse == "hnsw":  # measured slower than flat for ~1,000 lists: kept for the benchmark
        quantizer = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        quantizer.hnsw.efSearch = 64
    else:
        quantizer = faiss.IndexFlatIP(dim)
    if storage == "flat":  # float32 vectors: twice the memory; kept for the benchmark's comparison
        index = faiss.IndexIVFFlat(quantizer, dim, lists, faiss.METRIC_INNER_PRODUCT)
    else:
        index = faiss.IndexIVFScalarQuantizer(
            quantizer, dim, lists, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
        )
    index.cp.seed = 1234
    index.cp.niter = _TRAIN_ITERATIONS
    if coarse == "hnsw":
        index.clustering_index = faiss.IndexFlatIP(dim)  # k-means itself stays brute force
    if sample.shape[0]:
        index.train(sample)
    del sample
    t1 = time.perf_counter()
    invalid = 0
    for i, emb in enumerate(shards):
        for start in range(0, int(emb.shape[0]), chunk_rows):
            stop = min(start + chunk_rows, int(emb.shape[0]))
            unit = np.array(emb[start:stop], dtype=np.float32, copy=True, order="C")
            valid = _normalise_inplace(unit)
            invalid += int(valid.shape[0] - np.count_nonzero(valid))
            ids = np.flatnonzero(valid).astype(np.int64)
            if ids.size and index.is_trained:
                index.add_with_ids(np.ascontiguousarray(unit[ids]), ids + offsets[i] + start)
    t2 = time.perf_counter()
    return ApproximateIndex(index, offsets, dim, invalid, {"train": t1 - t0, "add": t2 - t1})


def _rows_unit(emb: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors of some rows (sorted, unique) of one shard, read from its memmap."""
    return normalise(np.asarray(emb[rows]).reshape(len(rows), emb.shape[1]))


def search_index(
    built: ApproximateIndex, seeds: np.ndarray, shards: list[np.ndarray], params: NeighbourParams
) -> Hits:
    """Query a built index; cosines of the pairs it returns are recomputed exactly from ``shards``."""
    _check_seeds(seeds)
    if seeds.shape[1] != built.dim:
        raise ExpungeError(f"seeds have dimension {seeds.shape[1]} but the embeddings have {built.dim}")
    seed_unit, seed_valid = normalise(seeds)
    seed_ids = np.flatnonzero(seed_valid).astype(np.int32)
    invalid_seeds = int(seeds.shape[0] - seed_ids.size)
    empty = merge([], params.k, invalid_rows=built.invalid_rows, invalid_seeds=invalid_seeds)
    if seed_ids.size == 0 or built.index.ntotal == 0:
        return empty
    built.index.nprobe = min(params.nprobe, built.index.nlist)
    quantizer = _faiss().downcast_index(built.index.quantizer)
    if hasattr(quantizer, "hnsw"):
        quantizer.hnsw.efSearch = max(64, 2 * built.index.nprobe)
    k = min(params.k, int(built.index.ntotal))
    dist, ids = built.index.search(seed_unit[seed_ids], k)
    low = float(np.float32(params.min_cosine)) - _slack(built.dim) - 2e-3  # fp16 storage rounding
    keep = (ids >= 0) & (dist >= low)
    si, col = np.nonzero(keep)
    gid = ids[si, col]
    shard = (np.searchsorted(built.offsets, gid, side="right") - 1).astype(np.int32)
    row = gid - built.offsets[shard]
    seed = seed_ids[si]
    cos = np.zeros(gid.shape[0], dtype=np.float32)
    for i in np.unique(shard):
        at = np.flatnonzero(shard == i)
        rows, inverse = np.unique(row[at], return_inverse=True)
        unit, _ = _rows_unit(shards[int(i)], rows)
        cos[at] = _exact_cosine(unit[inverse], seed_unit[seed[at]])
    ok = cos >= np.float32(params.min_cosine)
    seed2, cos2, shard2, row2 = _top_k(seed[ok], cos[ok], shard[ok], row[ok], params.k)
    return Hits(shard2, row2, seed2, cos2, built.invalid_rows, invalid_seeds)


def search_approximate(seeds: np.ndarray, shards: list[np.ndarray], params: NeighbourParams) -> Hits:
    """Build an approximate index over every row and query it (see :func:`build_index`)."""
    _check_seeds(seeds)
    for i, emb in enumerate(shards):
        _check_dim(seeds, emb, i)
    if not shards or sum(int(e.shape[0]) for e in shards) == 0:
        return merge([], params.k, invalid_seeds=_invalid_seeds(seeds))
    return search_index(build_index(shards), seeds, shards, params)


# ---------------------------------------------------------------------------------------------------
# Consumers


def recall(approx: Hits, exact: Hits) -> float:
    """Share of the exact (seed, shard, row) pairs that the approximate search found; 1.0 if none."""
    if len(exact) == 0:
        return 1.0
    want = set(zip(exact.seed.tolist(), exact.shard.tolist(), exact.row.tolist(), strict=True))
    got = set(zip(approx.seed.tolist(), approx.shard.tolist(), approx.row.tolist(), strict=True))
    return len(want & got) / len(want)


def max_cosine_per_row(hits: Hits, shard: int, n_rows: int) -> np.ndarray:
    """float64 per row of one shard: the highest cosine to any seed among ``hits``, -inf where none."""
    out = np.full(n_rows, -np.inf, dtype=np.float64)
    at = hits.shard == shard
    rows = hits.row[at]
    if rows.size and (rows.min() < 0 or rows.max() >= n_rows):
        raise ExpungeError(
            f"neighbour hits name a row beyond the shard's {n_rows} rows", None, f"shard {shard}"
        )
    np.maximum.at(out, rows, hits.cosine[at].astype(np.float64))
    return out


@dataclass(frozen=True)
class NeighbourSignal(ValueSignal):
    """``neighbour``: the cosine to the nearest seed. Seeds can be in any shard, so the search runs over
    the whole dataset at once (``expunge.stages.triage.neighbours``), not shard by shard."""


NEIGHBOUR = NeighbourSignal("neighbour", low=-1.0, high=1.0, scope="dataset")
