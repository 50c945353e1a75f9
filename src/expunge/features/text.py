"""Text columns as Arrow: which rows are UTF-8, found without a Python call per row."""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def utf8_invalid_mask(raw: pa.Array) -> np.ndarray:
    """Rows whose bytes are not UTF-8, found by bisection with Arrow's C validator.

    The common case is one validation of the whole batch. A few bad rows cost a few validations of
    shrinking slices each, never a Python call per row.
    """
    text_type = pa.large_string() if pa.types.is_large_binary(raw.type) else pa.string()
    bad = np.zeros(len(raw), dtype=bool)
    pending = [(0, len(raw))]
    while pending:
        start, length = pending.pop()
        if length == 0:
            continue
        try:
            raw.slice(start, length).view(text_type).validate(full=True)
            continue
        except pa.ArrowInvalid:
            pass
        if length == 1:
            bad[start] = True
            continue
        half = length // 2
        pending.append((start, half))
        pending.append((start + half, length - half))
    return bad
