"""Hamming matching: HammingIndex.search returns exactly the pairs brute force finds, sorted, once each.

The reference is ``hamming_matrix``, itself checked against ``np.unpackbits`` (bit by bit). Every
comparison is on whole arrays, so a missing pair, an extra pair, a repeated pair, a wrong distance and
a wrong order all fail.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from expunge.matchers import hamming, probe_plan
from expunge.matchers.hamming import HammingIndex, hamming_matrix

THRESHOLDS = (0, 8, 31, 32, 48)
# None: the layout the cost model picks; 13: 19/20-bit chunks straddling words (the million-hash
# layout); 16: 16-bit chunks, faiss's layout; 21: 12/13-bit chunks; 32: bytes.
LAYOUTS = (None, 13, 16, 21, 32)
Triple = tuple[np.ndarray, np.ndarray, np.ndarray]


def _random(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 256, size=(n, 32), dtype=np.uint8)


def _flip(rng: np.random.Generator, h: np.ndarray, d: int) -> np.ndarray:
    """``h`` with exactly ``d`` distinct random bits flipped."""
    bits = np.unpackbits(h)
    bits[rng.choice(256, size=d, replace=False)] ^= 1
    return np.packbits(bits)


def _reference(queries: np.ndarray, bank: np.ndarray, threshold: int) -> Triple:
    d = hamming_matrix(queries, bank)
    qi, bi = np.nonzero(d <= threshold)
    return qi.astype(np.int64), bi.astype(np.int64), d[qi, bi]


def _check(got: Triple, want: Triple) -> None:
    qi, bi, d = got
    assert qi.dtype == np.int64 and bi.dtype == np.int64 and d.dtype == np.int16
    assert np.array_equal(qi, want[0])
    assert np.array_equal(bi, want[1])
    assert np.array_equal(d, want[2])


def _planted(rng: np.random.Generator, threshold: int) -> tuple[np.ndarray, np.ndarray]:
    """A bank with duplicate rows and queries at exactly 0, 1, t-1, t, t+1 bits from bank rows."""
    bank = _random(rng, 300)
    bank[10] = bank[20] = bank[30]  # three identical rows
    bank[40] = _flip(rng, bank[30], 1)  # and a neighbour of theirs
    queries = [_random(rng, 20)]
    for d in sorted({0, 1, threshold - 1, threshold, threshold + 1} - {-1}):
        for row in (0, 30, 299):
            queries.append(_flip(rng, bank[row], d)[None, :])
    return bank, np.concatenate(queries)


# ------------------------------------------------------------------------------------------------
# The reference itself
# ------------------------------------------------------------------------------------------------


def test_hamming_matrix_counts_bits_like_unpackbits() -> None:
    rng = np.random.default_rng(1)
    a, b = _random(rng, 13), _random(rng, 17)
    b[:3] = a[:3]
    b[3] = ~a[3]  # distance 256
    want = (np.unpackbits(a, axis=1)[:, None, :] != np.unpackbits(b, axis=1)[None, :, :]).sum(axis=2)
    got = hamming_matrix(a, b)
    assert got.dtype == np.int16 and got.shape == (13, 17)
    assert np.array_equal(got, want)
    assert got[3, 3] == 256 and got[0, 0] == 0


def test_input_forms_agree() -> None:
    rng = np.random.default_rng(2)
    bank, queries = _planted(rng, 31)
    want = _reference(queries, bank, 31)
    for dtype in (None, "S32", "V32"):
        b, q = (bank, queries) if dtype is None else (bank.view(dtype).ravel(), queries.view(dtype).ravel())
        _check(HammingIndex.build(b).search(q, 31), want)
    # A hash ending in zero bytes keeps all 32 bytes as S32 (numpy strips them only on item access).
    z = np.zeros((2, 32), dtype=np.uint8)
    z[1, 0] = 1
    _check(HammingIndex.build(z.view("S32").ravel()).search(z, 0), (np.arange(2), np.arange(2), np.zeros(2)))


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((3, 31), dtype=np.uint8),
        np.zeros((3, 32), dtype=np.int8),
        np.zeros(3, dtype="S16"),
        np.zeros((3, 4), dtype=np.uint64),
    ],
)
def test_rejects_other_shapes(bad: np.ndarray) -> None:
    with pytest.raises((TypeError, ValueError)):
        HammingIndex.build(bad)


def test_rejects_bad_arguments() -> None:
    index = HammingIndex.build(np.zeros((2, 32), dtype=np.uint8))
    with pytest.raises(ValueError):
        index.search(np.zeros((1, 32), dtype=np.uint8), -1)
    with pytest.raises(ValueError):
        index.search(np.zeros((1, 32), dtype=np.uint8), 3, method="fast")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        HammingIndex.build(np.zeros((2, 32), dtype=np.uint8), chunks=7)


# ------------------------------------------------------------------------------------------------
# Planted near-duplicates at the edges of the threshold
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("threshold", THRESHOLDS)
@pytest.mark.parametrize("chunks", LAYOUTS)
def test_planted_edges_equal_brute_force(threshold: int, chunks: int | None) -> None:
    rng = np.random.default_rng(threshold * 100 + (chunks or 0))
    bank, queries = _planted(rng, threshold)
    want = _reference(queries, bank, threshold)
    index = HammingIndex.build(bank, chunks=chunks)
    assert len(index) == len(bank)
    for method in ("auto", "index", "brute"):
        _check(index.search(queries, threshold, method=method), want)
    # The planted pairs at distance <= t are all there, and the ones at t + 1 are not.
    found = dict(zip(zip(want[0].tolist(), want[1].tolist(), strict=True), want[2].tolist(), strict=True))
    assert found[(21, 10)] == found[(21, 20)] == found[(21, 30)] == 0  # duplicates each reported
    assert threshold + 1 not in set(want[2].tolist())
    assert threshold in set(want[2].tolist())


def test_empty_bank_and_empty_queries() -> None:
    rng = np.random.default_rng(3)
    empty = np.empty((0, 32), dtype=np.uint8)
    some = _random(rng, 5)
    index = HammingIndex.build(empty)
    assert len(index) == 0
    _check(index.search(some, 64), _reference(some, empty, 64))
    _check(HammingIndex.build(some).search(empty, 64), _reference(empty, some, 64))
    _check(
        HammingIndex.build(np.empty(0, dtype="S32")).search(np.empty(0, dtype="V32"), 31),
        _reference(empty, empty, 31),
    )


@pytest.mark.parametrize("chunks", LAYOUTS)
def test_bank_of_one(chunks: int | None) -> None:
    rng = np.random.default_rng(4)
    bank = _random(rng, 1)
    queries = np.concatenate(
        [bank, *(_flip(rng, bank[0], d)[None] for d in (1, 30, 31, 32, 100)), _random(rng, 3)]
    )
    index = HammingIndex.build(bank, chunks=chunks)
    for t in (0, 31, 100, 255, 256):
        _check(index.search(queries, t), _reference(queries, bank, t))
    for t in (0, 31, 64):
        _check(index.search(queries, t, method="index"), _reference(queries, bank, t))


def test_all_bits_different_and_whole_range() -> None:
    """Distance 256 must not wrap to 0 in the fast filter; thresholds of 256 and beyond match all."""
    rng = np.random.default_rng(5)
    bank = _random(rng, 40)
    queries = np.concatenate([~bank[:5], bank[5:8]])
    index = HammingIndex.build(bank, chunks=32)
    for t in (0, 64, 255):
        _check(index.search(queries, t, method="index"), _reference(queries, bank, t))
    everything = _reference(queries, bank, 256)
    assert len(everything[0]) == len(queries) * len(bank)
    for method in ("auto", "index", "brute"):
        _check(index.search(queries, 256, method=method), everything)
        _check(index.search(queries, 1000, method=method), everything)


def test_random_hashes_at_a_realistic_scale(monkeypatch: pytest.MonkeyPatch) -> None:
    """20k bank, 2k queries (1 % planted): also with tiny batches, slices and probe steps, so the
    slicing code paths run many times; and on two threads."""
    rng = np.random.default_rng(6)
    bank = _random(rng, 20_000)
    queries = _random(rng, 2_000)
    src = rng.choice(len(bank), 20, replace=False)
    for i, row in enumerate(src):
        queries[i * 97] = _flip(rng, bank[row], int(rng.integers(0, 32)))
    want = _reference(queries, bank, 31)
    assert len(want[0]) >= 20
    index = HammingIndex.build(bank)
    _check(index.search(queries, 31), want)
    _check(index.search(queries, 31, workers=2), want)
    monkeypatch.setattr(hamming, "_QUERY_BATCH", 37)
    monkeypatch.setattr(hamming, "_SLICE", 100)
    monkeypatch.setattr(hamming, "_PROBE_CAP", 500)
    _check(index.search(queries, 31, method="index", workers=1), want)
    _check(index.search(queries[:300], 48, method="index", workers=2), _reference(queries[:300], bank, 48))


def test_skewed_bank_with_many_duplicates() -> None:
    """Large buckets (a bank of a few hashes repeated): every copy is reported, nothing twice."""
    rng = np.random.default_rng(7)
    centres = _random(rng, 3)
    bank = np.concatenate([centres[rng.integers(0, 3, 500)], _random(rng, 50)])
    queries = np.concatenate([centres, *(_flip(rng, centres[1], d)[None] for d in (5, 31, 32))])
    index = HammingIndex.build(bank, chunks=16)
    for t in (0, 31, 32):
        _check(index.search(queries, t, method="index"), _reference(queries, bank, t))


def test_nbytes_counts_the_arrays() -> None:
    rng = np.random.default_rng(8)
    index = HammingIndex.build(_random(rng, 1000), chunks=16)
    # the bank (32 B a hash), 16 orders (4 B a hash), 16 tables of 65537 int32 offsets
    assert index.nbytes() == 1000 * 32 + 16 * 1000 * 4 + 16 * 65537 * 4


def test_radii_satisfy_the_pigeonhole_bound() -> None:
    """The exactness argument: the chosen radii always sum (as r + 1) to more than the threshold."""
    for n in (1, 1000, 1_000_000):
        for k in (11, 13, 16, 21, 32):
            widths = tuple(c.bits for c in probe_plan.layout(k))
            assert sum(widths) == 256
            for t in range(0, 257, 7):
                plan = probe_plan.plan_radii(widths, n, t)
                assert plan is not None
                radii = plan[0]
                assert sum(r + 1 for r in radii) >= t + 1
                assert all(-1 <= r <= b for r, b in zip(radii, widths, strict=True))


def test_flips_enumerate_the_ball() -> None:
    for bits, radius in ((8, 0), (8, 3), (13, 2), (20, 2), (22, 3), (16, 16)):
        f = probe_plan.flips(bits, radius)
        assert len(f) == len(set(f.tolist())) == probe_plan.ball(bits, radius)
        assert int(np.bitwise_count(f).max()) <= radius and int(f.max()) < (1 << bits)


# ------------------------------------------------------------------------------------------------
# Random cases
# ------------------------------------------------------------------------------------------------


@st.composite
def _case(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, int, int | None]:
    """A small bank built around a few centres (so near neighbours exist at every distance), queries
    near the same centres or random, a threshold and a chunk layout."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    centres = _random(rng, draw(st.integers(1, 4)))

    def near(count: int) -> np.ndarray:
        rows = [
            _flip(rng, centres[rng.integers(len(centres))], int(rng.integers(0, 70)))[None]
            for _ in range(count)
        ]
        return np.concatenate([np.empty((0, 32), dtype=np.uint8), *rows])

    bank = np.concatenate([near(draw(st.integers(0, 25))), _random(rng, draw(st.integers(0, 5)))])
    if len(bank) and draw(st.booleans()):
        bank = np.concatenate([bank, bank[rng.integers(0, len(bank), 5)]])  # duplicates
    queries = np.concatenate([near(draw(st.integers(0, 15))), _random(rng, draw(st.integers(0, 3)))])
    threshold = draw(st.one_of(st.integers(0, 64), st.sampled_from([0, 31, 32, 63, 64, 128, 256])))
    chunks = draw(st.sampled_from(LAYOUTS))
    return bank, queries, threshold, chunks


