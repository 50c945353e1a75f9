"""Cover sets: hide each flagged row among at least K removed rows in every public diff of releases.

Anyone can diff the old release against the new one and see which rows went. If only flagged rows
went, the diff is a list of flagged URLs. With ``--cover K`` other rows go too, chosen so that no diff
(nor any intersection or difference of diffs) singles a flagged row out:

- Every row has a secret, stable value ``u(row)``: a keyed pseudo-random function of (store secret,
  dataset, shard, row), uniform over 64 bits. The cover is every row with ``u`` below a threshold.
  The threshold is kept in the store and only rises, so each release's cover contains the previous
  one's: two releases' removals never differ by a fresh draw that an intersection could undo.
- Each release raises the threshold just enough that the rows it newly removes hold at least K - 1
  cover rows per newly exposed flagged row. The removals of a sequence of releases are then nested
  bands, each of which holds >= K indistinguishable rows per flagged row, and every set an outsider can
  form from the diffs is a union of such bands.
- Only rows an outsider cannot explain count: rows quarantined for a public reason (a malformed URL,
  an image that does not decode) and dead links (an img2dataset ``status`` other than ``success``) are
  visible as such in the old release, so they may be removed but never count toward K.

Nothing about the draw is published beyond K and the rule; no counts by pool, no threshold.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from expunge import atomic
from expunge.arrow import read_parquet
from expunge.errors import ExpungeError
from expunge.formats import Shard
from expunge.index.build import read_quarantine
from expunge.index.images import IMAGES_FILE

_STATE_FORMAT = b"expunge-cover/1"


@dataclass
class ShardCandidates:
    rows: int
    flagged: np.ndarray  # sorted row indices with findings
    quarantined: np.ndarray  # rows that go anyway, for a reason anyone can see (bad URL, bad image)
    dead: np.ndarray  # dead links (status not success): kept unless drawn, never counted


@dataclass(frozen=True)
class CandidatesTask:
    """One shard's part of the cover plan, run on the executor beside the shard's data."""

    shard: Shard
    index_dir: str
    findings_path: str
    banks: tuple[str, ...]  # the banks whose findings are flagged rows
    url_scope: bool
    image_scope: bool


def shard_candidates(task: CandidatesTask) -> tuple[str, ShardCandidates]:
    """Where one shard's flagged rows are, which rows go anyway for a public reason, and which links
    are dead: row indices only, from the store's index and findings and the metadata's status column."""
    index_dir, shard = Path(task.index_dir), task.shard
    q = read_quarantine(index_dir)
    path = Path(task.findings_path)
    findings = read_parquet(path, columns=["row", "bank"]) if path.is_file() else None
    flagged = np.zeros(0, dtype=np.int64)
    if findings is not None and findings.num_rows:
        mine = findings.filter(pc.is_in(findings.column("bank"), pa.array(sorted(task.banks))))
        flagged = np.unique(mine.column("row").to_numpy())
    quarantined = np.flatnonzero(q) if task.url_scope else np.zeros(0, dtype=np.int64)
    if task.image_scope and (index_dir / IMAGES_FILE).is_file():
        images = read_parquet(index_dir / IMAGES_FILE, columns=["row", "error"])
        bad = images.filter(images.column("error").is_valid()).column("row").to_numpy()
        quarantined = np.union1d(quarantined, bad)
    quarantined = np.setdiff1d(quarantined, flagged)
    dead = np.zeros(0, dtype=np.int64)
    if shard.metadata and "status" in shard.handler.column_names(shard):
        status = np.concatenate(
            [c.to_numpy(zero_copy_only=False) for c in shard.handler.iter_column(shard, "status")]
            or [np.zeros(0)]
        )
        dead = np.setdiff1d(np.flatnonzero(status != "success"), np.union1d(flagged, quarantined))
    return shard.name, ShardCandidates(len(q), flagged, quarantined, dead)


@dataclass
class CoverState:
    """What earlier covered releases of this dataset did: the threshold reached and the flagged rows
    they already hid (a row flagged again later is not newly exposed)."""

    threshold: int = 0
    covered: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class CoverPlan:
    k: int
    flagged: int
    threshold: int
    newly_exposed: int
    rows: dict[str, list[int]] = field(default_factory=dict)  # shard → extra rows to remove as cover
    state: CoverState = field(default_factory=CoverState)  # what to store once the release is written

    def public(self) -> dict[str, object]:
        return {
            "k": self.k,
            "rule": (
                "every removed row has the same public reason; in this release and in its difference "
                "from any earlier covered release, each flagged row is among >= k removed rows that "
                "nobody can tell apart from it"
            ),
            "drawn": (
                "rows whose secret keyed value lies below a threshold that only rises across releases, "
                "so each release's cover contains the previous one's; quarantined rows and dead links "
                "may go too but do not count toward k"
            ),
            "seed": "keyed by the release holder's secret (not reproducible from public data)",
        }


def row_values(key: bytes, dataset_id: str, shard: str, rows: int) -> np.ndarray:
    """u(row) for every row of a shard, as uint64: a keyed PRF of (dataset, shard, row).

    The shard's key is HMAC-SHA256(secret, dataset, shard); u(row) is the first 8 bytes of block
    ``row`` of that key's AES-256-CTR keystream (AES as a PRF of the row index). Vectorised: a
    billion rows take seconds, where a Python HMAC per row would take an hour.
    """
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    msg = b"expunge-cover-u\x00" + dataset_id.encode("utf-8") + b"\x00" + shard.encode("utf-8")
    shard_key = hmac.new(key, msg, hashlib.sha256).digest()
    stream = Cipher(algorithms.AES(shard_key), modes.CTR(bytes(16))).encryptor().update(bytes(16 * rows))
    return np.frombuffer(stream, dtype="<u8")[::2].astype(np.uint64)


def load_state(path: Path) -> CoverState:
    if not path.is_file():
        return CoverState()
    table = read_parquet(path)
    meta = table.schema.metadata or {}
    if meta.get(b"format") != _STATE_FORMAT:
        raise ExpungeError("cover state is not in a format this expunge reads; refusing to guess", path)
    threshold = int(json.loads(meta[b"threshold"]))
    covered: dict[str, np.ndarray] = {}
    for name in sorted(set(table.column("shard").to_pylist())):
        sel = table.filter(pc.equal(table.column("shard"), name))
        covered[name] = np.unique(sel.column("row").to_numpy())
    return CoverState(threshold, covered)


def save_state(path: Path, state: CoverState, tmp_dir: Path | None) -> None:
    """One file, one rename: the threshold and the covered rows commit together."""
    names = sorted(state.covered)
    table = pa.table(
        {
            "shard": pa.array([n for n in names for _ in state.covered[n]], pa.string()),
            "row": pa.array(
                np.concatenate([state.covered[n] for n in names]) if names else np.zeros(0, np.int64),
                pa.int64(),
            ),
        }
    ).replace_schema_metadata({"format": _STATE_FORMAT, "threshold": json.dumps(state.threshold)})
    with atomic.atomic_path(path, tmp_dir) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def plan_cover(
    k: int,
    shards: dict[str, ShardCandidates],
    key: bytes,
    dataset_id: str,
    previous: CoverState | None = None,
) -> CoverPlan:
    """The cover for this release, monotone over ``previous``.

    Newly exposed flagged rows are those no earlier covered release removed (as flagged or as cover).
    The threshold rises to the smallest value that puts (k - 1) x newly exposed countable rows in the
    new band [old threshold, new threshold). Too few rows to hide them: refused, never a thinner cover.
    """
    if k < 1:
        raise ExpungeError(f"--cover needs K >= 1 (got {k})")
    prev = previous or CoverState()
    names = sorted(shards)
    values = {n: row_values(key, dataset_id, n, shards[n].rows) for n in names}
    exposed = 0
    band_candidates: list[np.ndarray] = []
    for n in names:
        c, u = shards[n], values[n]
        old = u < np.uint64(prev.threshold)
        flagged = np.zeros(c.rows, dtype=bool)
        flagged[c.flagged] = True
        quarantined = np.zeros(c.rows, dtype=bool)
        quarantined[c.quarantined] = True
        explained = quarantined.copy()
        explained[c.dead] = True
        gone_before = old | quarantined
        earlier = prev.covered.get(n, np.zeros(0, np.int64))
        gone_before[earlier[earlier < c.rows]] = True
        exposed += int((flagged & ~gone_before).sum())
        countable = ~flagged & ~explained & ~old
        band_candidates.append(u[countable])
    need = (k - 1) * exposed
    threshold = prev.threshold
    if need:
        pool = np.concatenate(band_candidates) if band_candidates else np.zeros(0, np.uint64)
        if len(pool) < need:
            raise ExpungeError(
                f"--cover {k} needs {need:,} rows nobody can tell apart from the {exposed:,} newly flagged "
                f"ones, and the dataset has only {len(pool):,} such rows left: lower K"
            )
        nth = np.partition(pool, need - 1)[need - 1]
        if int(nth) == 2**64 - 1:
            raise ExpungeError(f"--cover {k}: the cover would take every remaining row: lower K")
        threshold = max(prev.threshold, int(nth) + 1)
    plan = CoverPlan(k, sum(len(c.flagged) for c in shards.values()), threshold, exposed)
    covered: dict[str, np.ndarray] = {}
    for n in names:
        c, u = shards[n], values[n]
        cover = np.flatnonzero(u < np.uint64(threshold))
        plan.rows[n] = np.setdiff1d(cover, c.flagged).tolist()
        covered[n] = np.union1d(prev.covered.get(n, np.zeros(0, np.int64)), c.flagged).astype(np.int64)
    for n, rows in prev.covered.items():  # shards not in this release keep their history
        covered.setdefault(n, rows)
    plan.state = CoverState(threshold, covered)
    return plan
