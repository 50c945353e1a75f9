"""Perceptual matching: image hashes within a Hamming distance of a bank's (PDQ), behind :class:`Matcher`.

The search itself is :class:`expunge.matchers.hamming.HammingIndex`; this module picks what is searched
(decoded members at or above the quality floor, optionally their 7 other orientations) and names rows.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from expunge.features.base import DIHEDRAL
from expunge.index.images import quality_mask
from expunge.matchers.base import Findings, Matcher, Probe, images_of, member_rows
from expunge.matchers.exact import fixed_to_numpy
from expunge.matchers.hamming import HammingIndex

_INDEXES: dict[int, tuple[np.ndarray, HammingIndex]] = {}
_KEEP = 4


def _index(probe: Probe) -> HammingIndex:
    """A whole bank's index is built once per worker and bank version (the bank's values array is
    itself cached per version), and reused for every shard; a delta's index is built for the call."""
    if probe.whole is None:
        return HammingIndex.build(probe.values)
    values = probe.whole.values
    hit = _INDEXES.get(id(values))
    if hit is None or hit[0] is not values:
        while len(_INDEXES) >= _KEEP:
            _INDEXES.pop(next(iter(_INDEXES)))
        hit = (values, HammingIndex.build(values))
        _INDEXES[id(values)] = hit
    return hit[1]


class HammingMatcher(Matcher):
    def find(self, probe: Probe) -> Findings:
        if probe.threshold is None:
            raise ValueError(f"bank {probe.bank!r} has no Hamming threshold")
        images = images_of(probe)
        # One line per member (every member of every sample, and data outside every sample with row -1):
        # a match on any member names its sample's row.
        sample_rows = images.column("row").to_numpy()
        index = _index(probe)
        ok = np.flatnonzero(quality_mask(images, probe.quality_floor))
        hashes, _ = fixed_to_numpy(images.column(probe.feature.column).combine_chunks(), probe.width)
        queries, owners = [hashes[ok]], [ok]
        if probe.dihedral and DIHEDRAL.column in images.column_names:
            dih = images.column(DIHEDRAL.column).combine_chunks().take(pa.array(ok))
            lengths = dih.value_lengths().fill_null(0).to_numpy(zero_copy_only=False)
            flat, _ = fixed_to_numpy(dih.flatten(), probe.width)
            queries.append(flat)
            owners.append(np.repeat(ok, lengths))
        q = np.concatenate(queries)
        owner = np.concatenate(owners)
        qi, bi, dist = index.search(q, threshold=int(probe.threshold))
        rows = member_rows(sample_rows[owner[qi]], probe)
        return Findings(rows, probe.values[bi], dist.astype(np.float32))
