"""The flood guard: a bank or rule that would decide far more rows than it should stops the clean.

A placeholder "image unavailable" hash in a partner's list, a score column read on the wrong scale, a
keyword list with one over-broad term: each silently empties a dataset. Before anything is written,
the clean counts the rows each positive bank (after negative banks) and each policy rule would remove
or withhold, and stops with one line naming the first one over its limit, unless the user accepted it
(``--accept-flood NAME``). Limits: a share of the dataset's rows (a rule's own ``max_share``, else the
run's ``--flood-share``), and, for a bank or rule the dataset's previous clean already counted, a
multiple of that count; neither trips at or below ``min_rows`` rows (small datasets and test fixtures
are all "floods" by share). The counts of
each successful clean become the next one's baseline (``flood.json`` in the store).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from expunge import atomic
from expunge.errors import ExpungeError
from expunge.stages.decide import Decided

#: The name of all hash lists together, for ``--accept-flood``.
HASH_LISTS = "hash-lists"


@dataclass
class Tally:
    rows_in: int = 0
    banks: dict[str, int] = field(default_factory=dict)  # rows per positive bank (after negative banks)
    rules: dict[str, int] = field(default_factory=dict)  # rows removed or withheld per policy rule
    hash_rows: int = 0  # rows removed by any hash list

    def add(self, decided: Decided) -> None:
        self.rows_in += decided.rows_in
        self.hash_rows += sum(1 for rs in decided.reasons.values() if any("@v" in r for r in rs))
        for reasons in decided.reasons.values():
            for bank in {r.split(":", 1)[1].rsplit("@v", 1)[0] for r in reasons if "@v" in r}:
                self.banks[bank] = self.banks.get(bank, 0) + 1
        # A rule decides a row when it removes it, withholds it for review, or quarantines it because a
        # value it needs is missing: each takes the row out of the release.
        rules: list[str] = [r[5:] for rs in decided.reasons.values() for r in rs if r.startswith("rule:")]
        rules += [q[8:] for q in decided.quarantined.values() if q.startswith("missing:")]
        rules += [r for rs, _signals in decided.review.values() for r in rs]
        for rule in rules:
            self.rules[rule] = self.rules.get(rule, 0) + 1


def check(
    tally: Tally,
    previous: dict[str, Any],
    *,
    share: float,
    multiple: float,
    min_rows: int,
    rule_shares: dict[str, float | None],
    accept: tuple[str, ...],
    where: Path,
) -> None:
    """Raise ExpungeError for the first bank or rule over its limit that was not accepted."""
    n = max(tally.rows_in, 1)
    items = [("bank", k, v, share) for k, v in sorted(tally.banks.items())]
    items += [("rule", k, v, rule_shares.get(k) or share) for k, v in sorted(tally.rules.items())]
    # All hash lists together too: a flood split over several banks is still a flood.
    if len(tally.banks) > 1:
        items.append(("lists", HASH_LISTS, tally.hash_rows, share))
    # The previous clean's rows (a baseline without them compares with this run's rows: counts).
    before_n = max(int(previous.get("rows_in") or tally.rows_in), 1)
    for kind, name, rows, limit in items:
        if name in accept or rows <= min_rows:
            continue
        before = previous.get("hash_rows") if kind == "lists" else previous.get(f"{kind}s", {}).get(name)
        if rows > limit * n:
            raise ExpungeError(
                f"flood guard: {kind} {name!r} would take {rows} of {tally.rows_in} rows out"
                f" ({rows / n:.2%}, limit {limit:.2%}); nothing was written"
                f" (check the list, or pass --accept-flood {name})",
                where,
            )
        # Rates, not counts: a dataset that grew keeps its rate; one that shrank must not hide a jump.
        if before is not None and rows / n > multiple * max(int(before), 1) / before_n:
            raise ExpungeError(
                f"flood guard: {kind} {name!r} would take {rows} of {tally.rows_in} rows out"
                f" ({rows / n:.2%}),"
                f" over {multiple:g}x its rate in the previous clean (the {int(before)} of the previous"
                f" clean's {before_n} rows, {int(before) / before_n:.2%}); nothing was written"
                f" (check the list, or pass --accept-flood {name})",
                where,
            )


def load(path: Path) -> dict[str, Any]:
    return atomic.read_json(path) if path.is_file() else {}


def save(path: Path, tally: Tally, tmp: Path) -> None:
    data = {
        "rows_in": tally.rows_in,
        "banks": tally.banks,
        "rules": tally.rules,
        "hash_rows": tally.hash_rows,
    }
    atomic.write_json(path, data, tmp)
