"""Nearest-neighbour expansion of seeds in CLIP space: exactness, determinism, bad rows, recall."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from expunge.errors import ExpungeError
from expunge.signals import neighbour as nb
from expunge.signals.neighbour import Hits, NeighbourParams

N, DIM, SEEDS, PER_SEED = 5000, 64, 20, 5


def _unit(a: np.ndarray) -> np.ndarray:
    out: np.ndarray = (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)
    return out


def planted(
    n: int = N, dim: int = DIM, n_seeds: int = SEEDS, per_seed: int = PER_SEED, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, dict[int, set[int]]]:
    """Random float16 unit vectors with ``per_seed`` near copies (cosine ~0.99) of each seed planted."""
    rng = np.random.default_rng(seed)
    data = _unit(rng.standard_normal((n, dim)))
    seeds = _unit(rng.standard_normal((n_seeds, dim)))
    rows = rng.choice(n, size=n_seeds * per_seed, replace=False)
    truth: dict[int, set[int]] = {s: set() for s in range(n_seeds)}
    for j, r in enumerate(rows):
        s = j % n_seeds
        data[r] = _unit((seeds[s] + 0.1 * rng.standard_normal(dim) / np.sqrt(dim))[None])[0]
        truth[s].add(int(r))
    return data.astype(np.float16), seeds, truth


def reference(seeds: np.ndarray, data: np.ndarray, k: int, min_cosine: float) -> set[tuple[int, int]]:
    """Brute force in float64 over the whole matrix: (seed, row) pairs of each seed's top-k."""
    unit, valid = nb.normalise(data)
    s_unit, s_valid = nb.normalise(seeds)
    cos = (s_unit.astype(np.float64) @ unit.astype(np.float64).T).astype(np.float32)
    cos[:, ~valid] = -np.inf
    cos[~s_valid, :] = -np.inf
    out: set[tuple[int, int]] = set()
    for s in range(seeds.shape[0]):
        order = np.lexsort((np.arange(cos.shape[1]), -cos[s]))
        for r in order[:k]:
            if cos[s, r] >= np.float32(min_cosine):
                out.add((s, int(r)))
    return out


def pairs(hits: Hits) -> set[tuple[int, int]]:
    return set(zip(hits.seed.tolist(), hits.row.tolist(), strict=True))


def as_tuple(h: Hits) -> tuple[list[int], list[int], list[int], list[float]]:
    return h.shard.tolist(), h.row.tolist(), h.seed.tolist(), h.cosine.tolist()


def test_exact_finds_every_planted_neighbour_and_nothing_below_min_cosine() -> None:
    data, seeds, truth = planted()
    row, seed, cos = nb.search_shard(seeds, data, k=100, min_cosine=0.9)
    found = set(zip(seed.tolist(), row.tolist(), strict=True))
    assert found == {(s, r) for s, rows in truth.items() for r in rows}
    assert (cos >= np.float32(0.9)).all()
    assert found == reference(seeds, data, 100, 0.9)
    assert row.dtype == np.int64 and seed.dtype == np.int32 and cos.dtype == np.float32


def test_low_threshold_matches_brute_force_top_k() -> None:
    """min_cosine -1: every seed has more candidates than k, so the k-th-score path decides."""
    data, seeds, _ = planted(n=3000, n_seeds=7)
    row, seed, _ = nb.search_shard(seeds, data, k=13, min_cosine=-1.0, chunk_rows=500)
    assert set(zip(seed.tolist(), row.tolist(), strict=True)) == reference(seeds, data, 13, -1.0)


@pytest.mark.parametrize("min_cosine", [0.9, 0.0, -1.0])
def test_chunk_size_does_not_change_the_result(min_cosine: float) -> None:
    data, seeds, _ = planted(n=3000)
    base = nb.search_shard(seeds, data, k=8, min_cosine=min_cosine)
    for chunk in (1, 7, 256, 1000, 2999, 3000, 10_000):
        got = nb.search_shard(seeds, data, k=8, min_cosine=min_cosine, chunk_rows=chunk)
        for a, b in zip(base, got, strict=True):
            assert np.array_equal(a, b), chunk