@settings(max_examples=120, deadline=None)
@given(case=_case())
def test_random_cases_equal_brute_force(case: tuple[np.ndarray, np.ndarray, int, int | None]) -> None:
    bank, queries, threshold, chunks = case
    want = _reference(queries, bank, threshold)
    index = HammingIndex.build(bank, chunks=chunks)
    _check(index.search(queries, threshold, method="index", workers=1), want)
    _check(index.search(queries, threshold), want)


# ------------------------------------------------------------------------------------------------
# Large banks (issue 12): memory budget, clustered banks, wide positions
# ------------------------------------------------------------------------------------------------


def test_modelled_size_matches_nbytes_and_fits_the_10m_budget() -> None:
    rng = np.random.default_rng(9)
    bank = _random(rng, 3000)
    for chunks in (None, 16, 21):
        index = HammingIndex.build(bank, chunks=chunks)
        assert index.nbytes() == probe_plan.index_nbytes(len(bank), index._chunks)
    ten_million = 10_000_000
    layout = probe_plan.choose_layout(ten_million)
    assert probe_plan.index_nbytes(ten_million, layout) <= 2_000_000_000
    # the pigeonhole plan for PDQ's threshold exists for that layout and is exact by construction
    plan = probe_plan.plan_radii(tuple(c.bits for c in layout), ten_million, 31)
    assert plan is not None and sum(r + 1 for r in plan[0]) >= 32


