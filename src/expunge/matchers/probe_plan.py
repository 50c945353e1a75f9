"""The chunk layout and per-search radii of :class:`expunge.matchers.hamming.HammingIndex`.

A cost model (nanoseconds per probe, per candidate, per brute-force pair, measured with numpy 2 on one
core) picks how many chunks a bank is cut into and, per search, each chunk's radius, under the
pigeonhole constraint ``sum(r_c + 1) >= threshold + 1`` that makes the lookup exact (the argument is in
:mod:`expunge.matchers.hamming`). Nothing here touches a bank: only widths, sizes and thresholds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations

import numpy as np

HASH_BYTES = 32
HASH_BITS = 8 * HASH_BYTES

PDQ_THRESHOLD = 31  # the usual PDQ match threshold; the chunk layout is tuned for it

# Cost model, in nanoseconds per element, measured with numpy 2 on one core.
_COST_PROBE_SMALL = 8.0  # a probe whose bucket table fits in cache (<= 4 MiB)
_COST_PROBE_LARGE = 20.0  # ... and one whose table does not
_COST_CANDIDATE = 20.0  # expand, gather the bank row (a cache miss), verify
COST_PAIR = 3.5  # one query x bank pair in brute force (blocked, incl. result extraction)
_MIN_BITS, _MAX_BITS = 8, 24
MIN_CHUNKS, MAX_CHUNKS = -(-HASH_BITS // _MAX_BITS), HASH_BITS // _MIN_BITS  # 11, 32


@lru_cache(maxsize=128)
def flips(bits: int, radius: int) -> np.ndarray:
    """Every ``bits``-bit value with at most ``radius`` bits set (the XOR masks of a radius search)."""
    radius = min(radius, bits)
    if bits <= 20:
        values = np.arange(1 << bits, dtype=np.int64)
        out = values[np.bitwise_count(values) <= radius]
    else:  # a 2**24 scan would be wasteful for the small radii used on wide chunks
        masks = [
            sum(1 << i for i in combo) for r in range(radius + 1) for combo in combinations(range(bits), r)
        ]
        out = np.sort(np.array(masks, dtype=np.int64))
    out.flags.writeable = False
    return out


def ball(bits: int, radius: int) -> int:
    """How many ``bits``-bit values lie within ``radius`` of a given one."""
    return sum(math.comb(bits, i) for i in range(min(radius, bits) + 1))


@dataclass(frozen=True)
class Chunk:
    start: int  # first bit (0..255) in the (n, 4) uint64 words, little end first
    bits: int

    def keys(self, words: np.ndarray) -> np.ndarray:
        """This chunk of each hash, as ``int64`` (a chunk may straddle two words)."""
        w, off = divmod(self.start, 64)
        k = words[:, w] >> np.uint64(off)
        if off + self.bits > 64:
            k |= words[:, w + 1] << np.uint64(64 - off)
        k &= np.uint64((1 << self.bits) - 1)
        return k.astype(np.int64)


def layout(k: int) -> list[Chunk]:
    """``k`` chunks covering the 256 bits, widths differing by at most one (wider ones first)."""
    base, extra = divmod(HASH_BITS, k)
    chunks: list[Chunk] = []
    start = 0
    for c in range(k):
        bits = base + (c < extra)
        chunks.append(Chunk(start, bits))
        start += bits
    return chunks


def _probe_cost(bits: int) -> float:
    return _COST_PROBE_SMALL if (4 << bits) <= (4 << 20) else _COST_PROBE_LARGE


@lru_cache(maxsize=256)
def plan_radii(widths: tuple[int, ...], n: int, threshold: int) -> tuple[tuple[int, ...], float] | None:
    """Per-chunk radii with ``sum(r_c + 1) >= threshold + 1`` minimising the modelled cost per query.

    Dynamic programme over the chunks: state ``j`` = ``min(sum(r_c + 1), threshold + 1)`` so far.
    Returns ``None`` when no radii satisfy the constraint (``threshold`` beyond 255 + k).
    """
    need = threshold + 1
    inf = math.inf
    best = [0.0] + [inf] * need
    back: list[list[tuple[int, int]]] = []  # per chunk, per state: (previous state, r_c + 1)
    for bits in widths:
        per_probe = _probe_cost(bits) + _COST_CANDIDATE * n / (1 << bits)
        cost = [0.0] + [ball(bits, r) * per_probe for r in range(bits + 1)]  # index r + 1
        nxt = [inf] * (need + 1)
        arg = [(0, 0)] * (need + 1)
        for j, base in enumerate(best):
            if base == inf:
                continue
            for rp1, c in enumerate(cost):
                jj = min(need, j + rp1)
                if base + c < nxt[jj]:
                    nxt[jj], arg[jj] = base + c, (j, rp1)
        back.append(arg)
        best = nxt
    if best[need] == inf:
        return None
    radii: list[int] = []
    j = need
    for arg in reversed(back):
        j, rp1 = arg[j]
        radii.append(rp1 - 1)
    radii.reverse()
    return tuple(radii), best[need]


def choose_layout(n: int) -> list[Chunk]:
    """The chunk layout with the cheapest modelled PDQ-threshold search, tables capped near ``n``."""
    max_bits = min(_MAX_BITS, max(_MIN_BITS, math.ceil(math.log2(max(n, 2)))))
    best: tuple[float, int] | None = None
    for k in range(math.ceil(HASH_BITS / max_bits), HASH_BITS // _MIN_BITS + 1):
        chunks = layout(k)
        plan = plan_radii(tuple(c.bits for c in chunks), n, PDQ_THRESHOLD)
        if plan is not None and (best is None or plan[1] < best[0]):
            best = (plan[1], k)
    assert best is not None
    return layout(best[1])


def index_nbytes(n: int, chunks: list[Chunk]) -> int:
    """Bytes a ``HammingIndex`` of ``n`` hashes holds with this layout, known before building it.

    The bank copy (32 B a hash), per chunk the bank indices in key order (``int32`` below 2**31
    hashes) and a table of ``2**bits + 1`` offsets of the same type. At 10M hashes the chosen layout
    (11 chunks of 23-24 bits) holds 1.23 GB, under issue 12's 2 GB budget.
    """
    item = 4 if n < 2**31 else 8
    return HASH_BYTES * n + sum(item * (n + (1 << c.bits) + 1) for c in chunks)