def test_ties_are_broken_by_row_whatever_the_chunking() -> None:
    """Duplicate rows (a placeholder image repeated) give equal cosines; the lowest rows win."""
    rng = np.random.default_rng(3)
    seeds = _unit(rng.standard_normal((2, DIM)))
    data = _unit(rng.standard_normal((400, DIM)))
    data[100:300] = data[50]  # 201 identical rows
    seeds[0] = data[50]
    for chunk in (3, 64, 400):
        row, seed, cos = nb.search_shard(seeds, data, k=5, min_cosine=0.5, chunk_rows=chunk)
        assert row[seed == 0].tolist() == [50, 100, 101, 102, 103]
        assert len(set(cos[seed == 0].tolist())) == 1


def test_float16_and_float32_agree() -> None:
    data, seeds, _ = planted()
    a = nb.search_shard(seeds, data, k=10, min_cosine=0.8)
    b = nb.search_shard(seeds, data.astype(np.float32), k=10, min_cosine=0.8)
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x, y)


def test_memory_mapped_float16_npy(tmp_path: Path) -> None:
    data, seeds, truth = planted(n=2000, n_seeds=4)
    np.save(tmp_path / "img_emb_0000.npy", data)
    emb = np.load(tmp_path / "img_emb_0000.npy", mmap_mode="r")
    row, seed, _ = nb.search_shard(seeds, emb, k=100, min_cosine=0.9, chunk_rows=300)
    assert set(zip(seed.tolist(), row.tolist(), strict=True)) == {
        (s, r) for s, rs in truth.items() for r in rs
    }


def test_merge_across_shards_equals_search_over_the_concatenation() -> None:
    data, seeds, _ = planted(n=3000)
    cuts = [0, 1000, 1001, 2500, 3000]
    shards = [data[a:b] for a, b in itertools.pairwise(cuts)]
    for k, min_cosine in ((3, 0.9), (50, 0.9), (4, -1.0)):
        params = NeighbourParams(k=k, min_cosine=min_cosine)
        merged = nb.search_exact(seeds, shards, params)
        whole_row, whole_seed, whole_cos = nb.search_shard(seeds, data, k, min_cosine)
        offsets = np.array(cuts[:-1])
        global_row = offsets[merged.shard] + merged.row
        got = sorted(zip(merged.seed.tolist(), global_row.tolist(), merged.cosine.tolist(), strict=True))
        want = sorted(zip(whole_seed.tolist(), whole_row.tolist(), whole_cos.tolist(), strict=True))
        assert got == want


def test_k_is_respected_per_seed() -> None:
    data, seeds, _ = planted(per_seed=12)
    for k in (1, 5, 11):
        hits = nb.search_exact(seeds, [data[:2500], data[2500:]], NeighbourParams(k=k, min_cosine=0.9))
        counts = np.bincount(hits.seed, minlength=SEEDS)
        assert (counts == k).all(), counts
        # and they are the best k: each seed's cosines are sorted descending
        for s in range(SEEDS):
            c = hits.cosine[hits.seed == s]
            assert (np.diff(c) <= 0).all()


def test_zero_nan_and_inf_rows_are_never_neighbours_and_are_counted() -> None:
    data, seeds, _truth = planted(n=2000, n_seeds=4)
    data = data.copy()
    bad = [0, 5, 17, 1999]
    data[0] = 0
    data[5, 3] = np.nan
    data[17, 0] = np.inf
    data[1999] = np.nan
    data[20:30] = np.nan
    bad += list(range(20, 30))
    row, _seed, cos, invalid = nb.search_shard_counted(seeds, data, k=100, min_cosine=-1.0, chunk_rows=64)
    assert invalid == len(bad)
    assert not set(row.tolist()) & set(bad)
    assert np.isfinite(cos).all()
    hits = nb.search(seeds, [data], NeighbourParams(k=100, min_cosine=-1.0))
    assert hits.invalid_rows == len(bad)
    assert not set(hits.row.tolist()) & set(bad)


def test_zero_rows_ignored_even_when_min_cosine_is_zero() -> None:
    seeds = np.eye(1, DIM, dtype=np.float32)
    data = np.zeros((10, DIM), dtype=np.float16)
    data[3, 1] = 1.0  # orthogonal: cosine exactly 0
    row, _, cos = nb.search_shard(seeds, data, k=10, min_cosine=0.0)
    assert row.tolist() == [3] and cos.tolist() == [0.0]


