"""Keep-list matching: what is *absent* from the bank is found (a derivative following a release)."""

from __future__ import annotations

import numpy as np

from expunge.index.build import read_quarantine
from expunge.matchers.base import Findings, Matcher, Probe, feature_column
from expunge.matchers.exact import SortedSet, fixed_to_numpy


class KeepMatcher(Matcher):
    # A row is found because a value is missing: a delta of added values cannot say which rows that
    # changes, so a keep-list is always matched in full.
    incremental = False

    def find(self, probe: Probe) -> Findings:
        column, line_rows = feature_column(probe)
        if line_rows is not None or probe.feature.multi:
            raise ValueError(f"a keep-list needs one value per row, not feature {probe.feature.name}")
        keep = probe.whole if probe.whole is not None else SortedSet.build(probe.values)
        own, valid = fixed_to_numpy(column, probe.width)
        absent = ~keep.contains(own) & valid
        # Rows that cannot be checked (null, empty, not a web URL) are quarantined for that reason; a
        # keep-list finding would only relabel them.
        quarantined = read_quarantine(probe.index_dir)
        if len(quarantined) >= len(absent):
            absent &= quarantined[: len(absent)] == 0
        return Findings(np.flatnonzero(absent), own[absent])
