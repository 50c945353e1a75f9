"""Which models and datasets descend from a dataset that had rows removed, and by what path.

The report is built from the lineage graph and the marks only: ids, relations, counts and roots. Card
text other than ids never reaches it (cards are self-reported and untrusted), nor does anything from a
removed row. Each affected repo is explained by its *nearest* marked ancestor: the last marked dataset
on its path, whose removed-row count and cleaned successor are the ones that matter to its maintainers.

Three renderings of one :class:`LineageReport`: text (one block per repo), JSON (stable: sorted, no
clock) and a self-contained HTML page whose graph is inline SVG drawn here (layers by depth from the
marked roots, no scripts, no network), like the release report.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING, Any, Protocol

from expunge.errors import ExpungeError
from expunge.lineage.cards import canonical_id
from expunge.lineage.marks import Evidence, Mark, Marks

if TYPE_CHECKING:
    from expunge.lineage.cards import CardWarning, Edge, Node
    from expunge.lineage.graph import LineagePath

FORMAT = "expunge-lineage-report/1"
FORMATS = ("text", "json", "html")


class Graph(Protocol):
    """What the report needs of :class:`expunge.lineage.graph.LineageGraph`."""

    @property
    def warnings(self) -> list[CardWarning]: ...

    def node(self, id: str) -> Node | None: ...

    def aliases(self, id: str) -> list[str]: ...

    def downstream(self, roots: Iterable[str]) -> dict[str, LineagePath]: ...

    def out_edges(self, id: str) -> list[Edge]: ...


@dataclass(frozen=True)
class Step:
    parent: str
    child: str
    relation: str
    declared: bool

    def public(self) -> dict[str, Any]:
        return {
            "parent": self.parent,
            "child": self.child,
            "relation": self.relation,
            "declared": self.declared,
        }


@dataclass(frozen=True)
class Affected:
    """A repo downstream of a marked dataset, with the path from its nearest marked ancestor."""

    id: str
    kind: str
    ancestor: str
    mark: Mark
    nodes: tuple[str, ...]  # ancestor ... id
    steps: tuple[Step, ...]

    @property
    def depth(self) -> int:
        return len(self.steps)

    @property
    def inferred(self) -> bool:
        return not all(s.declared for s in self.steps)


@dataclass(frozen=True)
class Marked:
    id: str
    kind: str
    in_graph: bool
    mark: Mark


@dataclass(frozen=True)
class Pointer:
    """A repo whose card names a dataset marked withdrawn, gated or renamed."""

    repo: str
    kind: str
    dataset: str
    status: str
    successor: str | None
    relation: str
    declared: bool


@dataclass(frozen=True)
class LineageReport:
    marked: tuple[Marked, ...]
    affected: tuple[Affected, ...]
    pointers: tuple[Pointer, ...]
    evidence: tuple[Evidence, ...]
    warnings: int


def _kind(graph: Graph, id: str) -> str:
    node = graph.node(id)
    return node.kind if node is not None else "unknown"


def _step(edge: Edge) -> Step:
    return Step(edge.parent, edge.child, edge.relation, bool(edge.declared))


def build_report(graph: Graph, marks: Marks) -> LineageReport:
    """Every repo downstream of a dataset with removed rows, each explained by its nearest marked ancestor."""
    # Ids as the graph spells them: a mark under another spelling would otherwise match no path.
    removals = {canonical_id(d) or d: m for d, m in sorted(marks.removals().items())}
    marked = tuple(
        Marked(d, _kind(graph, d), graph.node(d) is not None, m) for d, m in sorted(removals.items())
    )
    roots = sorted(d for d in removals if graph.node(d) is not None)
    # Cards often name a dataset without its owner (`laion2B-en`): such a node cannot be tied to the
    # marked repo for certain, so it is followed as an inferred `alias` step rather than left out.
    # A marked id that is not in the graph itself may still have aliases in it (`laion2b-en` marked,
    # cards naming `laion/laion2B-en`; or the reverse).
    alias_of: dict[str, str] = {}
    for d in sorted(removals):
        for alias in graph.aliases(d):
            if alias not in removals:
                alias_of.setdefault(alias, d)
    found = graph.downstream([*roots, *sorted(alias_of)]) if roots or alias_of else {}
    affected: list[Affected] = []
    for alias, owner in sorted(alias_of.items()):
        step = Step(owner, alias, "alias", False)
        affected.append(Affected(alias, _kind(graph, alias), owner, removals[owner], (owner, alias), (step,)))
    for repo, path in sorted(found.items()):
        if repo in removals or repo in alias_of or len(path.nodes) < 2:
            continue  # a marked dataset is a root of its own, listed with the marks
        nodes = tuple(path.nodes)
        on_path = [i for i, n in enumerate(nodes[:-1]) if n in removals or n in alias_of]
        cut = on_path[-1] if on_path else 0
        steps = tuple(_step(e) for e in path.edges)[cut:]
        ancestor = nodes[cut]
        if ancestor in alias_of and ancestor not in removals:
            owner = alias_of[ancestor]
            steps = (Step(owner, ancestor, "alias", False), *steps)
            nodes = (owner, *nodes[cut:])
            ancestor, cut = owner, 0
        mark = removals.get(ancestor)
        if mark is None:  # every path starts at a mark or an alias of one; never drop a repo silently
            raise ExpungeError(f"lineage report: the path to {repo} starts at no marked dataset; rebuild")
        affected.append(Affected(repo, _kind(graph, repo), ancestor, mark, nodes[cut:], steps))
    pointers: list[Pointer] = []
    pointed = {canonical_id(d) or d: m for d, m in sorted(marks.pointers().items())}
    for dataset in sorted(d for d in pointed if graph.node(d) is not None):
        mark = pointed[dataset]
        seen: set[str] = set()
        for edge in sorted(graph.out_edges(dataset), key=lambda e: (e.child, not e.declared, e.relation)):
            if edge.child in seen:
                continue  # one line per repo: its declared edge first
            seen.add(edge.child)
            pointers.append(
                Pointer(
                    edge.child,
                    _kind(graph, edge.child),
                    dataset,
                    mark.status,
                    mark.successor,
                    edge.relation,
                    edge.declared,
                )
            )
    evidence = tuple(checks[-1] for _, checks in sorted(marks.evidence.items()) if checks)
    return LineageReport(marked, tuple(affected), tuple(pointers), evidence, len(graph.warnings))


# ---- JSON -------------------------------------------------------------------------------------


def _successor(mark: Mark) -> dict[str, Any]:
    rel = mark.release
    return {
        "id": mark.successor,
        "merkle_root": rel.merkle_root if rel else None,
        "files_root": rel.files_root if rel else None,
        "sequence": rel.sequence if rel else None,
    }


def _mark_fields(mark: Mark) -> dict[str, Any]:
    rel = mark.release
    return {
        "status": mark.status,
        "source": mark.source,
        "recorded_at": mark.recorded_at,
        "rows_removed": rel.rows_removed if rel else None,
        "removed_by_signal": dict(sorted(rel.removed_by_signal.items())) if rel else {},
        "successor": _successor(mark),
        "followed": mark.followed,
    }


def to_json(report: LineageReport) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "counts": {
            "marked": len(report.marked),
            "affected": len(report.affected),
            "affected_models": sum(a.kind == "model" for a in report.affected),
            "affected_datasets": sum(a.kind == "dataset" for a in report.affected),
            "pointers": len(report.pointers),
            "card_warnings": report.warnings,
        },
        "marked": [
            {"id": m.id, "kind": m.kind, "in_graph": m.in_graph, **_mark_fields(m.mark)}
            for m in report.marked
        ],
        "affected": [
            {
                "id": a.id,
                "kind": a.kind,
                "depth": a.depth,
                "marked_ancestor": a.ancestor,
                "path": list(a.nodes),
                "edges": [s.public() for s in a.steps],
                "all_edges_declared": not a.inferred,
                **{k: v for k, v in _mark_fields(a.mark).items() if k not in ("status", "recorded_at")},
            }
            for a in report.affected
        ],
        "pointers": [
            {
                "repo": p.repo,
                "kind": p.kind,
                "dataset": p.dataset,
                "status": p.status,
                "successor": p.successor,
                "relation": p.relation,
                "declared": p.declared,
            }
            for p in report.pointers
        ],
        "evidence": [
            {
                "lineage_id": e.lineage_id,
                "recorded_at": e.recorded_at,
                "followed": e.followed,
                "rows_in": e.result.rows_in,
                "rows_removed": e.result.rows_removed,
                "removed_by_signal": dict(sorted(e.result.removed_by_signal.items())),
                "result_merkle_root": e.result.merkle_root,
            }
            for e in report.evidence
        ],
    }


def render_json(report: LineageReport) -> str:
    return json.dumps(to_json(report), indent=2, sort_keys=True) + "\n"


# ---- text -------------------------------------------------------------------------------------


def signals_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items()) if v) or "no per-signal counts"


def removed_text(mark: Mark) -> str:
    rel = mark.release
    if rel is None:
        return "removed-row count unknown (marked without a release)"
    return f"{rel.rows_removed:,} rows removed ({signals_text(rel.removed_by_signal)})"


def successor_text(mark: Mark) -> str:
    parts = []
    if mark.successor:
        parts.append(f"successor {mark.successor}")
    if mark.release is not None:
        parts.append(f"release Merkle root {mark.release.merkle_root} (sequence {mark.release.sequence})")
    return "; ".join(parts) or "no cleaned successor recorded"


def path_text(steps: Iterable[Step], first: str) -> str:
    out = [first]
    for s in steps:
        out.append(f" -[{s.relation}, {'declared' if s.declared else 'inferred'}]-> {s.child}")
    return "".join(out)


def render_text(report: LineageReport) -> str:
    lines = [
        f"lineage report: {len(report.marked)} marked dataset(s), {len(report.affected)} affected repo(s), "
        f"{len(report.pointers)} card(s) pointing at withdrawn, gated or renamed datasets; "
        f"{report.warnings} card warning(s)",
        "",
    ]
    for m in report.marked:
        where = "" if m.in_graph else " (not in the lineage graph)"
        lines.append(f"marked {m.kind} {m.id}{where}: {removed_text(m.mark)}")
        lines.append(f"  cleaned successor: {successor_text(m.mark)}")
        if m.mark.source == "evidence":
            lines.append(f"  from apply evidence (followed release {m.mark.followed})")
    if report.marked:
        lines.append("")
    for a in report.affected:
        lines.append(f"{a.kind} {a.id}")
        lines.append(f"  nearest marked ancestor: {a.ancestor}: {removed_text(a.mark)}")
        lines.append(f"  cleaned successor: {successor_text(a.mark)}")
        lines.append(f"  path: {path_text(a.steps, a.ancestor)}")
        lines.append("")
    if report.pointers:
        lines.append("cards pointing at withdrawn, gated or renamed datasets:")
        for p in report.pointers:
            succ = f" (successor {p.successor})" if p.successor else ""
            how = "declared" if p.declared else "inferred"
            lines.append(f"  {p.kind} {p.repo} -> {p.dataset}: {p.status}{succ} [{p.relation}, {how}]")
    return "\n".join(lines).rstrip("\n") + "\n"


# ---- HTML -------------------------------------------------------------------------------------

# Fill and stroke per box kind, and the two edge styles: distinct colours so a screenshot can find every
# box and every line (the browser test relies on this). Text and borders never use them.
COLORS: dict[str, str] = {
    "marked": "#f6c9c9",
    "model": "#cfe0f5",
    "dataset": "#cdebd3",
    "unknown": "#e2e2e2",
    "declared": "#3d4f66",
    "inferred": "#b0621c",
}
BOX_W, BOX_H = 220, 34
COL_GAP, ROW_GAP = 110, 22
PAD = 16
LABEL_AT = 0.68  # relation labels sit nearer the child: a parent's fanned-out edges part by then
MAX_DRAWN = 400  # a graph this big is unreadable anyway; the JSON has every repo
_CHARS = 30


def _label(id: str) -> str:
    return id if len(id) <= _CHARS else id[: _CHARS - 1] + "…"


@dataclass(frozen=True)
class Layout:
    """Box positions (top-left) by node id, the edges drawn, the canvas size, and nodes left out."""

    boxes: dict[str, tuple[float, float]]
    kinds: dict[str, str]
    edges: tuple[Step, ...]
    width: int
    height: int
    left_out: int


def layout(report: LineageReport) -> Layout:
    """Layers left to right by depth from the marked roots; within a layer, children follow the order of
    their parents (fewer crossings), then their ids."""
    depth: dict[str, int] = {m.id: 0 for m in report.marked if m.in_graph}
    kinds: dict[str, str] = {m.id: "marked" for m in report.marked if m.in_graph}
    parent: dict[str, str] = {}
    ordered = sorted(report.affected, key=lambda a: (a.depth, a.id))
    kept = ordered[:MAX_DRAWN]
    for a in kept:
        depth[a.id] = a.depth
        kinds[a.id] = a.kind if a.kind in ("model", "dataset") else "unknown"
        parent[a.id] = a.nodes[-2]
    edges = sorted(
        {s for a in kept for s in a.steps if s.parent in depth and s.child in depth},
        key=lambda s: (s.parent, s.child, s.relation),
    )
    layers: dict[int, list[str]] = {}
    for n, d in depth.items():
        layers.setdefault(d, []).append(n)
    rank: dict[str, int] = {}
    boxes: dict[str, tuple[float, float]] = {}
    for d in sorted(layers):
        members = sorted(layers[d], key=lambda n: (rank.get(parent.get(n, ""), -1), n))
        for i, n in enumerate(members):
            rank[n] = i
            boxes[n] = (PAD + d * (BOX_W + COL_GAP), PAD + i * (BOX_H + ROW_GAP))
    cols = max(layers, default=0) + 1
    rows = max((len(v) for v in layers.values()), default=0)
    width = int(PAD * 2 + cols * BOX_W + (cols - 1) * COL_GAP)
    height = int(PAD * 2 + rows * BOX_H + max(0, rows - 1) * ROW_GAP)
    return Layout(boxes, kinds, tuple(edges), width, height, len(ordered) - len(kept))


def graph_svg(report: LineageReport) -> str:
    lay = layout(report)
    if not lay.boxes:
        return '<p class="empty">Nothing to draw: no marked dataset is in the lineage graph.</p>'
    out = [
        f'<svg data-graph="lineage" xmlns="http://www.w3.org/2000/svg" width="{lay.width}" '
        f'height="{lay.height}" viewBox="0 0 {lay.width} {lay.height}" role="img" '
        'aria-label="lineage graph">'
    ]
    for s in lay.edges:
        (px, py), (cx, cy) = lay.boxes[s.parent], lay.boxes[s.child]
        x1, y1, x2, y2 = px + BOX_W, py + BOX_H / 2, cx, cy + BOX_H / 2
        style = "declared" if s.declared else "inferred"
        dash = "" if s.declared else ' stroke-dasharray="7 4"'
        out.append(
            f'<g class="edge {style}"><line data-edge="{escape(s.parent)}&gt;{escape(s.child)}" '
            f'x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{COLORS[style]}" '
            f'stroke-width="2"{dash}><title>{escape(s.parent)} → {escape(s.child)}: {escape(s.relation)}'
            f" ({style})</title></line>"
            f'<text class="rel" x="{x1 + LABEL_AT * (x2 - x1):.1f}" y="{y1 + LABEL_AT * (y2 - y1) - 4:.1f}" '
            f'text-anchor="middle">{escape(s.relation)}</text></g>'
        )
    for n, (x, y) in sorted(lay.boxes.items()):
        kind = lay.kinds[n]
        out.append(
            f'<g class="node {kind}"><rect data-node="{escape(n)}" x="{x:.1f}" y="{y:.1f}" width="{BOX_W}" '
            f'height="{BOX_H}" rx="5" fill="{COLORS[kind]}"><title>{escape(n)} ({kind})</title></rect>'
            f'<text x="{x + 8:.1f}" y="{y + BOX_H / 2 + 4:.1f}">{escape(_label(n))}</text></g>'
        )
    out.append("</svg>")
    note = (
        f'<p class="note">{lay.left_out:,} deeper repos are not drawn; the tables and the JSON list '
        "them all.</p>"
        if lay.left_out
        else ""
    )
    return "".join(out) + note


_CSS = """
*{box-sizing:border-box}
body{margin:0;background:#f4f5f7;color:#1d232b;font:14px/1.45 system-ui,-apple-system,"Segoe UI",
Roboto,"DejaVu Sans",sans-serif}
main{padding:20px}
h1{font-size:22px;margin:0 0 2px}
h2{font-size:15px;margin:0 0 6px}
.sub,.why,.note,.empty{color:#5b6570;margin:0 0 8px;font-size:13px}
.empty{font-style:italic}
.card{background:#fff;border:1px solid #dde1e6;border-radius:8px;padding:12px 14px;margin-bottom:12px;
overflow-x:auto}
svg{display:block}
svg text{font:12px ui-monospace,"DejaVu Sans Mono",monospace;fill:#1d232b}
svg text.rel{font-size:11px;fill:#5b6570}
table{border-collapse:collapse;font-size:13px}
th,td{text-align:left;padding:3px 10px 3px 0;vertical-align:top}
code{font:12px ui-monospace,"DejaVu Sans Mono",monospace;background:#eef0f3;padding:1px 4px;border-radius:3px}
.key{display:inline-block;width:12px;height:12px;border-radius:2px;margin:0 4px 0 10px;vertical-align:-1px}
"""


def _legend() -> str:
    items = [("marked", "marked dataset"), ("model", "model"), ("dataset", "dataset")]
    keys = "".join(f'<span class="key" style="background:{COLORS[k]}"></span>{escape(t)}' for k, t in items)
    return (
        f'<p class="why">{keys}<span style="margin-left:14px">solid line: declared in a card; '
        "dashed: inferred</span></p>"
    )


def render_html(report: LineageReport) -> str:
    e = escape
    rows = []
    for a in report.affected:
        path = " → ".join(f"<code>{e(n)}</code>" for n in a.nodes)
        how = "all declared" if not a.inferred else "some inferred"
        rows.append(
            f'<tr data-repo="{e(a.id)}"><td><code>{e(a.id)}</code></td><td>{e(a.kind)}</td>'
            f"<td><code>{e(a.ancestor)}</code><br>{e(removed_text(a.mark))}</td>"
            f"<td>{e(successor_text(a.mark))}</td><td>{path}<br>{how}</td></tr>"
        )
    affected = (
        "<table><tr><th>repo</th><th>kind</th><th>nearest marked ancestor</th><th>cleaned successor</th>"
        "<th>path</th></tr>" + "".join(rows) + "</table>"
        if rows
        else '<p class="empty">No repo in the graph descends from a marked dataset.</p>'
    )
    marked = "".join(
        f"<li><code>{e(m.id)}</code>{'' if m.in_graph else ' (not in the lineage graph)'}: "
        f"{e(removed_text(m.mark))}; {e(successor_text(m.mark))}</li>"
        for m in report.marked
    )
    pointers = "".join(
        f"<li><code>{e(p.repo)}</code> → <code>{e(p.dataset)}</code>: {e(p.status)}"
        f"{' (successor <code>' + e(p.successor) + '</code>)' if p.successor else ''}</li>"
        for p in report.pointers
    )
    counts = to_json(report)["counts"]
    sub = (
        f"{counts['marked']} marked dataset(s); {counts['affected']} affected repo(s) "
        f"({counts['affected_models']} models, {counts['affected_datasets']} datasets); "
        f"{counts['card_warnings']} card warning(s)"
    )
    body = [
        "<h1>Lineage: what descends from datasets with removed rows</h1>",
        f'<p class="sub">{e(sub)}</p>',
        f'<section class="card"><h2>Graph</h2>{_legend()}{graph_svg(report)}</section>',
        f'<section class="card"><h2>Marked datasets</h2><ul>{marked}</ul></section>'
        if marked
        else '<section class="card"><h2>Marked datasets</h2><p class="empty">None.</p></section>',
        f'<section class="card"><h2>Affected repos</h2>{affected}</section>',
    ]
    if pointers:
        body.append(
            '<section class="card"><h2>Cards pointing at withdrawn, gated or renamed datasets</h2>'
            f"<ul>{pointers}</ul></section>"
        )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        f"<title>expunge lineage report</title><style>{_CSS}</style></head><body><main>"
        + "".join(body)
        + "</main></body></html>\n"
    )


def render(report: LineageReport, fmt: str) -> str:
    if fmt == "json":
        return render_json(report)
    if fmt == "html":
        return render_html(report)
    return render_text(report)
