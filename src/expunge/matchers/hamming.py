"""Exact Hamming-radius matching of 256-bit perceptual hashes (PDQ) by multi-index hashing.

``HammingIndex.search`` returns every pair ``(query, bank entry)`` within a Hamming distance ``t``:
no misses, no extras, for any ``t`` from 0 to 256.

Why the lookup cannot miss a match (the pigeonhole argument)
------------------------------------------------------------
The 256 bits are cut into ``k`` disjoint chunks of ``b_c`` bits (for a million hashes, thirteen chunks
of 19 or 20 bits). The distance of a pair is the sum of its per-chunk distances,
``d = d_1 + ... + d_k``. Give chunk ``c`` a search radius ``r_c >= -1`` (``-1``: not searched) with
``sum(r_c + 1) >= t + 1``. A pair with ``d_c >= r_c + 1`` in *every* chunk would have
``d >= sum(r_c + 1) > t``; so every pair with ``d <= t`` has some chunk with ``d_c <= r_c``, and
looking up, in every chunk, each key within radius ``r_c`` of the query's key reaches it. With
``t = k*r + a`` (``0 <= a < k``) the classic choice is ``a + 1`` chunks at radius ``r`` and the other
``k - a - 1`` at ``r - 1``, which sums to exactly ``t + 1`` (sixteen 16-bit chunks, ``t = 31``: radius 1
everywhere, as faiss's ``IndexBinaryMultiHash`` with ``nflip = t // 16`` does). Here the radii are
chosen per search by a small dynamic programme that minimises a cost model under that same
constraint, so wider chunks get the larger radii. Every candidate is then verified on its full 256
bits with a vectorised popcount, which removes every extra; a pair reached through several chunks is
reported once. When the model says the lookups would cost more than comparing with the whole bank
(large thresholds, tiny banks), the search uses blocked brute force, which is exact by definition.

Why it is laid out this way
---------------------------
* Each chunk has a direct-addressed bucket table (``2**b + 1`` offsets into that chunk's ``order``,
  the bank indices sorted by chunk value), so a probe is two adjacent gathers, not a binary search.
* The chunk width grows with the bank (about ``log2(n)`` bits, so buckets hold about one entry):
  fewer candidates per probe at the price of more probes; the layout is the one the cost model
  prefers for PDQ's usual threshold of 31, capped so the tables stay about the size of the bank.
* All work is numpy over batches of queries: probes are ``keys[:, None] ^ flips``, the ragged bucket
  ranges are expanded with ``repeat`` + ``arange``, candidates are verified with ``np.bitwise_count``
  on ``uint64`` words. Candidates are processed in slices of about 65k (whole queries, so a slice
  can be larger only when one query alone reaches more, at most the bank size: a bank full of
  copies of one hash), so memory does not grow with the number of queries. numpy releases the GIL
  in these loops, so query batches run on threads.
* The bank is held once as ``(n, 4) uint64``; each chunk adds ``n`` ``int32`` indices and its table.
  For a million hashes: 32 MB + 13 * 4 MB + 44 MB of tables ≈ 128 MB.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from typing import Literal

import numpy as np

from expunge.matchers import probe_plan
from expunge.matchers.probe_plan import HASH_BITS, HASH_BYTES, PDQ_THRESHOLD

_WORDS = HASH_BYTES // 8

# Work sizes. Small slices keep each pass's arrays in L2 cache, which is as fast as large ones and
# keeps a search's extra memory to ~10-20 MB a thread (measured: peak RSS +20 MB for 100k queries).
_QUERY_BATCH = 2048  # queries per task
_PROBE_CAP = 1 << 18  # probes built at once (~10 MB; bounds memory for very large radii)
_SLICE = 1 << 16  # candidates verified at once (~6 MB of temporaries)
_BRUTE_QUERIES, _BRUTE_BANK = 64, 4096  # brute-force block: 256k pairs, temporaries in L2
_POS32_LIMIT = 2**31  # candidate positions are int32 below this (a module constant so tests can lower it)

Method = Literal["auto", "index", "brute"]


def as_words(values: np.ndarray) -> np.ndarray:
    """Hashes as a C-contiguous ``(n, 4) uint64`` array (a view when the input allows it).

    Accepts ``(n, 32) uint8`` or ``(n,)`` fixed-width ``S32`` / ``V32``. The grouping of bits into words
    does not matter: a Hamming distance counts differing bits however they are grouped.
    """
    arr = np.asarray(values)
    if arr.dtype.kind in "SV" and arr.ndim == 1:
        if arr.dtype.itemsize != HASH_BYTES:
            raise ValueError(f"expected {HASH_BYTES}-byte hashes, got dtype {arr.dtype}")
        raw = np.ascontiguousarray(arr).view(np.uint8).reshape(len(arr), HASH_BYTES)
    elif arr.dtype == np.uint8 and arr.ndim == 2:
        if arr.shape[1] != HASH_BYTES:
            raise ValueError(f"expected shape (n, {HASH_BYTES}), got {arr.shape}")
        raw = np.ascontiguousarray(arr)
    else:
        raise TypeError(
            f"hashes must be (n, {HASH_BYTES}) uint8 or (n,) S{HASH_BYTES}/V{HASH_BYTES}; "
            f"got dtype {arr.dtype} with shape {arr.shape}"
        )
    if raw.shape[0] == 0:
        return np.empty((0, _WORDS), dtype=np.uint64)
    return raw.view(np.uint64)


def hamming_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """All-pairs Hamming distances, ``int16`` of shape ``(len(a), len(b))``: the brute-force reference.

    Deliberately plain (one XOR and popcount per word over the full broadcast), and about 11 bytes
    per pair while it runs: meant for small inputs and for tests.
    """
    qa, qb = as_words(a), as_words(b)
    out = np.zeros((len(qa), len(qb)), dtype=np.int16)
    for w in range(_WORDS):
        out += np.bitwise_count(np.bitwise_xor(qa[:, w, None], qb[None, :, w]))
    return out


def _block_distances(q: np.ndarray, bt: np.ndarray) -> np.ndarray:
    """Distances ``(len(q), nb) int16`` of ``(m, 4) uint64`` queries to a transposed ``(4, nb)`` block.

    Word-major bank rows make every pass contiguous; counts of three words fit in ``uint8`` (at most
    192), so only the last addition is widened. With blocks of ~256k pairs the temporaries stay in
    L2 cache: about 2 ns a pair.
    """
    shape = (len(q), bt.shape[1])
    tmp = np.empty(shape, dtype=np.uint64)
    acc = np.empty(shape, dtype=np.uint8)
    cnt = np.empty(shape, dtype=np.uint8)
    np.bitwise_xor(q[:, 0, None], bt[0][None, :], out=tmp)
    np.bitwise_count(tmp, out=acc)
    for w in range(1, _WORDS - 1):
        np.bitwise_xor(q[:, w, None], bt[w][None, :], out=tmp)
        np.bitwise_count(tmp, out=cnt)
        acc += cnt
    np.bitwise_xor(q[:, _WORDS - 1, None], bt[_WORDS - 1][None, :], out=tmp)
    np.bitwise_count(tmp, out=cnt)
    out = acc.astype(np.int16)
    out += cnt
    return out


def _row_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact row-wise distances of two ``(m, 4) uint64`` arrays, ``int16``."""
    pc = np.bitwise_count(np.bitwise_xor(a, b)).astype(np.int16)
    d: np.ndarray = pc.sum(axis=1, dtype=np.int16)
    return d


