"""The lineage graph: downstream sets and paths over the SD-family fixture, storage, and a reference
BFS for random graphs."""

from __future__ import annotations

import pickle
import random
from collections import deque
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from expunge.errors import ExpungeError
from expunge.lineage.cards import Cards, Edge, Node, read_tree
from expunge.lineage.graph import EDGES_FILE, META_FILE, NODES_FILE, LineageGraph, LineagePath

FIXTURE = Path(__file__).parent / "fixtures" / "sd-family"

DOWNSTREAM_OF_LAION2B = {
    "laion/laion-aesthetics-v2",
    "compvis/stable-diffusion-v1-1",
    "compvis/stable-diffusion-v1-2",
    "compvis/stable-diffusion-v1-4",
    "runwayml/stable-diffusion-v1-5",
    "example-artist/dreamy-diffusion",
    "example-lab/photoreal-v1",
    "example-lab/photoreal-v2",
    "example-artist/watercolor-lora",
    "example-artist/ink-lora",
    "example-mixer/dreamy-photoreal-merge",
    "example-quant/sd15-int8",
    "example-quant/merge-q4",
    "laion/clip-vit-h-14-laion2b-s32b-b79k",
    "stabilityai/stable-diffusion-2",
    "stabilityai/stable-diffusion-2-1",
    "messy/string-datasets",
    "messy/case-difference",
    "messy/cycle-a",
    "messy/cycle-b",
    "messy/non-utf8",
    "messy/late-front-matter",
    "messy/bad-relation",
}
UNRELATED = {
    "google-bert/bert-base-uncased",
    "example-nlp/bert-finetuned-qa",
    "example-nlp/tiny-classifier",
    "wikimedia/wikipedia",
    "laion/laion5b",
    "laion/laion-high-resolution",
    "laion2b-en",
    "messy/ownerless-dataset",
    "messy/yaml-error",
    "messy/unknown-base",
    "messy/list-of-numbers",
    "messy/local-adapter",
}


@pytest.fixture(scope="module")
def cards() -> Cards:
    return read_tree(FIXTURE)


@pytest.fixture(scope="module")
def graph(cards: Cards) -> LineageGraph:
    return LineageGraph.from_cards(cards)


def _bfs_dist(edges: list[tuple[str, str]], roots: set[str]) -> dict[str, int]:
    """The reference: plain BFS distances from the nearest root."""
    adj: dict[str, list[str]] = {}
    for p, c in edges:
        adj.setdefault(p, []).append(c)
    dist = {r: 0 for r in roots}
    queue = deque(sorted(roots))
    while queue:
        v = queue.popleft()
        for w in adj.get(v, []):
            if w not in dist:
                dist[w] = dist[v] + 1
                queue.append(w)
    return dist


def _check_path(path: LineagePath, repo: str, roots: set[str]) -> None:
    assert path.nodes[0] in roots and path.nodes[-1] == repo
    assert len(path.edges) == len(path.nodes) - 1
    for i, e in enumerate(path.edges):
        assert (e.parent, e.child) == (path.nodes[i], path.nodes[i + 1])


def test_downstream_of_laion2b_is_exactly_the_family(graph: LineageGraph) -> None:
    found = graph.downstream(["laion/laion2B-en"])
    assert set(found) == DOWNSTREAM_OF_LAION2B
    assert not set(found) & UNRELATED
    assert all(graph.node(x) is not None for x in UNRELATED)  # present, just not downstream


def test_paths_are_shortest_and_connected(cards: Cards, graph: LineageGraph) -> None:
    roots = {"laion/laion2b-en"}
    found = graph.downstream(roots)
    dist = _bfs_dist([(e.parent, e.child) for e in cards.edges], roots)
    for repo, path in found.items():
        _check_path(path, repo, roots)
        assert len(path.edges) == dist[repo]