def _clustered(rng: np.random.Generator, n: int, centres: np.ndarray) -> np.ndarray:
    """Hashes near random centres, each bit flipped with probability 1/4, 1/8 or 1/16 (as the
    benchmark's clustered bank): skewed buckets and many pairs within 31 bits of each other."""
    owner = rng.integers(0, len(centres), n)
    p = rng.choice([1 / 4, 1 / 8, 1 / 16], size=n)
    mask = np.packbits(rng.random((n, 256)) < p[:, None], axis=1)
    out: np.ndarray = centres[owner] ^ mask
    return out


@pytest.mark.parametrize("chunks", (None, 13, 16))
def test_clustered_bank_equals_brute_force(chunks: int | None) -> None:
    rng = np.random.default_rng(10)
    centres = _random(rng, 40)
    bank = _clustered(rng, 8000, centres)
    planted = np.stack([_flip(rng, bank[i], int(rng.integers(0, 32))) for i in rng.choice(8000, 60)])
    queries = np.concatenate([planted, _clustered(rng, 60, centres), _random(rng, 30)])
    want = _reference(queries, bank, 31)
    assert len(want[0]) > 200  # the siblings of the 1/16 members are found, not just the planted rows
    index = HammingIndex.build(bank, chunks=chunks)
    _check(index.search(queries, 31, method="index", workers=1), want)
    _check(index.search(queries, 31, workers=2), want)


def test_wide_candidate_positions_give_the_same_pairs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Positions are int32 for banks under 2**31 - _SLICE; the int64 path (huge banks) must agree."""
    rng = np.random.default_rng(11)
    centres = _random(rng, 5)
    bank = np.concatenate([_clustered(rng, 3000, centres), centres[rng.integers(0, 5, 200)]])
    queries = np.concatenate([centres, _clustered(rng, 40, centres), _random(rng, 10)])
    want = _reference(queries, bank, 31)
    index = HammingIndex.build(bank, chunks=16)
    _check(index.search(queries, 31, method="index"), want)
    monkeypatch.setattr(hamming, "_POS32_LIMIT", 0)
    monkeypatch.setattr(hamming, "_SLICE", 1000)
    _check(index.search(queries, 31, method="index"), want)