def _row_distances_mod256(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise distances modulo 256, ``uint32``: the fast filter.

    The four per-word counts (uint8, each <= 64) are summed in one multiply of their ``uint32`` view:
    ``v * 0x01010101`` holds ``c0 + c1 + c2 + c3`` in its top byte, with no carries from the lower
    bytes (their partial sums are at most 192). The only wrap is a distance of 256, which reads 0; the
    caller re-checks the few rows that pass with ``_row_distances``.
    """
    x = np.bitwise_xor(a, b, out=a)
    pc = np.bitwise_count(x)  # uint8, (m, 4), C-contiguous
    v = pc.view(np.uint32).reshape(len(pc))
    v *= np.uint32(0x01010101)
    v >>= np.uint32(24)
    out: np.ndarray = v
    return out


def _stable_argsort(keys: np.ndarray, bits: int) -> np.ndarray:
    """Stable argsort of non-negative ``bits``-bit keys: bank indices ascend within a bucket.

    numpy radix-sorts 16-bit keys in linear time (its stable sort of wider keys is a merge sort), so
    wider keys are sorted as two 16-bit digits, least significant first.
    """
    if bits <= 16:
        return np.argsort(keys.astype(np.uint16), kind="stable")
    low = np.argsort((keys & 0xFFFF).astype(np.uint16), kind="stable")
    high = np.argsort((keys[low] >> 16).astype(np.uint16), kind="stable")
    out: np.ndarray = low[high]
    return out


def _default_workers() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 8))


Triple = tuple[np.ndarray, np.ndarray, np.ndarray]


def _empty() -> Triple:
    return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int16)


class HammingIndex:
    """All pairs within a Hamming threshold between query hashes and a bank of 256-bit hashes.

    Built once per bank (duplicates allowed: each bank row is its own entry), searched many times;
    searches do not modify the index, so they may run concurrently.
    """

    __slots__ = ("_chunks", "_orders", "_starts", "_words")

    def __init__(
        self,
        words: np.ndarray,
        chunks: list[probe_plan.Chunk],
        orders: list[np.ndarray],
        starts: list[np.ndarray],
    ) -> None:
        self._words = words
        self._chunks = chunks
        self._orders = orders
        self._starts = starts

    @classmethod
    def build(cls, values: np.ndarray, *, chunks: int | None = None) -> HammingIndex:
        """Index ``values``: ``(n, 32) uint8`` or ``(n,)`` ``S32`` / ``V32`` hashes, in bank order.

        ``chunks`` (11 to 32) overrides the layout the cost model picks for the bank's size.
        """
        words = np.array(as_words(values), dtype=np.uint64, order="C", copy=True)
        n = len(words)
        if chunks is None:
            layout = probe_plan.choose_layout(n)
        elif probe_plan.MIN_CHUNKS <= chunks <= probe_plan.MAX_CHUNKS:
            layout = probe_plan.layout(chunks)
        else:
            raise ValueError(
                f"chunks must be between {probe_plan.MIN_CHUNKS} and {probe_plan.MAX_CHUNKS}, got {chunks}"
            )
        index_dtype = np.int32 if n < 2**31 else np.int64
        orders: list[np.ndarray] = []
        starts: list[np.ndarray] = []
        for chunk in layout:
            keys = chunk.keys(words)
            size = 1 << chunk.bits
            orders.append(_stable_argsort(keys, chunk.bits).astype(index_dtype))
            st = np.zeros(size + 1, dtype=index_dtype)
            np.cumsum(np.bincount(keys, minlength=size), out=st[1:])
            starts.append(st)
        return cls(words, layout, orders, starts)

    def __len__(self) -> int:
        return len(self._words)

    def nbytes(self) -> int:
        """Bytes held by the index: the bank copy, each chunk's sorted indices and bucket table."""
        return int(
            self._words.nbytes + sum(o.nbytes for o in self._orders) + sum(s.nbytes for s in self._starts)
        )

    def search(
        self,
        queries: np.ndarray,
        threshold: int = PDQ_THRESHOLD,
        *,
        method: Method = "auto",
        workers: int | None = None,
    ) -> Triple:
        """Every pair within ``threshold`` bits: ``(query_index, bank_index, distance)``.

        ``int64``, ``int64``, ``int16`` arrays sorted by ``(query, bank)``; exact for every threshold.
        ``method`` forces the chunk lookup (``"index"``) or brute force (``"brute"``) instead of the
        cheaper by the cost model; ``workers`` threads (default: the usable CPUs, at most 8) share the
        query batches.
        """
        threshold = int(threshold)
        if threshold < 0:
            raise ValueError(f"threshold must be >= 0, got {threshold}")
        if method not in ("auto", "index", "brute"):
            raise ValueError(f"method must be 'auto', 'index' or 'brute', got {method!r}")
        q = as_words(queries)
        n = len(self._words)
        if n == 0 or len(q) == 0:
            return _empty()
        threshold = min(threshold, HASH_BITS)
        plan = probe_plan.plan_radii(tuple(c.bits for c in self._chunks), n, threshold)
        use_index = plan is not None and (
            method == "index" or (method == "auto" and plan[1] < probe_plan.COST_PAIR * n)
        )
        if method == "index" and plan is None:  # pragma: no cover - the chunks cover 256 + k
            raise AssertionError("no chunk radii cover this threshold")
        if use_index:
            assert plan is not None
            radii = plan[0]
            batch = _QUERY_BATCH
            tasks = [(s, q[s : s + batch]) for s in range(0, len(q), batch)]

            def run(task: tuple[int, np.ndarray]) -> Triple:
                return self._lookup(task[1], task[0], threshold, radii)

        else:
            batch = _BRUTE_QUERIES
            tasks = [(s, q[s : s + batch]) for s in range(0, len(q), batch)]

            def run(task: tuple[int, np.ndarray]) -> Triple:
                return self._brute(task[1], task[0], threshold)

        nworkers = min(len(tasks), workers if workers is not None else _default_workers())
        if nworkers <= 1:
            parts = [run(t) for t in tasks]
        else:
            with ThreadPoolExecutor(nworkers) as pool:
                parts = list(pool.map(run, tasks))
        return (
            np.concatenate([p[0] for p in parts]),
            np.concatenate([p[1] for p in parts]),
            np.concatenate([p[2] for p in parts]),
        )

    def _brute(self, q: np.ndarray, offset: int, threshold: int) -> Triple:
        """Brute force for one batch of queries against the whole bank, block by block."""
        qs: list[np.ndarray] = []
        bs: list[np.ndarray] = []
        ds: list[np.ndarray] = []
        for b0 in range(0, len(self._words), _BRUTE_BANK):
            bt = np.ascontiguousarray(self._words[b0 : b0 + _BRUTE_BANK].T)
            d = _block_distances(q, bt)
            r, c = np.nonzero(d <= threshold)
            if r.size:
                qs.append(r)
                bs.append(c + b0)
                ds.append(d[r, c])
        return _sorted_unique(qs, bs, ds, offset)

    def _lookup(self, q: np.ndarray, offset: int, threshold: int, radii: tuple[int, ...]) -> Triple:
        """Multi-index lookup for one batch of queries: probe, expand, verify, then deduplicate."""
        words = self._words
        qv = q.view(f"V{HASH_BYTES}").reshape(len(q))
        # Candidate positions stay in 32 bits while they fit (a slice holds at most _SLICE + n of
        # them): half the memory traffic of int64 in the expansion, the hot loop after the gathers.
        pos_dtype = np.int32 if len(words) + _SLICE < _POS32_LIMIT else np.int64
        qs: list[np.ndarray] = []
        bs: list[np.ndarray] = []
        ds: list[np.ndarray] = []
        for chunk, radius, order, starts in zip(self._chunks, radii, self._orders, self._starts, strict=True):
            if radius < 0:
                continue
            flips = probe_plan.flips(chunk.bits, radius)
            p = len(flips)
            keys = chunk.keys(q)
            ends = starts[1:]
            step = max(1, _PROBE_CAP // p)
            for a0 in range(0, len(q), step):
                a1 = min(len(q), a0 + step)
                probes = keys[a0:a1, None] ^ flips[None, :]
                lo = starts[probes].astype(pos_dtype, copy=False)
                cnt = ends[probes] - lo  # (queries, p): bucket sizes
                per_query = cnt.sum(axis=1, dtype=np.int64)
                cum = np.cumsum(per_query)
                total = int(cum[-1])
                if total == 0:
                    continue
                # Slices of whole queries with about _SLICE candidates each.
                cuts = np.searchsorted(cum, np.arange(_SLICE, total, _SLICE), side="left") + 1
                bounds = [0, *np.unique(cuts).tolist(), a1 - a0]
                for s0, s1 in pairwise(bounds):
                    if s1 <= s0:
                        continue
                    base = int(cum[s0 - 1]) if s0 else 0
                    m = int(cum[s1 - 1]) - base
                    if m == 0:
                        continue
                    c_flat = cnt[s0:s1].ravel()
                    lo_flat = lo[s0:s1].ravel()
                    # Candidate positions in `order`: each run starts at its bucket's start.
                    run_start = np.cumsum(c_flat, dtype=pos_dtype) - c_flat
                    pos = np.repeat(lo_flat - run_start, c_flat)
                    pos += np.arange(m, dtype=pos_dtype)
                    bank_idx = order[pos]
                    rows = np.take(words, bank_idx, axis=0)
                    qrows = np.repeat(qv[a0 + s0 : a0 + s1], per_query[s0:s1])
                    qrows64 = qrows.view(np.uint64).reshape(m, _WORDS)
                    d = _row_distances_mod256(rows, qrows64)
                    hit = np.flatnonzero(d <= threshold)
                    if hit.size == 0:
                        continue
                    exact = _row_distances(words[bank_idx[hit]], qrows64[hit])
                    ok = exact <= threshold
                    hit = hit[ok]
                    local = np.searchsorted(cum[s0:s1] - base, hit, side="right")
                    qs.append(local + a0 + s0)
                    bs.append(bank_idx[hit])
                    ds.append(exact[ok])
        return _sorted_unique(qs, bs, ds, offset)


def _sorted_unique(qs: list[np.ndarray], bs: list[np.ndarray], ds: list[np.ndarray], offset: int) -> Triple:
    """Concatenate hit lists, sort by (query, bank), drop repeats (one pair found via two chunks)."""
    if not qs:
        return _empty()
    qi = np.concatenate(qs).astype(np.int64)
    bi = np.concatenate(bs).astype(np.int64)
    d = np.concatenate(ds).astype(np.int16)
    srt = np.lexsort((bi, qi))
    qi, bi, d = qi[srt], bi[srt], d[srt]
    keep = np.ones(len(qi), dtype=bool)
    keep[1:] = (qi[1:] != qi[:-1]) | (bi[1:] != bi[:-1])
    return qi[keep] + offset, bi[keep], d[keep]