def test_specific_paths(graph: LineageGraph) -> None:
    found = graph.downstream(["LAION/laion2B-en"])
    assert found["runwayml/stable-diffusion-v1-5"].nodes == (
        "laion/laion2b-en",
        "laion/laion-aesthetics-v2",
        "runwayml/stable-diffusion-v1-5",
    )
    # Two shortest paths of length 3: the lexicographically smaller node sequence wins.
    assert found["compvis/stable-diffusion-v1-4"].nodes == (
        "laion/laion2b-en",
        "compvis/stable-diffusion-v1-1",
        "compvis/stable-diffusion-v1-2",
        "compvis/stable-diffusion-v1-4",
    )
    sd2 = found["stabilityai/stable-diffusion-2"]
    assert sd2.nodes == (
        "laion/laion2b-en",
        "laion/clip-vit-h-14-laion2b-s32b-b79k",
        "stabilityai/stable-diffusion-2",
    )
    assert [(e.relation, e.declared) for e in sd2.edges] == [("trained_on", True), ("component", False)]
    assert sd2.edges[1].card == "models/stabilityai/stable-diffusion-2/text_encoder/config.json"
    lora = found["example-artist/watercolor-lora"].edges[-1]
    assert (lora.relation, lora.declared) == ("adapter", True)


def test_declared_paths_beat_inferred_ones_of_the_same_length(graph: LineageGraph) -> None:
    found = graph.downstream(["laion/laion2b-en", "laion/laion5b"])
    sd2 = found["stabilityai/stable-diffusion-2"]
    assert sd2.nodes == ("laion/laion5b", "laion/laion-high-resolution", "stabilityai/stable-diffusion-2")
    assert all(e.declared for e in sd2.edges)
    assert "laion/laion5b" not in found and "laion/laion2b-en" not in found
    assert "messy/list-of-numbers" in found and "laion/laion-high-resolution" in found


def test_a_root_downstream_of_another_root_is_not_listed(graph: LineageGraph) -> None:
    found = graph.downstream(["laion/laion2b-en", "runwayml/stable-diffusion-v1-5"])
    assert "runwayml/stable-diffusion-v1-5" not in found
    assert found["example-lab/photoreal-v1"].nodes == (
        "runwayml/stable-diffusion-v1-5",
        "example-lab/photoreal-v1",
    )


def test_paths_do_not_depend_on_card_order(cards: Cards, graph: LineageGraph) -> None:
    shuffled = list(cards.edges)
    random.Random(7).shuffle(shuffled)
    nodes = dict(reversed(list(cards.nodes.items())))
    other = LineageGraph.from_cards(Cards(nodes, shuffled, cards.warnings, cards.cards_read))
    assert other.downstream(["laion/laion2b-en"]) == graph.downstream(["laion/laion2b-en"])


def test_unknown_roots_and_unrelated_roots(graph: LineageGraph) -> None:
    assert graph.downstream([]) == {}
    assert graph.downstream(["nobody/nothing", "not an id"]) == {}
    assert set(graph.downstream(["wikimedia/wikipedia"])) == {
        "google-bert/bert-base-uncased",
        "example-nlp/bert-finetuned-qa",
        "example-nlp/tiny-classifier",
    }


def test_upstream(graph: LineageGraph) -> None:
    assert graph.upstream("stabilityai/stable-diffusion-2-1") == {
        "stabilityai/stable-diffusion-2",
        "laion/laion-high-resolution",
        "laion/laion5b",
        "laion/clip-vit-h-14-laion2b-s32b-b79k",
        "laion/laion2b-en",
    }
    assert "messy/cycle-a" not in graph.upstream("messy/cycle-a")
    assert "messy/cycle-b" in graph.upstream("messy/cycle-a")
    assert graph.upstream("nobody/nothing") == set()


def test_resolve_node_and_aliases(graph: LineageGraph) -> None:
    assert (
        graph.resolve("https://huggingface.co/RunwayML/Stable-Diffusion-v1-5")
        == "runwayml/stable-diffusion-v1-5"
    )
    assert graph.resolve("datasets--laion--laion2B-en") == "laion/laion2b-en"
    assert graph.resolve("nobody/nothing") is None
    assert graph.resolve("/home/user/x") is None
    node = graph.node("MESSY/case-difference")
    assert node == Node("messy/case-difference", "messy/Case-Difference", "model", True)
    assert graph.node("laion/laion-high-resolution") == Node(
        "laion/laion-high-resolution", "laion/laion-high-resolution", "dataset", True, True, "cc-by-4.0"
    )
    assert graph.node("nobody/nothing") is None
    assert graph.aliases("laion/laion2B-en") == ["laion2b-en"]
    assert graph.aliases("laion/laion5B") == []