def test_invalid_seeds_find_nothing_and_are_counted() -> None:
    data, seeds, _truth = planted(n=2000, n_seeds=4)
    seeds = seeds.copy()
    seeds[1] = 0
    seeds[2, 0] = np.nan
    hits = nb.search(seeds, [data], NeighbourParams(k=100, min_cosine=-1.0))
    assert set(hits.seed.tolist()) == {0, 3}
    assert hits.invalid_seeds == 2


def test_dimension_mismatch_is_refused_naming_the_shard(tmp_path: Path) -> None:
    data, seeds, _ = planted(n=100, n_seeds=2)
    np.save(tmp_path / "img_emb_0001.npy", np.zeros((10, DIM + 1), np.float16))
    odd = np.load(tmp_path / "img_emb_0001.npy", mmap_mode="r")
    with pytest.raises(ExpungeError) as err:
        nb.search(seeds, [data, odd], NeighbourParams())
    assert "shard 1" in str(err.value) and "img_emb_0001.npy" in str(err.value)
    assert "65" in err.value.message and "64" in err.value.message
    with pytest.raises(ExpungeError, match="shard 1"):
        nb.search_approximate(seeds, [data, odd], NeighbourParams())
    with pytest.raises(ExpungeError, match="dimension"):
        nb.search_shard(seeds, data[:, :10], 5, 0.9)
    with pytest.raises(ExpungeError, match="2-D"):
        nb.search(seeds[0], [data], NeighbourParams())


def test_approximate_recall_against_exact_on_planted_data() -> None:
    data, seeds, _truth = planted(n=5000, n_seeds=30)
    shards = [data[:2000], data[2000:4500], data[4500:]]
    params = NeighbourParams(k=10, min_cosine=0.9)
    exact = nb.search_exact(seeds, shards, params)
    approx = nb.search_approximate(seeds, shards, params)
    r = nb.recall(approx, exact)
    assert r >= 0.9, f"approximate recall {r:.3f} against exact ({len(exact)} exact pairs)"
    # what it does find carries the exact cosine, and nothing below the threshold
    exact_cos = {
        (s, sh, rw): c
        for s, sh, rw, c in zip(
            exact.seed.tolist(), exact.shard.tolist(), exact.row.tolist(), exact.cosine.tolist(), strict=True
        )
    }
    for s, sh, rw, c in zip(
        approx.seed.tolist(), approx.shard.tolist(), approx.row.tolist(), approx.cosine.tolist(), strict=True
    ):
        assert c >= np.float32(0.9)
        assert exact_cos.get((s, sh, rw), c) == c


def test_search_switches_to_approximate_beyond_exact_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    data, seeds, _ = planted(n=1000, n_seeds=3)
    called: list[str] = []

    def fake(*args: object) -> Hits:
        called.append("approx")
        return nb.merge([], 1)

    monkeypatch.setattr(nb, "search_approximate", fake)
    nb.search(seeds, [data], NeighbourParams(exact_limit=3000))
    assert called == []
    nb.search(seeds, [data], NeighbourParams(exact_limit=2999))
    assert called == ["approx"]


def test_search_stays_exact_when_the_index_would_not_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    data, seeds, _ = planted(n=1000, n_seeds=3)
    monkeypatch.setattr(nb, "INDEX_BYTES_LIMIT", 1000 * DIM * 2 - 1)

    def fail(*args: object) -> Hits:
        raise AssertionError("approximate index built beyond INDEX_BYTES_LIMIT")

    monkeypatch.setattr(nb, "search_approximate", fail)
    hits = nb.search(seeds, [data], NeighbourParams(exact_limit=0))
    assert len(hits) == 3 * PER_SEED


def test_empty_shards_and_no_seeds() -> None:
    data, seeds, _ = planted(n=300, n_seeds=2)
    empty = data[:0]
    row, seed, cos = nb.search_shard(seeds, empty, k=5, min_cosine=0.9)
    assert row.size == seed.size == cos.size == 0
    assert len(nb.search(seeds[:0], [data, empty], NeighbourParams())) == 0
    hits = nb.search(seeds, [empty, data, empty], NeighbourParams(k=100))
    assert set(hits.shard.tolist()) == {1} and len(hits) == 2 * PER_SEED
    assert len(nb.search_approximate(seeds, [empty], NeighbourParams())) == 0
    assert len(nb.search_approximate(seeds[:0], [data], NeighbourParams())) == 0


