"""Exact matching: SortedSet membership agrees with np.isin; match_column finds the right rows and values."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from expunge.matchers.exact import SortedSet, fixed_to_numpy, match_column, member

WIDTHS = (16, 20, 32)


def _rows(arr: np.ndarray) -> list[bytes]:
    """Exact bytes per value (numpy ``S`` scalars would drop trailing zero bytes)."""
    w = arr.dtype.itemsize
    raw = np.ascontiguousarray(arr).tobytes()
    return [raw[i : i + w] for i in range(0, len(raw), w)]


def _arr(values: list[bytes], width: int) -> np.ndarray:
    return np.array(values, dtype=f"S{width}") if values else np.empty(0, dtype=f"S{width}")


def _bank(values: list[bytes], width: int) -> SortedSet:
    return SortedSet.build(np.unique(_arr(values, width)))


def _reference(query: np.ndarray, bank_values: list[bytes]) -> np.ndarray:
    """Membership on exact Python bytes, independent of numpy's string semantics."""
    members = set(bank_values)
    return np.array([q in members for q in _rows(query)], dtype=bool)


def _random(rng: np.random.Generator, n: int, width: int) -> np.ndarray:
    return rng.integers(0, 256, size=(n, width), dtype=np.uint8).view(f"S{width}").reshape(n)


# ------------------------------------------------------------------------------------------------
# SortedSet.contains
# ------------------------------------------------------------------------------------------------


@st.composite
def _case(draw: st.DrawFn) -> tuple[int, list[bytes], list[bytes]]:
    """A bank and a query; values are built from a few shared 8-byte prefixes and tails to force
    prefix collisions, same-prefix non-members and values differing only in their last bytes."""
    width = draw(st.sampled_from(WIDTHS))
    prefixes = draw(
        st.lists(
            st.one_of(
                st.binary(min_size=8, max_size=8),
                st.sampled_from([b"\x00" * 8, b"\xff" * 8, b"\x80" + b"\x00" * 7, b"\x7f" + b"\xff" * 7]),
            ),
            min_size=1,
            max_size=4,
        )
    )
    tails = st.one_of(
        st.binary(min_size=width - 8, max_size=width - 8),
        st.sampled_from([b"\x00" * (width - 8), b"\xff" * (width - 8), b"\x00" * (width - 9) + b"\x01"]),
    )
    value = st.builds(lambda p, t: p + t, st.sampled_from(prefixes), tails) | st.binary(
        min_size=width, max_size=width
    )
    bank = draw(st.lists(value, max_size=60))
    query = draw(st.lists(value | st.sampled_from(bank) if bank else value, max_size=60))
    return width, bank, query