def test_edge_lists(graph: LineageGraph) -> None:
    assert {e.child for e in graph.out_edges("example-lab/photoreal-v1")} == {
        "example-lab/photoreal-v2",
        "example-mixer/dreamy-photoreal-merge",
    }
    assert [(e.parent, e.relation) for e in graph.in_edges("example-mixer/dreamy-photoreal-merge")] == [
        ("example-artist/dreamy-diffusion", "merge"),
        ("example-lab/photoreal-v1", "merge"),
    ]
    assert graph.out_edges("nobody/nothing") == [] and graph.in_edges("nobody/nothing") == []


def test_from_cards_adds_missing_endpoints_and_dedupes(cards: Cards) -> None:
    edges = [
        Edge("a/x", "b/y", "finetune", False, "c1"),
        Edge("a/x", "b/y", "finetune", True, "c2"),
        Edge("a/x", "b/y", "merge", True, "c3"),
    ]
    g = LineageGraph.from_cards(Cards({}, edges, [], 0))
    assert g.node_count == 2 and g.edge_count == 2
    assert g.node("a/x") == Node("a/x", "a/x", "unknown")
    assert [(e.relation, e.declared, e.card) for e in g.out_edges("a/x")] == [
        ("finetune", True, "c2"),
        ("merge", True, "c3"),
    ]


# --------------------------------------------------------------------------------------------------
# Storage


def test_save_load_round_trip_is_byte_identical(tmp_path: Path, graph: LineageGraph) -> None:
    graph.save(tmp_path / "a", tmp_path / "tmp")
    loaded = LineageGraph.load(tmp_path / "a")
    loaded.save(tmp_path / "b", tmp_path / "tmp")
    LineageGraph.from_cards(read_tree(FIXTURE)).save(tmp_path / "c", tmp_path / "tmp")
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == ["edges.parquet", "graph.json", "nodes.parquet", "warnings.parquet"]
    for name in names:
        data = (tmp_path / "a" / name).read_bytes()
        assert (tmp_path / "b" / name).read_bytes() == data
        assert (tmp_path / "c" / name).read_bytes() == data
    assert loaded.downstream(["laion/laion2b-en"]) == graph.downstream(["laion/laion2b-en"])
    assert loaded.warnings == graph.warnings
    assert loaded.node("messy/case-difference") == graph.node("messy/case-difference")
    assert loaded.cards_read == graph.cards_read == 35
    assert list((tmp_path / "tmp").iterdir()) == []


def test_graph_json_counts(tmp_path: Path, graph: LineageGraph) -> None:
    import json

    graph.save(tmp_path, tmp_path)
    meta = json.loads((tmp_path / META_FILE).read_text())
    assert meta["nodes"] == graph.node_count and meta["edges"] == graph.edge_count
    assert meta["warnings"] == len(graph.warnings)
    assert meta["inferred_edges"] == 2
    assert meta["edges_by_relation"]["component"] == 1


def test_load_refuses_missing_or_damaged_graphs(tmp_path: Path, graph: LineageGraph) -> None:
    with pytest.raises(ExpungeError, match="no lineage graph here"):
        LineageGraph.load(tmp_path / "absent")
    graph.save(tmp_path / "g", tmp_path)
    meta = tmp_path / "g" / META_FILE
    good = meta.read_text()
    meta.write_text(good.replace(f'"edges": {graph.edge_count}', f'"edges": {graph.edge_count + 1}'))
    with pytest.raises(ExpungeError, match=r"disagree with graph\.json"):
        LineageGraph.load(tmp_path / "g")
    meta.write_text(good)
    (tmp_path / "g" / EDGES_FILE).write_bytes(b"garbage")
    with pytest.raises(ExpungeError, match="could not be read"):
        LineageGraph.load(tmp_path / "g")
    meta.write_text("{not json")
    with pytest.raises(ExpungeError, match="could not be read"):
        LineageGraph.load(tmp_path / "g")


