"""The sorted copy's order comes from a quicksort plus a tie fix now: the same file as the stable sort.

The file is cached next to a shard's feature and compared by nobody, but a release must not depend on
which sort built it; equal prefixes (repeated values, values sharing 8 bytes) keep their rows ascending.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from expunge.matchers import sorted_index
from expunge.matchers.exact import fixed_to_numpy, prefix64
from expunge.matchers.sorted_index import stable_order


def _reference_file(column: pa.Array, width: int) -> bytes:
    """What ``write`` stored before: a stable argsort of the prefixes, fields filled one by one."""
    values, valid = fixed_to_numpy(column, width)
    rows = np.flatnonzero(valid)
    values = values[rows]
    prefix = prefix64(values, width)
    order = np.argsort(prefix, kind="stable")
    table = np.empty(len(order), dtype=[("p", "<u8"), ("v", f"S{width}"), ("r", "<i8")])
    table["p"] = prefix[order]
    table["v"] = values[order]
    table["r"] = rows[order]
    out = io.BytesIO()
    np.save(out, table, allow_pickle=False)
    return out.getvalue()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 2**64 - 1) | st.sampled_from([0, 1, 2**63, 2**64 - 1]), max_size=80))
def test_stable_order_is_the_stable_argsort(keys: list[int]) -> None:
    arr = np.array(keys, dtype=np.uint64)
    assert stable_order(arr).tolist() == np.argsort(arr, kind="stable").tolist()


@pytest.mark.parametrize("distinct", [1, 3, 1000, 1 << 40])
def test_stable_order_with_many_ties(distinct: int) -> None:
    keys = np.random.default_rng(distinct).integers(0, distinct, 20_000, dtype=np.uint64)
    assert np.array_equal(stable_order(keys), np.argsort(keys, kind="stable"))


_WIDTH = 16
_SHARED = st.sampled_from([b"\x00" * 8, b"\xff" * 8, b"\x80" + b"\x00" * 7])
_VALUE = st.one_of(
    st.binary(min_size=_WIDTH, max_size=_WIDTH),
    st.tuples(_SHARED, st.binary(min_size=8, max_size=8)).map(b"".join),  # a prefix shared with others
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_write_stores_the_bytes_the_stable_sort_stored(
    tmp_path_factory: pytest.TempPathFactory, data
) -> None:  # type: ignore[no-untyped-def]
    values = data.draw(st.lists(st.one_of(st.none(), _VALUE), max_size=60))
    present = [v for v in values if v is not None]
    if present:  # repeated values: their rows must stay ascending
        values += data.draw(st.lists(st.sampled_from(present), max_size=20))
    values = data.draw(st.permutations(values))
    column = pa.array(values, pa.binary(_WIDTH))
    if data.draw(st.booleans()) and len(column) > 2:
        column = column.slice(1)  # an array with an offset into its buffers
    feature = tmp_path_factory.mktemp("order") / "url_raw_md5.parquet"
    feature.write_bytes(b"feature")
    sorted_index.write(feature, column, _WIDTH)
    (copy,) = Path(feature.parent).glob("*.sorted-*.npy")
    assert copy.read_bytes() == _reference_file(column, _WIDTH)
