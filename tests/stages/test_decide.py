"""Per-row decisions and their precedence (``stages/decide.py``), on hand-built store files.

Precedence, strongest first: hash-list findings (unless a negative bank of the same feature holds the
matched value), hotline-confirmed rows, then the policy's rules (first match wins; rows a hotline
rejected skip review rules), then quarantine of rows that cannot be checked.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from expunge.lists.bank import BankInfo, import_list, load_info
from expunge.match.stage import FINDINGS_SCHEMA, BankRef
from expunge.policy.parse import policy_from_bytes
from expunge.stages.decide import CONFIRMED, Decided, NegativeRef, ReviewRows, ShardTriage, decide
from expunge.stages.soft import MISSING
from expunge.store import Store

N = 20
SHARD = "part-0.parquet"


def _md5(i: int) -> bytes:
    return hashlib.md5(f"https://synthetic.example/{i}".encode()).digest()


@dataclass
class Env:
    tmp: Path
    store: Store
    index_dir: Path

    def bank(self, name: str, values: list[bytes], signal: str = "url_md5", **kw: object) -> BankInfo:
        path = self.tmp / f"{name}.txt"
        path.write_text("# SYNTHETIC\n" + "".join(v.hex() + "\n" for v in values))
        import_list(self.store, path, name, signal, kw.pop("recipe", None), "test", **kw)  # type: ignore[arg-type]
        return load_info(self.store, name)

    def findings(self, hits: list[tuple[BankInfo, int, bytes]]) -> Path:
        path = self.tmp / "findings.parquet"
        pq.write_table(
            pa.table(
                {
                    "row": pa.array([r for _, r, _ in hits], pa.int64()),
                    "bank": pa.array([b.name for b, _, _ in hits], pa.string()),
                    "bank_version": pa.array([b.version for b, _, _ in hits], pa.int32()),
                    "signal": pa.array([b.signal for b, _, _ in hits], pa.string()),
                    "value": pa.array([v for _, _, v in hits], pa.binary()),
                    "distance": pa.nulls(len(hits), pa.float32()),
                    "score": pa.nulls(len(hits), pa.float32()),
                },
                schema=FINDINGS_SCHEMA,
            ),
            path,
        )
        return path

    def soft(self, bank: str, scores: dict[int, float | None], signal: str = "score") -> str:
        rows = sorted(scores)
        path = self.tmp / f"soft-{bank}.parquet"
        missing = [scores[r] is None for r in rows]
        pq.write_table(
            pa.table(
                {
                    "row": pa.array(rows, pa.int64()),
                    "bank": pa.array([bank] * len(rows)),
                    "bank_version": pa.array([0] * len(rows), pa.int32()),
                    "signal": pa.array([signal] * len(rows)),
                    "value": pa.array([MISSING if m else b"" for m in missing], pa.binary()),
                    "distance": pa.nulls(len(rows), pa.float32()),
                    "score": pa.array([scores[r] for r in rows], pa.float32()),
                },
                schema=FINDINGS_SCHEMA,
            ),
            path,
        )
        return str(path)

    def neighbours(self, cosines: dict[int, float], shard: str = SHARD) -> str:
        path = self.tmp / "neighbours.parquet"
        rows = sorted(cosines)
        pq.write_table(
            pa.table(
                {
                    "shard": pa.array([shard] * len(rows)),
                    "row": pa.array(rows, pa.int64()),
                    "seed": pa.array([0] * len(rows), pa.int32()),
                    "cosine": pa.array([cosines[r] for r in rows], pa.float32()),
                }
            ),
            path,
        )
        return str(path)

    def decide(
        self, findings: Path, banks: list[BankInfo], triage: ShardTriage | None, **kw: object
    ) -> Decided:
        return decide(
            self.index_dir,
            findings,
            SHARD,
            tuple(BankRef(b.name, b.version) for b in banks),
            tuple(b.signal for b in banks),
            tuple(b.feature for b in banks),
            triage,
            url_scope=bool(kw.get("url_scope", True)),
            image_scope=False,
            quality_floor=50,
            cover_rows=tuple(kw.get("cover_rows", ())),  # type: ignore[arg-type]
        )

    def triage(self, policy: str, **kw: object) -> ShardTriage:
        return ShardTriage(
            policy=policy_from_bytes(policy.encode(), "test.toml", "test"),
            store_root=str(self.store.root),
            **kw,  # type: ignore[arg-type]
        )


@pytest.fixture
def env(tmp_path: Path) -> Env:
    store = Store(tmp_path / "store").ensure()
    index_dir = tmp_path / "index"
    index_dir.mkdir()
    quarantine = np.zeros(N, dtype=np.uint8)
    quarantine[19] = 1  # a row whose URL cannot be checked
    pq.write_table(pa.table({"quarantine": pa.array(quarantine)}), index_dir / "rows.parquet")
    return Env(tmp_path, store, index_dir)


def _rule(name: str, action: str, when: str) -> str:
    return f'[[rules]]\nname = "{name}"\naction = "{action}"\nwhen = "{when}"\n'


def _accounted(d: Decided) -> None:
    assert not set(d.reasons) & set(d.quarantined)
    assert sum(d.by_rule.values()) == len([r for r in d.reasons.values() if r != ["cover:removed"]])


def test_hash_list_beats_a_policy_keep(env: Env) -> None:
    bank = env.bank("hashes", [_md5(1)])
    findings = env.findings([(bank, 1, _md5(1))])
    policy = _rule("keep-safe", "keep", "score.punsafe >= 0") + _rule("keep-banked", "keep", "bank")
    soft = env.soft("score.punsafe", {1: 0.1, 2: 0.1})
    d = env.decide(findings, [bank], env.triage(policy, soft_path=soft))
    assert d.reasons == {1: ["url_md5:hashes@v1"]}
    assert d.by_rule == {"hash-lists": 1}
    assert d.quarantined == {19: "null_url"} or set(d.quarantined) == {19}
    _accounted(d)


def test_confirmed_beats_policy_but_a_hash_removal_keeps_its_cause(env: Env) -> None:
    bank = env.bank("hashes", [_md5(1)])
    findings = env.findings([(bank, 1, _md5(1))])
    policy = _rule("near", "review", "neighbour >= 0.9") + _rule("keep-all", "keep", "not bank")
    triage = env.triage(
        policy,
        neighbour_path=env.neighbours({2: 0.95, 4: 0.95}),
        review=ReviewRows(confirmed=(1, 2, 3)),
    )
    d = env.decide(findings, [bank], triage)
    assert d.reasons[1] == ["url_md5:hashes@v1", CONFIRMED]  # the hash list is the cause
    assert d.reasons[2] == [CONFIRMED]  # not withheld for review: removed
    assert d.reasons[3] == [CONFIRMED]  # a keep rule cannot publish it
    assert 2 not in d.review and 2 not in d.quarantined
    assert d.quarantined[4] == "review:pending" and list(d.review) == [4]
    assert d.by_rule == {"hash-lists": 1, "review-confirmed": 2}
    _accounted(d)


def test_negative_bank_cancels_by_value_for_the_same_feature_only(env: Env) -> None:
    raw = env.bank("partner", [_md5(1), _md5(2)])
    canonical = env.bank("canon", [_md5(1)], recipe="canonical")
    images = env.bank("images", [_md5(1)], signal="image_md5")
    cleared = env.bank("cleared", [_md5(1)], negative=True)
    assert raw.feature == cleared.feature != canonical.feature != images.feature
    findings = env.findings(
        [
            (raw, 1, _md5(1)),  # cleared value, same feature: cancelled
            (raw, 2, _md5(2)),  # another value: removed
            (canonical, 3, _md5(1)),  # same bytes, other feature: removed
            (images, 4, _md5(1)),  # same bytes, other signal: removed
            (raw, 5, _md5(1)),  # cancelled for partner ...
            (canonical, 5, _md5(1)),  # ... but canon still removes row 5
        ]
    )
    negatives = (NegativeRef(cleared.name, cleared.version, cleared.feature),)
    d = env.decide(findings, [raw, canonical, images], env.triage("", negatives=negatives))
    assert sorted(d.reasons) == [2, 3, 4, 5]
    assert d.reasons[5] == ["url_md5:canon@v1"]
    assert d.cancelled == {"cleared": 2}
    assert d.by_rule == {"hash-lists": 4}
    # Without the triage (no negative banks) every finding removes.
    assert sorted(env.decide(findings, [raw, canonical, images], None).reasons) == [1, 2, 3, 4, 5]


def test_rejected_rows_skip_review_rules_but_not_remove_rules(env: Env) -> None:
    bank = env.bank("hashes", [_md5(0)])
    findings = env.findings([])
    policy = _rule("near", "review", "neighbour >= 0.9") + _rule("very-near", "remove", "neighbour >= 0.99")
    nb = env.neighbours({1: 0.95, 2: 0.95, 3: 0.95, 4: 0.995, 5: 0.995, 6: 0.5})
    review = ReviewRows(rejected=(1, 4), unsure=(2,))
    d = env.decide(findings, [bank], env.triage(policy, neighbour_path=nb, review=review))
    assert 1 not in d.reasons and 1 not in d.quarantined  # rejected: published
    assert d.quarantined[2] == "review:unsure"
    assert d.quarantined[3] == d.quarantined[5] == "review:pending"
    assert d.reasons == {4: ["rule:very-near"]}  # rejected skips the review rule, a remove rule applies
    assert sorted(d.review) == [2, 3, 5]
    assert d.review[3][0] == ["near"]
    assert 6 not in d.quarantined and 6 not in d.reasons
    _accounted(d)


def test_missing_score_quarantines_below_threshold_publishes(env: Env) -> None:
    bank = env.bank("hashes", [_md5(0)])
    policy = _rule("unsafe", "remove", "score.punsafe > 0.5")
    soft = env.soft("score.punsafe", {1: 0.9, 2: None, 3: 0.5})
    d = env.decide(env.findings([]), [bank], env.triage(policy, soft_path=soft))
    assert d.reasons == {1: ["rule:unsafe"]}
    assert d.quarantined[2] == "missing:unsafe"
    assert 3 not in d.quarantined and 4 not in d.quarantined  # at the threshold, or below what was kept
    assert d.by_rule == {"unsafe": 1}


def test_soft_findings_of_another_column_are_not_this_policys_input(env: Env) -> None:
    bank = env.bank("hashes", [_md5(0)])
    policy = _rule("unsafe", "remove", "score.punsafe > 0.5")
    soft = env.soft("score.pwatermark", {1: 0.9, 2: None})
    d = env.decide(env.findings([]), [bank], env.triage(policy, soft_path=soft))
    assert d.reasons == {} and set(d.quarantined) == {19}


def test_url_quarantine_and_cover_come_after_removals(env: Env) -> None:
    bank = env.bank("hashes", [_md5(19)])
    findings = env.findings([(bank, 19, _md5(19))])
    d = env.decide(findings, [bank], env.triage(""), cover_rows=(19, 7))
    assert d.reasons == {19: ["url_md5:hashes@v1"], 7: ["cover:removed"]}
    assert d.quarantined == {}


def test_review_rows_outside_the_shard_are_ignored_confirmed(env: Env) -> None:
    """A queue written for an older, longer version of the shard: confirmed rows past its end are skipped."""
    bank = env.bank("hashes", [_md5(0)])
    d = env.decide(env.findings([]), [bank], env.triage("", review=ReviewRows(confirmed=(N + 3,))))
    assert d.reasons == {}


def test_review_rows_outside_the_shard_are_ignored_rejected(env: Env) -> None:
    bank = env.bank("hashes", [_md5(0)])
    policy = _rule("near", "review", "neighbour >= 0.9")
    triage = env.triage(policy, neighbour_path=env.neighbours({}), review=ReviewRows(rejected=(N + 3,)))
    d = env.decide(env.findings([]), [bank], triage)
    assert d.reasons == {}


def test_a_stale_shard_is_withheld_whole_but_hash_removals_stay(env: Env) -> None:
    """The shard changed since its verdicts were recorded: they name other rows now."""
    bank = env.bank("hashes", [_md5(1)])
    findings = env.findings([(bank, 1, _md5(1))])
    policy = _rule("near", "review", "neighbour >= 0.9")
    review = ReviewRows(confirmed=(2,), rejected=(3,), stale=True)
    triage = env.triage(policy, neighbour_path=env.neighbours({3: 0.95, 4: 0.95}), review=review)
    d = env.decide(findings, [bank], triage)
    assert d.reasons == {1: ["url_md5:hashes@v1"]}
    assert d.quarantined == {r: "review:stale" for r in range(N) if r != 1}
    assert d.review == {}
