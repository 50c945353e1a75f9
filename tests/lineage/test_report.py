"""The lineage report: who descends from a marked dataset, by which path, explained by the nearest marked
ancestor; text, stable JSON, and HTML whose graph is drawn (checked in a real headless Chromium)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from expunge.lineage.cards import Cards, Edge, Node, read_sources
from expunge.lineage.graph import LineageGraph
from expunge.lineage.marks import Mark, Marks, ReleaseRef, add_mark
from expunge.lineage.report import (
    BOX_H,
    BOX_W,
    COLORS,
    Affected,
    LineageReport,
    Marked,
    Step,
    build_report,
    layout,
    render_html,
    render_json,
    render_text,
)
from tests.chromium import find_chromium, run_chromium

FIXTURE = Path(__file__).parent / "fixtures" / "sd-family"
ROOT_A = "a" * 64
ROOT_S = "5" * 64


def _edge(parent: str, child: str, relation: str, declared: bool = True) -> Edge:
    return Edge(parent, child, relation, declared, f"{child}/README.md")


def hand_graph() -> LineageGraph:
    """A small family: a marked corpus, a marked subset of it with its own cleaning, models trained on
    each, fine-tunes, an adapter known only by inference, a merge with an unrelated model, a quantisation;
    an unrelated model on an unmarked dataset; a card pointing at a withdrawn dataset."""
    kinds = {
        "laion/laion2b-en": "dataset",
        "laion/other": "dataset",
        "e/subset": "dataset",
        "w/old": "dataset",
        "a/base": "model",
        "a/ft": "model",
        "b/lora": "model",
        "c/merge": "model",
        "d/q": "model",
        "f/model": "model",
        "g/pointer": "model",
        "z/unrelated": "model",
    }
    nodes = {k: Node(k, k.upper() if k == "a/base" else k, v) for k, v in kinds.items()}
    edges = [
        _edge("laion/laion2b-en", "a/base", "trained_on"),
        _edge("a/base", "a/ft", "finetune"),
        _edge("a/ft", "b/lora", "adapter", declared=False),
        _edge("a/ft", "c/merge", "merge"),
        _edge("z/unrelated", "c/merge", "merge"),
        _edge("c/merge", "d/q", "quantized"),
        _edge("laion/laion2b-en", "e/subset", "subset"),
        _edge("e/subset", "f/model", "trained_on"),
        _edge("laion/other", "z/unrelated", "trained_on"),
        _edge("w/old", "g/pointer", "trained_on"),
    ]
    return LineageGraph.from_cards(Cards(nodes, edges, [], len(nodes)))


def _ref(root: str, removed: int, signals: dict[str, int], sequence: int = 2) -> ReleaseRef:
    return ReleaseRef(root, "f" * 64, sequence, 1_000_000, removed, signals)


def hand_marks() -> Marks:
    marks = Marks()
    add_mark(
        marks,
        Mark(
            "laion/laion2b-en",
            "removed",
            "2024-08-30T00:00:00Z",
            _ref(ROOT_A, 2236, {"url_md5": 2000, "pdq": 236}),
            "laion/relaion2b-en",
        ),
    )
    add_mark(marks, Mark("e/subset", "removed", "2024-09-01T00:00:00Z", _ref(ROOT_S, 17, {"url_md5": 17}, 1)))
    add_mark(marks, Mark("w/old", "withdrawn", "2024-09-02T00:00:00Z", None, "w/new"))
    return marks


def test_affected_paths_and_nearest_marked_ancestor() -> None:
    report = build_report(hand_graph(), hand_marks())
    by_id = {a.id: a for a in report.affected}
    assert set(by_id) == {"a/base", "a/ft", "b/lora", "c/merge", "d/q", "f/model"}
    assert "z/unrelated" not in by_id and "g/pointer" not in by_id and "laion/other" not in by_id
    assert {m.id for m in report.marked} == {"laion/laion2b-en", "e/subset"}
    assert by_id["d/q"].nodes == ("laion/laion2b-en", "a/base", "a/ft", "c/merge", "d/q")
    assert [s.relation for s in by_id["d/q"].steps] == ["trained_on", "finetune", "merge", "quantized"]
    assert by_id["b/lora"].inferred and not by_id["d/q"].inferred
    # f/model descends from both marks: its nearest is the subset, with the subset's own count.
    assert by_id["f/model"].ancestor == "e/subset" and by_id["f/model"].nodes == ("e/subset", "f/model")
    assert by_id["f/model"].mark.rows_removed == 17
    assert by_id["a/ft"].mark.rows_removed == 2236 and by_id["a/ft"].mark.successor == "laion/relaion2b-en"
    (pointer,) = report.pointers
    assert (pointer.repo, pointer.dataset, pointer.status, pointer.successor) == (
        "g/pointer",
        "w/old",
        "withdrawn",
        "w/new",
    )


def test_nothing_marked_or_marks_outside_the_graph() -> None:
    marks = Marks()
    empty = build_report(hand_graph(), marks)
    assert empty.affected == () and empty.marked == ()
    add_mark(marks, Mark("nobody/knows", "removed", "2024-01-01T00:00:00Z", _ref(ROOT_A, 1, {})))
    report = build_report(hand_graph(), marks)
    assert report.affected == () and [(m.id, m.in_graph) for m in report.marked] == [("nobody/knows", False)]
    assert "not in the lineage graph" in render_text(report)
    assert "Nothing to draw" in render_html(report)


def test_text_has_one_block_per_repo_with_path_count_and_successor() -> None:
    text = render_text(build_report(hand_graph(), hand_marks()))
    blocks = [b for b in text.split("\n\n") if b.startswith(("model ", "dataset "))]
    assert [b.splitlines()[0] for b in blocks] == [
        "model a/base",
        "model a/ft",
        "model b/lora",
        "model c/merge",
        "model d/q",
        "model f/model",
    ]
    lora = next(b for b in blocks if b.startswith("model b/lora"))
    assert "-[adapter, inferred]-> b/lora" in lora and "-[trained_on, declared]-> a/base" in lora
    assert "2,236 rows removed (pdq 236, url_md5 2,000)" in lora
    assert f"successor laion/relaion2b-en; release Merkle root {ROOT_A} (sequence 2)" in lora
    f_model = next(b for b in blocks if b.startswith("model f/model"))
    assert "nearest marked ancestor: e/subset: 17 rows removed" in f_model and ROOT_S in f_model
    assert "g/pointer -> w/old: withdrawn (successor w/new)" in text


def test_json_is_stable_sorted_and_complete() -> None:
    report = build_report(hand_graph(), hand_marks())
    out = render_json(report)
    assert out == render_json(build_report(hand_graph(), hand_marks()))
    data = json.loads(out)
    assert out == json.dumps(data, indent=2, sort_keys=True) + "\n"
    assert [a["id"] for a in data["affected"]] == sorted(a["id"] for a in data["affected"])
    dq = next(a for a in data["affected"] if a["id"] == "d/q")
    assert dq["marked_ancestor"] == "laion/laion2b-en" and dq["depth"] == 4 and dq["rows_removed"] == 2236
    assert dq["successor"] == {
        "id": "laion/relaion2b-en",
        "merkle_root": ROOT_A,
        "files_root": "f" * 64,
        "sequence": 2,
    }
    assert dq["edges"][2] == {"parent": "a/ft", "child": "c/merge", "relation": "merge", "declared": True}
    assert data["counts"] == {
        "marked": 2,
        "affected": 6,
        "affected_models": 6,
        "affected_datasets": 0,
        "pointers": 1,
        "card_warnings": 0,
    }
    assert "README.md" not in out  # the cards' paths are not part of the report


def test_html_escapes_every_id_and_has_no_script_or_link() -> None:
    evil = "x/<img src=q onerror=alert(1)>"
    mark = Mark(evil, "removed", "t", _ref(ROOT_A, 3, {"<b>": 3}), "s/<script>")
    report = LineageReport(
        (Marked(evil, "dataset", True, mark),),
        (
            Affected(
                "m/&amp;<i>",
                "model",
                evil,
                mark,
                (evil, "m/&amp;<i>"),
                (Step(evil, "m/&amp;<i>", "finetune", False),),
            ),
        ),
        (),
        (),
        0,
    )
    html = render_html(report)
    assert "<img" not in html and "<script" not in html and "<i>" not in html and "<b>" not in html
    assert "&lt;img src=q onerror=alert(1)&gt;" in html and "m/&amp;amp;&lt;i&gt;" in html
    bare = html.replace("http-equiv", "").replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "http" not in bare and "<a " not in html


# ---- Chromium --------------------------------------------------------------------------------

_EXACT = ("--force-device-scale-factor=1", "--hide-scrollbars")  # pixel positions as laid out


@dataclass
class _Drawn:
    boxes: dict[str, tuple[float, float, float, float, str]] = field(default_factory=dict)  # x y w h fill
    lines: dict[str, tuple[float, float, float, float, str, bool]] = field(default_factory=dict)


class _Svg(HTMLParser):
    """The graph's boxes (``rect[data-node]``) and lines (``line[data-edge]``) as Chromium parsed them."""

    def __init__(self) -> None:
        super().__init__()
        self.drawn = _Drawn()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "rect" and "data-node" in a:
            self.drawn.boxes[a["data-node"]] = (
                float(a["x"]),
                float(a["y"]),
                float(a["width"]),
                float(a["height"]),
                a["fill"],
            )
        elif tag == "line" and "data-edge" in a:
            self.drawn.lines[a["data-edge"]] = (
                float(a["x1"]),
                float(a["y1"]),
                float(a["x2"]),
                float(a["y2"]),
                a["stroke"],
                "stroke-dasharray" in a,
            )


