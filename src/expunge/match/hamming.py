"""Exact Hamming-radius matching of 256-bit perceptual hashes (PDQ) by multi-index hashing.

Every pair ``(query, bank entry)`` within a Hamming distance ``t`` is found: no misses, no extras.

Why multi-index hashing is exact (the pigeonhole argument)
----------------------------------------------------------
The 256 bits are cut into ``k`` disjoint chunks (by default sixteen 16-bit chunks), so the distance
of a pair is the sum of its per-chunk distances: ``d = d_1 + ... + d_k``. Give chunk ``c`` a search
radius ``r_c >= -1`` (``-1``: the chunk is not searched) such that ``sum(r_c + 1) >= t + 1``. If a
pair had ``d_c >= r_c + 1`` in *every* chunk, then ``d >= sum(r_c + 1) > t``; so every pair with
``d <= t`` has at least one chunk with ``d_c <= r_c``. Looking up, for each chunk, every key within
radius ``r_c`` of the query's chunk value therefore reaches every true match at least once. With
``t = k*r + a`` (``0 <= a < k``) the balanced choice is ``r + 1`` chunks... precisely: ``a + 1``
chunks at radius ``r`` and ``k - a - 1`` at ``r - 1``, which sums to ``k*r + a + 1 = t + 1``; for
sixteen chunks and ``t = 31`` that is radius 1 in every chunk (17 keys per chunk). The radii are
chosen per search by a small dynamic programme over a cost model, under that same constraint, so any
threshold (0 to 256) is exact. Candidates are then verified on their full 256 bits with a vectorised
popcount, which removes every extra; a pair reached through several chunks is reported once.

When the model says the lookups would cost more than comparing against the whole bank (large
thresholds, tiny banks), the search falls back to blocked brute force, which is exact by definition.

Why it is laid out this way
---------------------------
* Each chunk has a direct-addressed bucket table (``starts``: ``2**bits + 1`` offsets into ``order``,
  the bank indices sorted by that chunk's value), so one probe is two gathers from a 256 KiB table
  that stays in cache, instead of a binary search over a million keys.
* All work is numpy over batches of queries: probes are built as ``keys[:, None] ^ flips``, the
  ragged bucket ranges are expanded with ``repeat`` + ``arange``, and candidates are verified with
  ``np.bitwise_count`` on ``uint64`` words. Candidate arrays are processed in slices of bounded size,
  so memory does not grow with the number of queries.
* The bank is kept once as ``(n, 4) uint64`` (32 bytes a hash); each chunk adds ``n`` ``int32``
  indices. For a million hashes that is ~32 MB + 16 * 4 MB + 16 * 256 KiB ≈ 100 MB.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

HASH_BYTES = 32
HASH_BITS = 8 * HASH_BYTES
_WORDS = HASH_BYTES // 8

_CHUNK_BITS = 16  # 16 chunks of 16 bits: 65,536-entry bucket tables (~15 entries each per million)
_QUERY_BATCH = 4096  # queries looked up together
_SLICE = 1 << 19  # candidates verified together (bounds transient memory to ~50 MB)
_BRUTE_BLOCK = 1 << 21  # query x bank pairs compared together in brute force

# Relative costs (measured, in arbitrary units per element) used to choose radii and brute force.
_COST_PROBE = 3.0
_COST_CANDIDATE = 4.0
_COST_PAIR = 2.0


def as_words(values: np.ndarray) -> np.ndarray:
    """Hashes as a C-contiguous ``(n, 4) uint64`` array (native byte order; a copy only if needed).

    Accepts ``(n, 32) uint8`` or ``(n,)`` fixed-width ``S32`` / ``V32``. The bit order inside the words
    does not matter: Hamming distance is a count of differing bits however they are grouped.
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


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise Hamming distances of two equal-length ``(m, 4) uint64`` arrays, as ``int16``."""
    x = np.bitwise_xor(a, b)
    pc = np.bitwise_count(x, out=x)  # in place: counts fit in the same uint64 slots
    d: np.ndarray = (pc[:, 0] + pc[:, 1] + pc[:, 2] + pc[:, 3]).astype(np.int16)
    return d


def _block_distances(q: np.ndarray, b: np.ndarray) -> np.ndarray:
    """All-pairs Hamming distances ``(len(q), len(b)) int16`` of two ``(m, 4) uint64`` arrays."""
    out = np.zeros((len(q), len(b)), dtype=np.int16)
    tmp = np.empty((len(q), len(b)), dtype=np.uint64)
    cnt = np.empty((len(q), len(b)), dtype=np.uint8)
    for w in range(_WORDS):
        np.bitwise_xor(q[:, w, None], b[None, :, w], out=tmp)
        np.bitwise_count(tmp, out=cnt)
        out += cnt
    return out


def hamming_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """All-pairs Hamming distances, ``int16`` of shape ``(len(a), len(b))``: the brute-force reference.

    Memory is ``len(a) * len(b) * 11`` bytes while it runs: meant for small inputs and for tests.
    """
    return _block_distances(as_words(a), as_words(b))


@lru_cache(maxsize=64)
def _flips(bits: int, radius: int) -> np.ndarray:
    """Every ``bits``-bit value with at most ``radius`` bits set (XOR masks of a radius search)."""
    values = np.arange(1 << bits, dtype=np.int64)
    out = values[np.bitwise_count(values) <= radius]
    out.flags.writeable = False
    return out


def _ball(bits: int, radius: int) -> int:
    """How many ``bits``-bit values lie within ``radius`` of a given one."""
    return sum(math.comb(bits, i) for i in range(min(radius, bits) + 1))


class HammingIndex:
    """All pairs within a Hamming threshold between query hashes and a bank of 256-bit hashes.

    Built once per bank (duplicates allowed: each bank row is its own entry), searched many times.
    """

    __slots__ = ("_chunk_bits", "_orders", "_starts", "_words")

    def __init__(
        self, words: np.ndarray, chunk_bits: int, orders: list[np.ndarray], starts: list[np.ndarray]
    ) -> None:
        self._words = words
        self._chunk_bits = chunk_bits
        self._orders = orders
        self._starts = starts

    @classmethod
    def build(cls, values: np.ndarray) -> HammingIndex:
        """Index ``values``: ``(n, 32) uint8`` or ``(n,)`` ``S32`` / ``V32`` hashes, in bank order."""
        words = np.array(as_words(values), dtype=np.uint64, order="C", copy=True)
        n = len(words)
        bits = _CHUNK_BITS
        per_word = 64 // bits
        size = 1 << bits
        index_dtype = np.int32 if n < 2**31 else np.int64
        orders: list[np.ndarray] = []
        starts: list[np.ndarray] = []
        for c in range(_WORDS * per_word):
            keys = _chunk(words, c, bits).astype(np.uint16)
            # Stable sort: bank indices ascend within a bucket (numpy radix-sorts 16-bit keys).
            orders.append(np.argsort(keys, kind="stable").astype(index_dtype))
            st = np.zeros(size + 1, dtype=index_dtype)
            np.cumsum(np.bincount(keys, minlength=size), out=st[1:])
            starts.append(st)
        return cls(words, bits, orders, starts)

    def __len__(self) -> int:
        return len(self._words)

    def nbytes(self) -> int:
        """Bytes held by the index's arrays (the bank copy, the per-chunk orders and bucket tables)."""
        return int(
            self._words.nbytes + sum(o.nbytes for o in self._orders) + sum(s.nbytes for s in self._starts)
        )

    # --------------------------------------------------------------------------------------------

    def _plan(self, threshold: int) -> list[int] | None:
        """Per-chunk radii minimising the modelled cost, or None when brute force is cheaper.

        Dynamic programme over chunks: ``best[j]`` is the cheapest cost of the chunks seen so far
        with ``sum(r_c + 1) == j`` (capped at ``threshold + 1``, which is what exactness needs).
        """
        n = len(self._words)
        bits = self._chunk_bits
        k = len(self._orders)
        need = threshold + 1
        per_bucket = n / (1 << bits)
        cost_r = [0.0] + [
            _ball(bits, r) * (_COST_PROBE + _COST_CANDIDATE * per_bucket) for r in range(bits + 1)
        ]  # index r + 1; r = -1 (chunk not searched) costs nothing
        inf = math.inf
        best = [0.0] + [inf] * need
        choice: list[list[int]] = []
        for _ in range(k):
            nxt = [inf] * (need + 1)
            arg = [0] * (need + 1)
            for j, base in enumerate(best):
                if base == inf:
                    continue
                for rp1 in range(bits + 2):
                    jj = min(need, j + rp1)
                    cost = base + cost_r[rp1]
                    if cost < nxt[jj]:
                        nxt[jj], arg[jj] = cost, rp1
            # Remember how each state was reached to recover the radii.
            choice.append(arg)
            best = nxt
        if best[need] == inf:
            return None  # threshold beyond what the chunks can cover (>= 256 with full radii)
        if best[need] > _COST_PAIR * n:
            return None
        # Backtrack: recompute predecessor states (small: k * (need + 1)).
        radii: list[int] = []
        j = need
        states = self._dp_states(cost_r, need, k)
        for c in range(k - 1, -1, -1):
            rp1 = choice[c][j]
            radii.append(rp1 - 1)
            j = states[c][j]
        radii.reverse()
        return radii

    @staticmethod
    def _dp_states(cost_r: list[float], need: int, k: int) -> list[list[int]]:
        """Predecessor state per chunk and state, matching ``_plan``'s choices."""
        inf = math.inf
        best = [0.0] + [inf] * need
        prev_all: list[list[int]] = []
        for _ in range(k):
            nxt = [inf] * (need + 1)
            prev = [0] * (need + 1)
            for j, base in enumerate(best):
                if base == inf:
                    continue
                for rp1 in range(len(cost_r)):
                    jj = min(need, j + rp1)
                    cost = base + cost_r[rp1]
                    if cost < nxt[jj]:
                        nxt[jj], prev[jj] = cost, j
            prev_all.append(prev)
            best = nxt
        return prev_all

    def search(self, queries: np.ndarray, threshold: int = 31) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every pair within ``threshold`` bits: ``(query_index, bank_index, distance)``.

        ``int64``, ``int64``, ``int16`` arrays sorted by ``(query, bank)``. Exact for every threshold.
        """
        threshold = int(threshold)
        if threshold < 0:
            raise ValueError(f"threshold must be >= 0, got {threshold}")
        q = as_words(queries)
        n = len(self._words)
        if n == 0 or len(q) == 0:
            return _empty()
        radii = self._plan(min(threshold, HASH_BITS))
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        if radii is None:
            step = max(1, _BRUTE_BLOCK // n)
            for s in range(0, len(q), step):
                parts.append(self._brute(q[s : s + step], s, threshold))
        else:
            for s in range(0, len(q), _QUERY_BATCH):
                parts.append(self._lookup(q[s : s + _QUERY_BATCH], s, threshold, radii))
        qi = np.concatenate([p[0] for p in parts])
        bi = np.concatenate([p[1] for p in parts])
        d = np.concatenate([p[2] for p in parts])
        return qi, bi, d

    def _brute(self, q: np.ndarray, offset: int, threshold: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Brute force for one batch of queries; results come out sorted by (query, bank)."""
        n = len(self._words)
        step = max(1, _BRUTE_BLOCK // max(1, len(q)))
        qs: list[np.ndarray] = []
        bs: list[np.ndarray] = []
        ds: list[np.ndarray] = []
        for b0 in range(0, n, step):
            d = _block_distances(q, self._words[b0 : b0 + step])
            r, c = np.nonzero(d <= threshold)
            qs.append(r)
            bs.append(c + b0)
            ds.append(d[r, c])
        qi = np.concatenate(qs).astype(np.int64)
        bi = np.concatenate(bs).astype(np.int64)
        d = np.concatenate(ds)
        order = np.lexsort((bi, qi))  # bank blocks interleave per query: restore (query, bank) order
        return qi[order] + offset, bi[order], d[order]

    def _lookup(
        self, q: np.ndarray, offset: int, threshold: int, radii: list[int]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Multi-index lookup for one batch of queries: probe, expand, verify, deduplicate, sort."""
        bits = self._chunk_bits
        words = self._words
        qs: list[np.ndarray] = []
        bs: list[np.ndarray] = []
        ds: list[np.ndarray] = []
        for c, radius in enumerate(radii):
            if radius < 0:
                continue
            flips = _flips(bits, radius)
            p = len(flips)
            keys = _chunk(q, c, bits)
            probes = (keys[:, None] ^ flips[None, :]).ravel()
            st = self._starts[c]
            lo = st[probes].astype(np.int64)
            cnt = st[probes + 1] - lo
            cum = np.cumsum(cnt)
            total = int(cum[-1]) if len(cum) else 0
            if total == 0:
                continue
            # Cut the probes into slices of about _SLICE candidates (whole probes per slice).
            cuts = np.searchsorted(cum, np.arange(_SLICE, total, _SLICE), side="left")
            bounds = [0, *np.unique(cuts + 1).tolist(), len(probes)]
            order = self._orders[c]
            for p0, p1 in zip(bounds[:-1], bounds[1:], strict=True):
                if p1 <= p0:
                    continue
                cs = cnt[p0:p1]
                base = int(cum[p0 - 1]) if p0 else 0
                m = int(cum[p1 - 1]) - base
                if m == 0:
                    continue
                # Position of each candidate in `order`: bucket start + rank within its bucket.
                first = cum[p0:p1] - cs - base  # where each probe's run begins in the slice
                pos = np.arange(m, dtype=np.int64) + np.repeat(lo[p0:p1] - first, cs)
                bank_idx = order[pos]
                q_idx = np.repeat(np.arange(p0, p1, dtype=np.int64) // p, cs)
                d = _distances(words[bank_idx], q[q_idx])
                hit = np.flatnonzero(d <= threshold)
                if hit.size:
                    qs.append(q_idx[hit])
                    bs.append(bank_idx[hit].astype(np.int64))
                    ds.append(d[hit])
        if not qs:
            return _empty()
        qi = np.concatenate(qs)
        bi = np.concatenate(bs)
        d = np.concatenate(ds)
        srt = np.lexsort((bi, qi))
        qi, bi, d = qi[srt], bi[srt], d[srt]
        # A pair reached through several chunks appears once per chunk: keep the first.
        keep = np.ones(len(qi), dtype=bool)
        keep[1:] = (qi[1:] != qi[:-1]) | (bi[1:] != bi[:-1])
        return qi[keep] + offset, bi[keep], d[keep]


def _chunk(words: np.ndarray, c: int, bits: int) -> np.ndarray:
    """Chunk ``c`` (``bits`` wide; chunks never straddle a word) of each hash, as ``int64``."""
    per_word = 64 // bits
    w, j = divmod(c, per_word)
    shifted = words[:, w] >> np.uint64(j * bits)
    return (shifted & np.uint64((1 << bits) - 1)).astype(np.int64)


def _empty() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int16)
