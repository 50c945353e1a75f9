"""Built-in policies, as TOML text so they go through the same parser and hash as a user's file.

- ``hash-only`` (the default): no rules; only hash-list findings (and hotline-confirmed rows) are removed.
- ``research``: LAION's Re-LAION "research" variant: hash matches, plus rows whose ``punsafe`` exceeds 0.95
  *and* whose caption a child-protection keyword list matches. On LAION-5B this removed 1.121 % of rows.
- ``research-safe``: Re-LAION "research-safe": the research rule, plus every row with ``punsafe`` above
  0.45. On LAION-5B this removed 3.044 % of rows.
  (Source: LAION, "Releasing Re-LAION 5B: transparent iteration on LAION-5B with additional safety fixes",
  laion.ai/blog/relaion-5b, August 2024.)

A row without a ``punsafe`` value is never silently safe: the rules are "remove" rules, so an unknown
``punsafe`` quarantines the row (unless ``keyword`` is known false in ``research``, where the conjunction is
false whatever ``punsafe`` is).

``max_share`` is each rule's flood limit, set generously: about four times LAION's figure for ``research``
(5 % against 1.121 %) and three times for ``research-safe``'s second rule (10 % against the ~1.9 % it adds
beyond the first). A real dataset may be worse than LAION-5B, but a rule deciding a tenth of all rows far more
likely means a wrong column (a score where higher is safer, a percentage instead of a probability) or a
keyword list gone wrong; the clean then stops before writing, and ``--accept-flood RULE`` overrides.
"""

from __future__ import annotations

HASH_ONLY = """\
name = "hash-only"
description = "Hash lists only: rows a hash bank matches or a hotline confirmed are removed; nothing else."
rules = []
"""

_RESEARCH_RULE = """\
[[rules]]
name = "unsafe-and-keyword"
action = "remove"
when = "score.punsafe > 0.95 and keyword"
max_share = 0.05
"""

RESEARCH = (
    """\
name = "research"
description = "Re-LAION research: hash lists, plus punsafe > 0.95 where a keyword list also matches."

"""
    + _RESEARCH_RULE
)

RESEARCH_SAFE = (
    """\
name = "research-safe"
description = "Re-LAION research-safe: the research rule, plus every row with punsafe > 0.45."

"""
    + _RESEARCH_RULE
    + """
[[rules]]
name = "unsafe"
action = "remove"
when = "score.punsafe > 0.45"
max_share = 0.10
"""
)

PRESETS: dict[str, str] = {
    "hash-only": HASH_ONLY,
    "research": RESEARCH,
    "research-safe": RESEARCH_SAFE,
}