def _near(img: np.ndarray, colour: str, tol: int) -> np.ndarray:
    rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)], dtype=np.int16)
    return (np.abs(img.astype(np.int16) - rgb) <= tol).all(axis=2)


def check_drawn_in_chromium(report: LineageReport, tmp_path: Path) -> None:
    binary = find_chromium()
    if binary is None:
        pytest.skip("no chromium binary found (Debian: apt-get install -y chromium)")
    page = tmp_path / "lineage.html"
    page.write_text(render_html(report), encoding="utf-8")
    lay = layout(report)
    window = (max(1200, lay.width + 120), max(900, lay.height + 400))  # the whole graph on screen
    parser = _Svg()
    parser.feed(run_chromium(binary, tmp_path / "profile-dom", page, window, "--dump-dom", extra=_EXACT))
    drawn = parser.drawn
    expected_nodes = {a.id for a in report.affected} | {m.id for m in report.marked if m.in_graph}
    assert set(drawn.boxes) == expected_nodes
    assert all(w > 0 and h > 0 for _, _, w, h, _ in drawn.boxes.values())
    expected_edges = {f"{s.parent}>{s.child}" for a in report.affected for s in a.steps}
    assert set(drawn.lines) == expected_edges
    for key, (x1, y1, x2, y2, _, dashed) in drawn.lines.items():
        assert abs(x2 - x1) + abs(y2 - y1) > 20, key
        parent, child = key.split(">")
        assert (
            x1 == drawn.boxes[parent][0] + BOX_W and x2 == drawn.boxes[child][0]
        )  # box to box, left to right
        step = next(s for a in report.affected for s in a.steps if (s.parent, s.child) == (parent, child))
        assert dashed == (not step.declared)

    # The pixels: every box is a visible region of its fill colour where the SVG says, every line drawn.
    shot = tmp_path / "lineage.png"
    run_chromium(binary, tmp_path / "profile-shot", page, window, f"--screenshot={shot}", extra=_EXACT)
    img = np.asarray(Image.open(shot).convert("RGB"))
    assert img.shape[:2] == (window[1], window[0])
    regions: dict[str, list[tuple[int, int, int, int]]] = {}
    for kind in ("marked", "model", "dataset"):
        labels, _ = ndimage.label(_near(img, COLORS[kind], 2))
        regions[kind] = []
        for sl in ndimage.find_objects(labels):
            if sl is None:
                continue
            h, w = sl[0].stop - sl[0].start, sl[1].stop - sl[1].start
            if w >= BOX_W - 4 and h >= BOX_H - 4:  # a box, not a legend swatch
                regions[kind].append((sl[1].start, sl[0].start, w, h))
    kinds = {
        n: k for k in ("marked", "model", "dataset") for n, b in drawn.boxes.items() if b[4] == COLORS[k]
    }
    for kind in regions:
        assert len(regions[kind]) == sum(1 for k in kinds.values() if k == kind), (kind, regions[kind])
    # Page offset of the SVG: the box of the first marked node, found in the pixels.
    first = min((n for n, k in kinds.items() if k == "marked"), key=lambda n: drawn.boxes[n][:2])
    bx, by = drawn.boxes[first][:2]
    px, py = min(regions["marked"], key=lambda r: (r[0], r[1]))[:2]
    dx, dy = px - bx, py - by
    for name, (x, y, _, _, _) in drawn.boxes.items():
        cx, cy = int(x + dx + 4), int(y + dy + 4)  # inside the box, clear of its label
        kind = kinds[name]
        assert _near(img[cy - 1 : cy + 2, cx - 1 : cx + 2], COLORS[kind], 2).all(), (name, cx, cy)
    for key, (x1, y1, x2, y2, stroke, _) in drawn.lines.items():
        mask = _near(img, stroke, 60)
        hits = 0
        for t in np.linspace(0.1, 0.35, 12):
            sx, sy = int(x1 + dx + t * (x2 - x1)), int(y1 + dy + t * (y2 - y1))
            hits += bool(mask[sy - 2 : sy + 3, sx - 2 : sx + 3].any())
        assert hits >= 6, (key, hits)


