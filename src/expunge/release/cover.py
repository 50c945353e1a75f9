"""Cover sets: hide each flagged row among at least K removed rows in the public diff of two releases.

Anyone can diff the old release against the new one and see which rows went. If only flagged rows
went, the diff is a list of flagged URLs. So, with ``--cover K``, the removed set is padded until it
holds at least K rows per flagged row, all under one public reason: first with rows that go anyway
(quarantined rows), then with dead links (an img2dataset ``status`` other than ``success``), then with
a random sample of other rows. The draw is seeded by the store's secret key, so outsiders cannot
reproduce it to subtract the cover. The manifest states K and how the cover was drawn; the per-row
reasons stay private in the store.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

import numpy as np

POOLS = ("quarantined", "dead_link", "random")


@dataclass
class ShardCandidates:
    rows: int
    flagged: np.ndarray  # sorted row indices with findings
    quarantined: np.ndarray  # sorted row indices quarantined (not flagged)
    dead: np.ndarray  # sorted row indices whose download status is not success (not flagged/quarantined)


@dataclass
class CoverPlan:
    k: int
    flagged: int
    by_pool: dict[str, int] = field(default_factory=dict)
    rows: dict[str, list[int]] = field(default_factory=dict)  # shard → extra rows to remove as cover

    def public(self) -> dict[str, object]:
        return {
            "k": self.k,
            "rule": "every removed row has the same public reason; removed rows >= k x flagged rows",
            "drawn_from": list(POOLS),
            "seed": "keyed by the release holder's secret (not reproducible from public data)",
            "removed_rows_by_pool": dict(sorted(self.by_pool.items())),
        }


def plan_cover(k: int, shards: dict[str, ShardCandidates], key: bytes, dataset_id: str) -> CoverPlan:
    flagged = sum(len(c.flagged) for c in shards.values())
    quarantined = sum(len(c.quarantined) for c in shards.values())
    plan = CoverPlan(k, flagged, {"quarantined": quarantined}, {name: [] for name in shards})
    need = max(0, k * flagged - flagged - quarantined) if flagged else 0
    seed = int.from_bytes(hmac.new(key, b"cover:" + dataset_id.encode(), hashlib.sha256).digest()[:8], "big")
    rng = np.random.default_rng(seed)
    names = sorted(shards)
    # Dead links first: they leave the release at no cost to anyone.
    dead = [(n, int(r)) for n in names for r in shards[n].dead]
    take = min(need, len(dead))
    if take:
        for i in sorted(rng.choice(len(dead), size=take, replace=False).tolist()):
            plan.rows[dead[i][0]].append(dead[i][1])
    plan.by_pool["dead_link"] = take
    need -= take
    # Then a uniform sample of every other row, drawn without listing them all.
    if need:
        taken = {n: set(plan.rows[n]) for n in names}
        eligible = []
        for n in names:
            c = shards[n]
            mask = np.ones(c.rows, dtype=bool)
            for arr in (c.flagged, c.quarantined):
                mask[arr] = False
            if taken[n]:
                mask[list(taken[n])] = False
            eligible.append(np.flatnonzero(mask))
        counts = np.array([len(e) for e in eligible], dtype=np.int64)
        total = int(counts.sum())
        draw = min(need, total)
        picks = np.sort(rng.choice(total, size=draw, replace=False)) if draw else np.empty(0, dtype=np.int64)
        bounds = np.concatenate(([0], np.cumsum(counts)))
        for i, n in enumerate(names):
            lo, hi = np.searchsorted(picks, [bounds[i], bounds[i + 1]])
            plan.rows[n].extend(eligible[i][picks[lo:hi] - bounds[i]].tolist())
        plan.by_pool["random"] = draw
    else:
        plan.by_pool["random"] = 0
    for n in names:
        plan.rows[n] = sorted(plan.rows[n])
    return plan
