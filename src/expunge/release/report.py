"""A one-page HTML report of a release: what was removed or quarantined, by what, where, and how to check it.

The page is for people who must sign off on a release without running the tool: maintainers, auditors,
legal. It is one self-contained file (inline CSS, charts as inline SVG drawn here) so it can be attached to
a ticket or opened offline, and it needs no scripts, so it renders the same in any browser and under
strict content-security policies.

It is built only from aggregate counts (``summary.json``), the manifest's Merkle root and, given a store,
the banks' version histories and the newest run ledger. It never opens the shards or the per-row
records: a report must never be a way to leak a flagged URL or caption.

Rendering is deterministic: the same inputs give byte-identical HTML (no clock, no randomness, sorted
keys), so a report can be diffed between releases.
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_right
from html import escape
from pathlib import Path
from typing import Any

from expunge import atomic
from expunge.release.charts import COLORS, WIDE_WIDTH, Row, Series, bar_chart, num
from expunge.store import Store

REPORT = "report.html"
SUMMARY = "summary.json"
MANIFEST = "MANIFEST.json"

# Up to this many affected shards, the shard chart draws each of them. Beyond it (LAION-5B's metadata is
# tens of thousands of shards) it draws how rows removed per shard are distributed, and only the shards
# with the most rows removed or quarantined as bars: a chart of 30,000 bars is unreadable and would make
# the page megabytes. summary.json has every shard.
MAX_SHARDS = 40


def _section(title: str, body: str, why: str = "", wide: bool = False) -> str:
    cls = "card wide" if wide else "card"
    lead = f'<p class="why">{escape(why)}</p>' if why else ""
    return f'<section class="{cls}"><h2>{escape(title)}</h2>{lead}{body}</section>'


def _empty(text: str) -> str:
    return f'<p class="empty">{escape(text)}</p>'


def _read_json(path: Path) -> Any:
    """A JSON file, or None when it is absent or unreadable: the report shows what it can."""
    try:
        return atomic.read_json(path)
    except (OSError, ValueError):
        return None


def _counts_chart(chart: str, color: str, name: str, counts: dict[str, int], empty: str) -> str:
    if not any(counts.values()):
        return _empty(empty)
    rows = [Row(k, (float(v),)) for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    return bar_chart(chart, [Series(name, color)], rows)


def _hits(shard: dict[str, Any]) -> int:
    return int(shard.get("rows_removed", 0)) + int(shard.get("rows_quarantined", 0))


def _bins(peak: int) -> list[int]:
    """Lower edges of the distribution's bins, 1-2-5 per decade (1, 2-4, 5-9, 10-19, 20-49, ...) up to
    the bin holding ``peak``: rows removed per shard span 1 to tens of thousands, so equal-width bins
    would put nearly every shard in the first."""
    edges = [1]
    step = 0
    while True:
        nxt = edges[-1] * (2.5 if step % 3 == 1 else 2)
        if nxt > peak:
            return edges
        edges.append(int(nxt))
        step += 1


def _distribution_chart(counts: list[int], untouched: int) -> str:
    """How many shards lost 1, 2-4, 5-9, ... rows: the shape of a release too large to draw shard by
    shard (one pass over the shards, a bisect each)."""
    edges = _bins(max(counts))
    per_bin = [0] * len(edges)
    for n in counts:
        per_bin[bisect_right(edges, n) - 1] += 1
    rows = []
    for i, lo in enumerate(edges):
        hi = edges[i + 1] - 1 if i + 1 < len(edges) else max(counts)
        label = f"{num(lo)} row{'s' if lo != 1 else ''}" if hi == lo else f"{num(lo)}-{num(hi)} rows"
        rows.append(Row(label, (float(per_bin[i]),)))
    chart = bar_chart("shard-distribution", [Series("shards", "shard-bins")], rows, width=WIDE_WIDTH)
    lead = (
        f'<p class="note" data-shards-untouched="{untouched}"><b>{untouched:,}</b> shard'
        f"{'s' if untouched != 1 else ''} had nothing removed or quarantined (not drawn). The "
        f"{len(counts):,} that had are drawn below by how many rows each lost (removed plus "
        "quarantined).</p>"
    )
    return lead + chart


def _shards_chart(shards: list[dict[str, Any]]) -> str:
    hit = [s for s in shards if _hits(s) > 0]
    if not hit:
        return _empty("No shard had a row removed or quarantined.")
    untouched = len(shards) - len(hit)
    head = ""
    shown = hit
    note = ""
    if len(hit) > MAX_SHARDS:
        head = _distribution_chart([_hits(s) for s in hit], untouched)
        shown = heapq.nsmallest(MAX_SHARDS, hit, key=lambda s: (-_hits(s), str(s["name"])))
        hidden = len(hit) - MAX_SHARDS
        note = (
            f'<p class="note" data-shards-not-drawn="{hidden}">The {MAX_SHARDS} shards with the most rows '
            f"removed or quarantined, largest first. {hidden:,} other affected shard"
            f"{'s are' if hidden != 1 else ' is'} counted in the distribution above but not drawn "
            "individually; summary.json lists every shard.</p>"
        )
    elif untouched:
        note = (
            f'<p class="note">{untouched:,} shard{"s" if untouched != 1 else ""} had nothing removed '
            "or quarantined.</p>"
        )
    rows = [
        Row(str(s["name"]), (float(s.get("rows_removed", 0)), float(s.get("rows_quarantined", 0))))
        for s in shown
    ]
    chart = bar_chart(
        "shards",
        [Series("removed", "removed"), Series("quarantined", "quarantined")],
        rows,
        width=WIDE_WIDTH,
    )
    return head + chart + note


def _bank_versions(store: Path, banks: list[dict[str, Any]]) -> str:
    """Values per version of each bank the release used, marking the version it was cleaned against.

    Seeing coverage grow (or shrink) over versions tells a reader whether an older release was cleaned
    against a much smaller list, i.e. whether it is worth re-cleaning.
    """
    st = Store(store)
    rows: list[Row] = []
    for bank in sorted(banks, key=lambda b: str(b.get("name", ""))):
        name = str(bank.get("name", ""))
        meta = _read_json(st.bank_file(name))
        if not isinstance(meta, dict):
            continue
        for v in meta.get("versions", []):
            used = " (used)" if v.get("version") == bank.get("version") else ""
            rows.append(
                Row(
                    f"{name} v{v.get('version')}{used}",
                    (float(v.get("count", 0)),),
                    (f"+{num(v.get('added', 0))} / -{num(v.get('removed', 0))} since the last version",),
                )
            )
    if not rows:
        return _empty("The store has no version history for the banks this release used.")
    return bar_chart("bank-versions", [Series("values", "versions")], rows)


def _newest_ledger(store: Path, release: Path) -> tuple[str, dict[str, Any]] | None:
    """The newest run ledger that wrote this release; failing that, the newest of any run.

    Ledger names start with a UTC timestamp, so name order is time order. A store is shared by many
    releases, so the newest ledger overall may well belong to another one.
    """
    runs = Store(store).runs
    if not runs.is_dir():
        return None
    ledgers: list[tuple[str, dict[str, Any]]] = []
    for path in sorted(runs.glob("*.json"), reverse=True):
        data = _read_json(path)
        if isinstance(data, dict) and isinstance(data.get("stages"), list):
            ledgers.append((path.name, data))
    target = release.resolve()
    for name, data in ledgers:
        out = data.get("out")
        if isinstance(out, str) and Path(out).resolve() == target:
            return name, data
    return ledgers[0] if ledgers else None


def _timings(store: Path, release: Path) -> str:
    found = _newest_ledger(store, release)
    if found is None:
        return _empty("The store holds no run ledger.")
    name, data = found
    rows = [
        Row(str(s.get("stage", "?")), (float(s.get("seconds", 0.0)),))
        for s in data["stages"]
        if isinstance(s, dict)
    ]
    if not any(r.values[0] > 0 for r in rows):
        return _empty(f"Ledger {name} records no stage timings.")
    mine = Path(str(data.get("out", ""))).resolve() == release.resolve()
    where = "" if mine else " It is the newest ledger in the store but was not written for this release."
    note = f"From run ledger runs/{name} (command {data.get('command', '?')}).{where}"
    chart = bar_chart("timings", [Series("seconds", "timings")], rows, unit=" s")
    return chart + f'<p class="note">{escape(note)}</p>'


def _verify_text(has_signature: bool) -> str:
    sig = (
        "The manifest is signed (<code>MANIFEST.json.minisig</code>): add <code>--pubkey KEY.pub</code>, "
        "or check it with <code>minisign -Vm MANIFEST.json -p KEY.pub</code>. "
        if has_signature
        else "This manifest is not signed, so it proves integrity, not who published it. "
    )
    return (
        "<p>Run <code>expunge verify RELEASE</code>, where RELEASE is the folder holding this report. It "
        "recomputes the SHA-256 of every file (this report included) and every shard's row count, checks "
        "that no file is missing or added, and recomputes the Merkle root above from the shard hashes "
        "listed in <code>MANIFEST.json</code>. With <code>--previous OLD/MANIFEST.json</code> or "
        "<code>--min-sequence N</code> it also rejects an older release posing as this one. "
        + sig
        + "Given the lists (<code>--list FILE:SIGNAL</code>), it also checks that no row of the release "
        "matches them. It exits with status 1 and one line per mismatch.</p>"
    )


_CSS = """
*{box-sizing:border-box}
body{margin:0;background:#f4f5f7;color:#1d232b;font:14px/1.45 system-ui,-apple-system,"Segoe UI",
Roboto,"DejaVu Sans",sans-serif}
main{max-width:1120px;margin:0 auto;padding:20px}
h1{font-size:22px;margin:0 0 2px}
h2{font-size:15px;margin:0 0 6px}
.sub{color:#5b6570;margin:0 0 14px}
.stats{display:grid;grid-template-columns:repeat(4,1fr);gap:12px;margin-bottom:14px}
.stat{background:#fff;border:1px solid #dde1e6;border-radius:8px;padding:10px 14px}
.stat b{display:block;font-size:24px}
.stat span{color:#5b6570}
.stat.rm b{color:#a01f23}
.stat.qt b{color:#8a5a00}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:12px}
.card{background:#fff;border:1px solid #dde1e6;border-radius:8px;padding:12px 14px;overflow-x:auto}
.card.wide{grid-column:1/-1}
.why,.note,.empty{color:#5b6570;margin:0 0 6px;font-size:13px}
.empty{font-style:italic}
svg{display:block;max-width:100%;height:auto}
svg text{font:12px system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;fill:#1d232b}
svg text.vl{fill:#3c4650}
code{font:12px ui-monospace,"DejaVu Sans Mono",monospace;background:#eef0f3;padding:1px 4px;
border-radius:3px}
.root{word-break:break-all;display:block;padding:6px 8px;font-size:13px}
.warn{border-left:4px solid #a01f23;padding-left:8px}
"""


_POLICY_WHY = (
    "Hash lists and a hotline's confirmations always remove; the policy's rules decide the rest, first "
    "match wins. Rows a review rule holds back stay out of the release until a hotline decides them."
)


def _policy_html(summary: dict[str, Any], triage: dict[str, Any]) -> str:
    """The policy a release was cleaned under: its rules and how many rows each removed; the negative
    banks and how many findings they cancelled; the keyword lists by hash (never a term)."""
    policy = triage.get("policy", {})
    removed = summary.get("removed_by_rule", {})
    rows = [
        ("hash-lists", "remove", "any finding of a listed bank"),
        ("review-confirmed", "remove", "a hotline confirmed it"),
    ]
    rows += [(str(r.get("name")), str(r.get("action")), str(r.get("when"))) for r in policy.get("rules", [])]
    body = "".join(
        f'<tr data-rule="{escape(name)}"><td>{escape(name)}</td><td>{escape(action)}</td>'
        f"<td><code>{escape(when)}</code></td><td>{int(removed.get(name, 0)):,}</td></tr>"
        for name, action, when in rows
    )
    html = (
        f'<p class="note">Policy <b>{escape(str(policy.get("name")))}</b>'
        f" ({escape(str(policy.get('source')))}),"
        f" SHA-256 <code>{escape(str(policy.get('sha256')))}</code>.</p>"
        "<table><tr><th>rule</th><th>action</th><th>when</th><th>rows removed</th></tr>"
        f"{body}</table>"
    )
    cancelled = summary.get("negative_cancelled", {})
    negatives = triage.get("negative_banks", [])
    if negatives:
        items = "".join(
            f'<li data-negative="{escape(str(b.get("name")))}">'
            f"{escape(str(b.get('name')))} v{b.get('version')}:"
            f" {int(cancelled.get(b.get('name'), 0)):,} finding(s) cancelled</li>"
            for b in negatives
        )
        html += '<p class="note">Negative banks (values cleared by a hotline or the maintainer):</p>'
        html += f"<ul>{items}</ul>"
    lists = triage.get("keyword_lists", [])
    if lists:
        items = "".join(
            f"<li>{escape(str(k.get('name')))}: {int(k.get('terms', 0)):,} terms, SHA-256"
            f" <code>{escape(str(k.get('sha256')))}</code></li>"
            for k in lists
        )
        html += (
            f'<p class="note">Keyword lists (named by hash; their terms are never shown):</p><ul>{items}</ul>'
        )
    return html


def render_report(
    release: Path,
    store: Path | None = None,
    *,
    timings: bool = True,
    manifest: dict[str, Any] | None = None,
    signed: bool | None = None,
) -> str:
    """The report as HTML text, from ``release/summary.json``, its manifest and (optionally) the store.

    The store is optional because a published release travels without it; without one, the bank
    history and timing sections say so instead of failing. ``manifest`` is given while a release is
    written: the report is one of the files the manifest lists, so it is written before the manifest
    and only quotes the shard root, never the manifest's own hash.
    """
    summary = atomic.read_json(release / SUMMARY)
    if manifest is None:
        manifest = _read_json(release / MANIFEST)
    rows_in = int(summary.get("rows_in", 0))

    def share(n: int) -> str:
        if not rows_in:
            return "of 0 rows"
        part = n / rows_in
        if 0 < part < 0.0001:  # 94,334 of 5 billion rows is not "0.00%": two significant digits
            digits = min(12, 1 - math.floor(math.log10(part * 100)))
            return f"{part * 100:.{digits}f}% of rows"
        return f"{part:.2%} of rows"

    stats = [
        (
            "",
            "rows in",
            int(summary.get("rows_in", 0)),
            f"{int(summary.get('dataset', {}).get('shards', 0)):,} shards",
        ),
        ("", "rows kept", int(summary.get("rows_kept", 0)), share(int(summary.get("rows_kept", 0)))),
        (
            "rm",
            "rows removed",
            int(summary.get("rows_removed", 0)),
            share(int(summary.get("rows_removed", 0))),
        ),
        (
            "qt",
            "rows quarantined",
            int(summary.get("rows_quarantined", 0)),
            share(int(summary.get("rows_quarantined", 0))),
        ),
    ]
    stat_html = "".join(
        f'<div class="stat {cls}" data-stat="{escape(label)}"><b>{value:,}</b><span>{escape(label)} · '
        f"{escape(extra)}</span></div>"
        for cls, label, value, extra in stats
    )

    sections = [
        _section(
            "Removed by signal",
            _counts_chart(
                "signals",
                "signal",
                "rows removed",
                summary.get("removed_by_signal", {}),
                "No row was removed.",
            ),
            "Which kind of hash caught each removed row; a row caught by several signals counts once "
            "per signal.",
        ),
        _section(
            "Removed by bank",
            _counts_chart(
                "banks", "bank", "rows removed", summary.get("removed_by_bank", {}), "No row was removed."
            ),
            "Which list (at which version) caught them; a row on several lists counts once per list.",
        ),
        _section(
            "By shard",
            _shards_chart(list(summary.get("shards", []))),
            "Rows removed and quarantined in each shard; shards without either are unchanged, hash included. "
            f"With more than {MAX_SHARDS} shards affected: how the rows lost per shard are distributed, and "
            "the shards that lost the most.",
            wide=True,
        ),
        _section(
            "Quarantined by reason",
            _counts_chart(
                "reasons",
                "reason",
                "rows quarantined",
                summary.get("quarantined_by_reason", {}),
                "No row was quarantined.",
            ),
            "Rows that could not be checked (no usable URL or image) are held back rather than published.",
        ),
    ]
    low = int(summary.get("images_low_quality", 0))
    if store is not None:
        sections.append(
            _section(
                "Bank coverage over versions",
                _bank_versions(store, list(summary.get("banks", []))),
                "Values in each version of the banks used; hover a bar for what was added and removed.",
            )
        )
        sections.append(
            _section(
                "Time per stage",
                _timings(store, release)
                if timings
                else _empty(
                    "Timings are kept out of the release so that reruns stay byte-identical; "
                    "'expunge report RELEASE --store STORE' shows them."
                ),
                "Wall-clock seconds of each pipeline stage in the newest run that wrote this release.",
            )
        )
    else:
        sections.append(
            _section(
                "Bank history and timings",
                _empty("No store was given, so bank version history and stage timings are not shown."),
            )
        )
    if low:
        sections.append(
            _section(
                "Images below the PDQ quality floor",
                f'<p class="warn" data-stat="images-low-quality"><b>{low:,}</b> image'
                f"{'s' if low != 1 else ''} had a PDQ hash below the quality floor. They were counted but "
                "never matched by PDQ (a low-quality hash matches too much); exact-hash signals still "
                "applied.</p>",
                wide=True,
            )
        )

    triage = summary.get("triage")
    if isinstance(triage, dict):
        sections.append(_section("Policy and rules", _policy_html(summary, triage), _POLICY_WHY, wide=True))

    notice = summary.get("notice")
    records = summary.get("records")
    if notice or records:
        body = (f'<p class="warn" data-notice="diff">{escape(str(notice))}</p>' if notice else "") + (
            f'<p class="note">{escape(str(records))}.</p>' if records else ""
        )
        sections.append(_section("What a diff against the previous release shows", body, wide=True))
    root = manifest.get("merkle_root") if isinstance(manifest, dict) else None
    root_html = (
        f'<code class="root" data-merkle-root="{escape(str(root))}">{escape(str(root))}</code>'
        if root
        else _empty("No MANIFEST.json in this release, so there is no Merkle root to show.")
    )
    if signed is None:
        signed = (release / (MANIFEST + ".minisig")).is_file()
    sections.append(
        _section(
            "Merkle root and how to verify",
            root_html + _verify_text(signed),
            "The root binds every output shard's name and SHA-256, in order: one hash to publish or sign.",
            wide=True,
        )
    )
    banks_used = ", ".join(
        f"{b.get('name')} v{b.get('version')}"
        for b in sorted(summary.get("banks", []), key=lambda b: str(b.get("name")))
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        "<title>expunge release report</title>"
        f"<style>{_CSS}</style></head><body><main>"
        "<h1>Release report</h1>"
        f'<p class="sub">{escape(str(summary.get("tool", "expunge")))} · '
        f"banks: {escape(banks_used or 'none')}"
        " · counts only: no URL, caption or image is shown in this report.</p>"
        f'<div class="stats">{stat_html}</div>'
        f'<div class="grid">{"".join(sections)}</div>'
        "</main></body></html>\n"
    )


def write_report(
    release: Path,
    store: Path | None = None,
    *,
    timings: bool = True,
    tmp_dir: Path | None = None,
    manifest: dict[str, Any] | None = None,
    signed: bool | None = None,
    path: Path | None = None,
) -> Path:
    """Write the report (``release/report.html`` unless ``path`` says otherwise) atomically, so a reader
    never sees half a report; return its path."""
    path = path or release / REPORT
    html = render_report(release, store, timings=timings, manifest=manifest, signed=signed)
    atomic.write_bytes(path, html.encode("utf-8"), tmp_dir)
    return path


__all__ = ["COLORS", "MAX_SHARDS", "REPORT", "render_report", "write_report"]