def test_approximate_on_tiny_or_invalid_data_is_quiet_and_correct(capfd: pytest.CaptureFixture[str]) -> None:
    data, seeds, _ = planted(n=120, n_seeds=2, per_seed=3)
    params = NeighbourParams(k=10, min_cosine=0.9)
    approx = nb.search_approximate(seeds, [data[:50], data[50:]], params)
    exact = nb.search_exact(seeds, [data[:50], data[50:]], params)
    assert nb.recall(approx, exact) == 1.0 and len(approx) == len(exact) == 6
    bad = np.full((100, DIM), np.nan, dtype=np.float16)
    hits = nb.search_approximate(seeds, [bad, np.zeros((5, DIM), np.float32)], params)
    assert len(hits) == 0 and hits.invalid_rows == 105
    assert "WARNING" not in capfd.readouterr().err


def test_missing_faiss_gives_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    data, seeds, _ = planted(n=500, n_seeds=2)
    monkeypatch.setitem(sys.modules, "faiss", None)
    with pytest.raises(ExpungeError, match=r"needs faiss: pip install 'expunge\[triage\]'"):
        nb.search_approximate(seeds, [data], NeighbourParams())
    # exact search never needs it
    assert len(nb.search(seeds, [data], NeighbourParams(k=3))) == 6


def test_module_does_not_import_faiss() -> None:
    import subprocess

    code = "import sys, expunge.signals.neighbour; print('faiss' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_recall_and_max_cosine_per_row() -> None:
    exact = nb.merge(
        [
            (0, np.array([1, 2]), np.array([0, 0]), np.array([0.95, 0.91], np.float32)),
            (1, np.array([2]), np.array([1]), np.array([0.99], np.float32)),
        ],
        k=10,
    )
    approx = nb.merge([(1, np.array([2]), np.array([1]), np.array([0.99], np.float32))], k=10)
    assert nb.recall(approx, exact) == pytest.approx(1 / 3)
    assert nb.recall(approx, nb.merge([], 10)) == 1.0
    both = nb.merge([(0, np.array([3, 3]), np.array([0, 1]), np.array([0.92, 0.97], np.float32))], k=10)
    per_row = nb.max_cosine_per_row(both, shard=0, n_rows=5)
    assert per_row.dtype == np.float64
    assert per_row[3] == pytest.approx(0.97) and np.isneginf(per_row[[0, 1, 2, 4]]).all()
    assert np.isneginf(nb.max_cosine_per_row(both, shard=1, n_rows=5)).all()
    with pytest.raises(ExpungeError, match="beyond"):
        nb.max_cosine_per_row(both, shard=0, n_rows=3)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"k": 0},
        {"k": True},
        {"min_cosine": 1.5},
        {"min_cosine": float("nan")},
        {"nprobe": 0},
        {"exact_limit": -1},
    ],
)
def test_bad_params_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ExpungeError, match="neighbour"):
        NeighbourParams(**kwargs)  # type: ignore[arg-type]


def test_merge_refuses_a_shard_given_twice() -> None:
    part = (0, np.array([1]), np.array([0]), np.array([0.95], np.float32))
    with pytest.raises(ValueError, match="more than one part"):
        nb.merge([part, part], k=5)


_part = st.tuples(
    st.lists(st.integers(0, 40), min_size=0, max_size=25, unique=True),
    st.lists(st.integers(0, 3), min_size=25, max_size=25),
    st.lists(st.sampled_from([0.9, 0.925, 0.95, 1.0]), min_size=25, max_size=25),
)


@settings(max_examples=60, deadline=None)
@given(parts=st.lists(_part, min_size=0, max_size=5), k=st.integers(1, 6), data=st.data())
def test_merge_is_order_independent(
    parts: list[tuple[list[int], list[int], list[float]]], k: int, data: st.DataObject
) -> None:
    built = [
        (
            i,
            np.array(rows, np.int64),
            np.array(seeds[: len(rows)], np.int32),
            np.array(cos[: len(rows)], np.float32),
        )
        for i, (rows, seeds, cos) in enumerate(parts)
    ]
    shuffled = data.draw(st.permutations(built))
    a, b = nb.merge(built, k), nb.merge(list(shuffled), k)
    assert as_tuple(a) == as_tuple(b)
    assert (np.bincount(a.seed, minlength=4) <= k).all() if len(a) else True
