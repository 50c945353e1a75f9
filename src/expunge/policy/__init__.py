"""Policies: which soft signals remove, queue for review, or keep a row (format in ``parse.py``).

The function ``evaluate`` is not re-exported here, so ``expunge.policy.evaluate`` always names the module:
``from expunge.policy.evaluate import evaluate``.
"""

from __future__ import annotations

from expunge.policy.evaluate import (
    KEEP,
    PUBLISH,
    QUARANTINE,
    REMOVE,
    REVIEW,
    Decision,
    RowSignals,
)
from expunge.policy.parse import (
    And,
    Compare,
    Expr,
    ExprError,
    Flag,
    NeighbourSpec,
    Not,
    Or,
    Policy,
    Rule,
    format_expr,
    load_policy,
    parse_expr,
)
from expunge.policy.presets import PRESETS

__all__ = [
    "KEEP",
    "PRESETS",
    "PUBLISH",
    "QUARANTINE",
    "REMOVE",
    "REVIEW",
    "And",
    "Compare",
    "Decision",
    "Expr",
    "ExprError",
    "Flag",
    "NeighbourSpec",
    "Not",
    "Or",
    "Policy",
    "RowSignals",
    "Rule",
    "format_expr",
    "load_policy",
    "parse_expr",
]