def test_html_graph_renders_in_chromium(tmp_path: Path) -> None:
    check_drawn_in_chromium(build_report(hand_graph(), hand_marks()), tmp_path)


# ---- the SD-family fixture ------------------------------------------------------------------


def _sd_graph() -> LineageGraph:
    if not FIXTURE.is_dir():
        pytest.skip("the SD-family card fixture is not there yet")
    return LineageGraph.from_cards(read_sources([FIXTURE]))


def test_sd_family_report(tmp_path: Path) -> None:
    graph = _sd_graph()
    marks = Marks()
    root = graph.resolve("laion/laion2B-en")
    assert root is not None
    add_mark(
        marks,
        Mark(
            root,
            "removed",
            "2024-08-30T00:00:00Z",
            _ref(ROOT_A, 2236, {"url_md5": 2236}),
            "laion/relaion2b-en",
        ),
    )
    report = build_report(graph, marks)
    ids = {a.id for a in report.affected}
    by_id = {a.id: a for a in report.affected}
    assert all(a.ancestor == root and a.mark.rows_removed == 2236 for a in report.affected)
    sd15 = graph.resolve("runwayml/stable-diffusion-v1-5")
    assert sd15 in ids
    assert by_id[sd15].nodes[0] == root and by_id[sd15].nodes[-1] == sd15
    # Everything under SD 1.5 goes through it, and every step is an edge of the graph.
    under = [a for a in report.affected if sd15 in a.nodes[:-1]]
    assert under, "the fixture has fine-tunes, adapters, merges or quantisations of SD 1.5"
    for a in report.affected:
        for s in a.steps:
            if s.relation == "alias":  # an owner-less card naming the dataset: inferred, never declared
                assert not s.declared and s.parent == root and s.child in graph.aliases(root)
                continue
            assert any(e.child == s.child and e.relation == s.relation for e in graph.out_edges(s.parent))
    # Nothing downstream of the mark (or of a card naming it without its owner) is left out, and
    # nothing else is in.
    aliases = graph.aliases(root)
    assert aliases, "the fixture has a card naming laion2B-en without its owner"
    assert ids == set(graph.downstream([root, *aliases])) | set(aliases)
    ownerless = graph.resolve("messy/ownerless-dataset")
    assert ownerless in ids and by_id[ownerless].steps[0].relation == "alias"
    for a in report.affected:
        ups = graph.upstream(a.id) | {a.id}
        assert root in ups or any(x in ups for x in aliases)
    check_drawn_in_chromium(report, tmp_path)