def test_load_refuses_edges_naming_unknown_nodes(tmp_path: Path, graph: LineageGraph) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    graph.save(tmp_path, tmp_path)
    edges = pq.read_table(tmp_path / EDGES_FILE)
    parents = edges.column("parent").to_pylist()
    parents[0] = "nobody/nothing"
    pq.write_table(edges.set_column(0, "parent", pa.array(parents)), tmp_path / EDGES_FILE)
    with pytest.raises(ExpungeError, match="disagree"):
        LineageGraph.load(tmp_path)
    nodes = pq.read_table(tmp_path / NODES_FILE)
    pq.write_table(nodes.drop_columns(["kind"]), tmp_path / NODES_FILE)
    with pytest.raises(ExpungeError, match="damaged"):
        LineageGraph.load(tmp_path)


# --------------------------------------------------------------------------------------------------
# Random graphs against a reference BFS

NAMES = [f"o/n{i:02d}" for i in range(30)]
EDGE = st.tuples(
    st.sampled_from(NAMES), st.sampled_from(NAMES), st.booleans(), st.sampled_from(["finetune", "merge"])
)


@settings(max_examples=150, deadline=None)
@given(st.lists(EDGE, max_size=90), st.lists(st.sampled_from(NAMES), min_size=1, max_size=3))
def test_downstream_matches_reference_bfs(raw: list[tuple[str, str, bool, str]], roots: list[str]) -> None:
    edges = [Edge(p, c, r, d, f"card{i}") for i, (p, c, d, r) in enumerate(raw) if p != c]
    nodes = {n: Node(n, n, "model", True) for n in NAMES}
    g = LineageGraph.from_cards(Cards(nodes, edges, [], len(nodes)))
    found = g.downstream(roots)
    dist = _bfs_dist([(e.parent, e.child) for e in edges], set(roots))
    assert set(found) == set(dist) - set(roots)
    best_inferred: dict[str, int] = {r: 0 for r in roots}
    for repo in sorted(found, key=lambda r: dist[r]):
        path = found[repo]
        _check_path(path, repo, set(roots))
        assert len(path.edges) == dist[repo]
        # No shortest path has fewer inferred edges than the chosen one.
        inferred = sum(not e.declared for e in path.edges)
        best = min(
            best_inferred[e.parent] + (not e.declared)
            for e in edges
            if e.child == repo and e.parent in dist and dist[e.parent] == dist[repo] - 1
        )
        assert inferred == best
        best_inferred[repo] = best
    again = LineageGraph.from_cards(Cards(nodes, list(reversed(edges)), [], len(nodes)))
    assert again.downstream(list(reversed(roots))) == found


# --------------------------------------------------------------------------------------------------
# Lazy paths


def test_lazy_paths_equal_eager_ones_and_hash_alike(graph: LineageGraph) -> None:
    found = graph.downstream(["laion/laion2b-en"])
    lazy = found["example-quant/merge-q4"]
    eager = LineagePath(tuple(lazy.nodes), tuple(lazy.edges))
    assert lazy == eager and hash(lazy) == hash(eager) and repr(lazy) == repr(eager)
    assert lazy != LineagePath(lazy.nodes[:-1], lazy.edges[:-1])
    assert lazy.edges[0] is found["laion/laion-aesthetics-v2"].edges[0]  # edges are shared, not copied
    with pytest.raises(AttributeError):
        lazy.nodes = ()  # type: ignore[misc]
    with pytest.raises(TypeError):
        list(lazy)
    with pytest.raises(TypeError):
        sorted([lazy, eager])
    assert pickle.loads(pickle.dumps(lazy)) == eager
    assert {lazy: 1}[eager] == 1


def test_downstream_lists_repos_in_id_order(graph: LineageGraph) -> None:
    found = graph.downstream(["laion/laion2b-en"])
    assert list(found) == sorted(found)


def test_a_long_chain_needs_no_recursion(tmp_path: Path) -> None:
    import gc

    n = 5000
    names = [f"c/n{i:05d}" for i in range(n)]
    edges = [Edge(names[i], names[i + 1], "finetune", True, f"card{i}") for i in range(n - 1)]
    g = LineageGraph.from_cards(Cards({x: Node(x, x, "model", True) for x in names}, edges, [], n))
    found = g.downstream([names[0]])
    assert gc.isenabled()
    assert len(found[names[-1]].nodes) == n and found[names[-1]].edges[-1].card == f"card{n - 2}"
    assert len(found[names[10]].edges) == 10