@settings(max_examples=200, deadline=None)
@given(case=_case())
def test_contains_equals_isin_with_shared_prefixes(case: tuple[int, list[bytes], list[bytes]]) -> None:
    width, bank_values, query_values = case
    bank = _bank(bank_values, width)
    query = _arr(query_values, width)
    got = bank.contains(query)
    assert got.dtype == np.bool_ and got.shape == (len(query_values),)
    np.testing.assert_array_equal(got, _reference(query, bank_values))
    np.testing.assert_array_equal(got, np.isin(query, np.unique(_arr(bank_values, width))))
    np.testing.assert_array_equal(member(query, np.unique(_arr(bank_values, width))), got)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    width=st.sampled_from(WIDTHS),
    n_bank=st.integers(0, 5000),
    n_query=st.integers(0, 3000),
    shared=st.integers(0, 300),
)
def test_contains_equals_isin_on_random_data(
    seed: int, width: int, n_bank: int, n_query: int, shared: int
) -> None:
    rng = np.random.default_rng(seed)
    bank_values = np.unique(_random(rng, n_bank, width))
    # Many values sharing one 8-byte prefix land in one bucket with equal prefixes.
    if shared:
        crowd = _random(rng, shared, width).view(np.uint8).reshape(shared, width)
        crowd[:, :8] = rng.integers(0, 256, 8, dtype=np.uint8)
        bank_values = np.unique(np.concatenate([bank_values, crowd.reshape(-1).view(f"S{width}")]))
    bank = SortedSet.build(bank_values)
    assert len(bank) == len(bank_values)
    picks = (
        bank_values[rng.integers(0, len(bank_values), n_query // 2)] if len(bank_values) else bank_values[:0]
    )
    near = picks.copy().view(np.uint8).reshape(len(picks), width)
    near[:, -1] ^= 1  # same prefix, not a member (almost always)
    query = np.concatenate([picks, near.reshape(-1).view(f"S{width}"), _random(rng, n_query // 2, width)])
    rng.shuffle(query)
    np.testing.assert_array_equal(bank.contains(query), np.isin(query, bank_values))


@pytest.mark.parametrize("width", WIDTHS)
def test_all_values_share_one_prefix(width: int) -> None:
    rng = np.random.default_rng(width)
    raw = _random(rng, 2000, width).view(np.uint8).reshape(2000, width)
    raw[:, :8] = 0x42
    values = np.unique(raw.reshape(-1).view(f"S{width}"))
    bank = SortedSet.build(values[::2])
    got = bank.contains(values)
    assert got.tolist() == [i % 2 == 0 for i in range(len(values))]


@pytest.mark.parametrize("width", WIDTHS)
def test_extreme_values_and_trailing_zero_bytes(width: int) -> None:
    members = [
        b"\x00" * width,
        b"\xff" * width,
        b"\x01" + b"\x00" * (width - 1),
        b"ab" + b"\x00" * (width - 2),
    ]
    others = [
        b"\x00" * (width - 1) + b"\x01",
        b"\xff" * (width - 1) + b"\xfe",
        b"ab" + b"\x00" * (width - 3) + b"\x01",
        b"\x7f" + b"\xff" * (width - 1),
    ]
    bank = _bank(members, width)
    query = _arr(members + others, width)
    assert bank.contains(query).tolist() == [True] * 4 + [False] * 4


@pytest.mark.parametrize("width", WIDTHS)
def test_empty_bank_and_empty_query(width: int) -> None:
    empty = SortedSet.build(np.empty(0, dtype=f"S{width}"))
    assert len(empty) == 0
    query = _random(np.random.default_rng(0), 10, width)
    assert empty.contains(query).tolist() == [False] * 10
    assert empty.contains(query[:0]).shape == (0,)
    full = SortedSet.build(np.unique(query))
    out = full.contains(np.empty(0, dtype=f"S{width}"))
    assert out.shape == (0,) and out.dtype == np.bool_


def test_query_slices_and_non_contiguous_views() -> None:
    rng = np.random.default_rng(7)
    values = np.unique(_random(rng, 500, 20))
    bank = SortedSet.build(values[::3])
    query = values[1::2]  # a strided view
    np.testing.assert_array_equal(bank.contains(query), np.isin(query, values[::3]))


# ------------------------------------------------------------------------------------------------
# match_column
# ------------------------------------------------------------------------------------------------


def _values(seed: int, n: int, width: int) -> list[bytes]:
    return _rows(_random(np.random.default_rng(seed), n, width))


@pytest.mark.parametrize("width", WIDTHS)
def test_match_fixed_size_binary_with_nulls(width: int) -> None:
    v = _values(1, 8, width)
    bank = _bank([v[1], v[4], v[6], v[7]], width)
    column = pa.array([v[0], v[1], None, v[3], v[4], None, v[1], v[5]], pa.binary(width))
    rows, values = match_column(column, width, bank)
    assert rows.tolist() == [1, 4, 6]
    assert values.dtype == np.dtype(f"S{width}")
    assert _rows(values) == [v[1], v[4], v[1]]


@pytest.mark.parametrize("width", WIDTHS)
def test_null_slots_never_match_even_if_their_bytes_would(width: int) -> None:
    v = _values(2, 4, width)
    data = pa.py_buffer(b"".join(v))
    validity = pa.py_buffer(bytes([0b1010]))  # rows 1 and 3 valid
    column = pa.Array.from_buffers(pa.binary(width), 4, [validity, data], null_count=2)
    rows, values = match_column(column, width, _bank(v, width))
    assert rows.tolist() == [1, 3]
    assert _rows(values) == [v[1], v[3]]


@pytest.mark.parametrize("width", WIDTHS)
def test_match_sliced_column(width: int) -> None:
    v = _values(3, 10, width)
    column = pa.array(v, pa.binary(width)).slice(3, 5)  # rows 3..7 of the original
    rows, values = match_column(column, width, _bank([v[2], v[4], v[7], v[8]], width))
    assert rows.tolist() == [1, 4]
    assert _rows(values) == [v[4], v[7]]


@pytest.mark.parametrize("width", WIDTHS)
def test_match_all_null_and_empty_columns(width: int) -> None:
    bank = _bank(_values(4, 3, width), width)
    for column in (
        pa.nulls(5, pa.binary(width)),
        pa.array([], pa.binary(width)),
        pa.array([None, None], pa.list_(pa.binary(width))),
        pa.array([], pa.list_(pa.binary(width))),
    ):
        rows, values = match_column(column, width, bank)
        assert rows.tolist() == [] and len(values) == 0


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("list_type", [pa.list_, pa.large_list])
def test_match_list_column(width: int, list_type: object) -> None:
    v = _values(5, 10, width)
    bank = _bank([v[0], v[3], v[5], v[9]], width)
    column = pa.array(
        [
            [v[1], v[0], v[2]],  # row 0: one hit
            None,  # row 1: null list
            [],  # row 2: empty list
            [v[3], None, v[5], v[3]],  # row 3: three hits, a null element, a repeat
            [None],  # row 4
            [v[4], v[6]],  # row 5: no hit
            [v[9]],  # row 6
        ],
        list_type(pa.binary(width)),  # type: ignore[operator]
    )
    rows, values = match_column(column, width, bank)
    assert rows.tolist() == [0, 3, 3, 3, 6]
    assert _rows(values) == [v[0], v[3], v[5], v[3], v[9]]
    # A slice keeps its own row numbering.
    rows, values = match_column(column.slice(3), width, bank)
    assert rows.tolist() == [0, 0, 0, 3]
    assert _rows(values) == [v[3], v[5], v[3], v[9]]


def test_list_null_backed_by_values_does_not_match() -> None:
    width = 16
    v = _values(6, 3, width)
    flat = pa.array(v, pa.binary(width))
    offsets = pa.array([0, 1, 2, 3], pa.int32())
    # Row 1 is null but its offsets still cover v[1], which is in the bank.
    column = pa.ListArray.from_arrays(offsets, flat, mask=pa.array([False, True, False]))
    rows, values = match_column(column, width, _bank([v[1], v[2]], width))
    assert rows.tolist() == [2]
    assert _rows(values) == [v[2]]


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    width=st.sampled_from(WIDTHS),
    n=st.integers(0, 300),
    multi=st.booleans(),
)
def test_match_column_agrees_with_python(seed: int, width: int, n: int, multi: bool) -> None:
    rng = np.random.default_rng(seed)
    pool = _rows(np.unique(_random(rng, 40, width)))
    bank_values = [p for p in pool if rng.random() < 0.3]
    bank = _bank(bank_values, width)

    def value() -> bytes | None:
        return None if rng.random() < 0.1 else pool[int(rng.integers(0, len(pool)))]

    expected_rows: list[int] = []
    expected_values: list[bytes] = []
    cells: list[object] = []
    for i in range(n):
        if multi:
            cell = None if rng.random() < 0.1 else [value() for _ in range(int(rng.integers(0, 5)))]
            items = cell or []
        else:
            cell = value()
            items = [cell]
        cells.append(cell)
        for item in items:
            if item is not None and item in bank_values:
                expected_rows.append(i)
                expected_values.append(item)
    column = pa.array(cells, pa.list_(pa.binary(width)) if multi else pa.binary(width))
    rows, values = match_column(column, width, bank)
    assert rows.tolist() == expected_rows
    assert _rows(values) == expected_values


def test_fixed_to_numpy_is_zero_copy_and_exact() -> None:
    v = _values(8, 5, 20)
    arr = pa.array([v[0], None, v[2], v[3], v[4]], pa.binary(20)).slice(1)
    values, valid = fixed_to_numpy(arr, 20)
    assert valid.tolist() == [False, True, True, True]
    assert _rows(values)[1:] == [v[2], v[3], v[4]]
    assert not values.flags.owndata
    empty_values, empty_valid = fixed_to_numpy(pa.array([], pa.binary(20)), 20)
    assert empty_values.dtype == np.dtype("S20") and len(empty_values) == len(empty_valid) == 0
