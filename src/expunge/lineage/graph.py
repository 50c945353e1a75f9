"""The lineage graph: repos as integer nodes in sorted-id order, edges as numpy columns with a CSR index,
stored as parquet.

A million cards make a graph far too big for per-node Python objects to be queried quickly, so queries
walk numpy arrays level by level and only the answer becomes Python objects. Node order is the sorted
order of ids and edge order is (parent, child, relation), so the same cards always give the same files
and the same answers.
"""

from __future__ import annotations

import bisect
import functools
import gc
import itertools
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from expunge.atomic import atomic_path, write_json
from expunge.errors import ExpungeError
from expunge.lineage.cards import KINDS, RELATIONS, Cards, CardWarning, Edge, Node, canonical_id

FORMAT = 1
NODES_FILE = "nodes.parquet"
EDGES_FILE = "edges.parquet"
WARNINGS_FILE = "warnings.parquet"
META_FILE = "graph.json"

_REL = {r: i for i, r in enumerate(RELATIONS)}
_KIND = {k: i for i, k in enumerate(KINDS)}


class LineagePath(tuple[Any, Any]):
    """A path from a marked ancestor to a repo: ``nodes`` (ancestor first) and the ``edges`` between them.

    Built eagerly as ``LineagePath(nodes, edges)``. :meth:`LineageGraph.downstream` builds its paths
    lazily instead, each one a pair (its parent's path, an edge number) made by C-level ``map`` calls:
    a query over half a million repos must not run Python code per repo to build tuples and edges a
    caller may never read. It is a tuple only for that speed; use ``nodes`` and ``edges``. Either way a
    path is read-only, compares and hashes by value, and is materialised once on first use.
    """

    def __new__(cls, nodes: Iterable[str], edges: Iterable[Edge]) -> LineagePath:
        path = tuple.__new__(cls, (None, None))
        path.__dict__["_m"] = (tuple(nodes), tuple(edges))
        return path

    def _materialised(self) -> tuple[tuple[str, ...], tuple[Edge, ...]]:
        got: tuple[tuple[str, ...], tuple[Edge, ...]] | None = self.__dict__.get("_m")
        if got is not None:
            return got
        # Walk up to the nearest materialised ancestor (no recursion: chains may be long).
        chain: list[LineagePath] = []
        p: LineagePath = self
        while "_m" not in p.__dict__:
            chain.append(p)
            p = tuple.__getitem__(p, 0)
        graph: LineageGraph = p.__dict__["_graph"]
        nodes, edges = p.__dict__["_m"]
        for q in reversed(chain):  # ancestors are kept too: sibling paths share them
            edge = graph._edge_at(tuple.__getitem__(q, 1))
            nodes, edges = (*nodes, edge.child), (*edges, edge)
            q.__dict__["_m"] = (nodes, edges)
            q.__dict__["_graph"] = graph
        return nodes, edges

    @property
    def nodes(self) -> tuple[str, ...]:
        return self._materialised()[0]

    @property
    def edges(self) -> tuple[Edge, ...]:
        return self._materialised()[1]

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("a LineagePath is read-only")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LineagePath):
            return NotImplemented
        return self._materialised() == other._materialised()

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self) -> int:
        return hash(self._materialised())

    def __lt__(self, other: object) -> bool:
        return NotImplemented

    __le__ = __gt__ = __ge__ = __lt__

    def __len__(self) -> int:
        return len(self.nodes)

    def __iter__(self) -> Iterator[Any]:
        raise TypeError("iterate over a LineagePath's nodes or edges")

    def __reduce__(self) -> tuple[Any, ...]:
        return (LineagePath, self._materialised())

    def __repr__(self) -> str:
        nodes, edges = self._materialised()
        return f"LineagePath(nodes={nodes!r}, edges={edges!r})"


def _csr(keys: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(order, starts): ``order[starts[k]:starts[k+1]]`` are the positions whose key is k, ascending."""
    order = np.argsort(keys, kind="stable")
    starts = np.searchsorted(keys[order], np.arange(n + 1))
    return order, starts


def _gather(order: np.ndarray, starts: np.ndarray, nodes: np.ndarray) -> np.ndarray:
    """Every position listed under any of ``nodes`` in a CSR index, node by node."""
    lo = starts[nodes]
    counts = starts[nodes + 1] - lo
    total = int(counts.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    offsets = np.repeat(lo - (np.cumsum(counts) - counts), counts) + np.arange(total)
    return order[offsets]


class LineageGraph:
    def __init__(
        self,
        ids: list[str],
        display: list[str],
        kind: np.ndarray,
        node_flags: tuple[np.ndarray, np.ndarray, list[str]],
        parent: np.ndarray,
        child: np.ndarray,
        relation: np.ndarray,
        declared: np.ndarray,
        cards: pa.Array,
        warnings: list[CardWarning],
        cards_read: int,
    ) -> None:
        """Columns already in canonical order (nodes by id, edges by parent, child, relation)."""
        self._ids = ids
        self._display = display
        self._kind = kind
        self._has_card, self._gated, self._license = node_flags
        self._parent = parent
        self._child = child
        self._relation = relation
        self._declared = declared
        self._cards = cards
        self._warnings = warnings
        self.cards_read = cards_read
        n = len(ids)
        # Edges are sorted by parent, so the out-index is the identity order.
        self._out_order = np.arange(len(parent), dtype=np.int64)
        self._out_starts = np.searchsorted(parent, np.arange(n + 1))
        self._in: tuple[np.ndarray, np.ndarray] | None = None
        self._edge_cache: dict[int, Edge] = {}
        self._edge_lists: tuple[list[int], list[int], list[int], list[bool], list[str]] | None = None

    # ------------------------------------------------------------------------------------------
    # Building

    @classmethod
    def from_cards(cls, cards: Cards) -> LineageGraph:
        nodes = dict(cards.nodes)
        for e in cards.edges:  # Cards from read_* always name every endpoint; others may not
            for end in (e.parent, e.child):
                if end not in nodes:
                    nodes[end] = Node(end, end, "unknown")
        ids = sorted(nodes)
        index = {cid: i for i, cid in enumerate(ids)}
        ordered = [nodes[cid] for cid in ids]
        m = len(cards.edges)
        parent = np.fromiter((index[e.parent] for e in cards.edges), dtype=np.int32, count=m)
        child = np.fromiter((index[e.child] for e in cards.edges), dtype=np.int32, count=m)
        relation = np.fromiter((_REL[e.relation] for e in cards.edges), dtype=np.int8, count=m)
        declared = np.fromiter((e.declared for e in cards.edges), dtype=bool, count=m)
        # Declared wins over inferred for the same (parent, child, relation); then the smaller card name,
        # so the order cards were read in does not matter.
        card_all = pa.array([e.card for e in cards.edges], type=pa.string())
        card_rank = pc.rank(card_all, sort_keys="ascending", tiebreaker="dense").to_numpy() if m else declared
        order = np.lexsort((card_rank, ~declared, relation, child, parent))
        parent, child, relation, declared = parent[order], child[order], relation[order], declared[order]
        keep = np.ones(m, dtype=bool)
        if m:
            keep[1:] = (
                (parent[1:] != parent[:-1]) | (child[1:] != child[:-1]) | (relation[1:] != relation[:-1])
            )
        card_col = card_all.take(pa.array(order[keep]))
        return cls(
            ids,
            [nd.display for nd in ordered],
            np.fromiter((_KIND.get(nd.kind, 2) for nd in ordered), dtype=np.int8, count=len(ids)),
            (
                np.fromiter((nd.has_card for nd in ordered), dtype=bool, count=len(ids)),
                np.fromiter((nd.gated for nd in ordered), dtype=bool, count=len(ids)),
                [nd.license for nd in ordered],
            ),
            parent[keep],
            child[keep],
            relation[keep],
            declared[keep],
            card_col,
            list(cards.warnings),
            cards.cards_read,
        )

    # ------------------------------------------------------------------------------------------
    # Storage

    def save(self, folder: Path, tmp: Path) -> None:
        """Three parquet files, then graph.json last: a graph.json whose counts match the files is the
        mark of a complete save."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        ids = pa.array(self._ids, type=pa.string())
        nodes = pa.table(
            {
                "id": ids,
                "display": pa.array(self._display, type=pa.string()),
                "kind": pa.array(KINDS, type=pa.string()).take(pa.array(self._kind)),
                "has_card": pa.array(self._has_card),
                "gated": pa.array(self._gated),
                "license": pa.array(self._license, type=pa.string()),
            }
        )
        edges = pa.table(
            {
                "parent": ids.take(pa.array(self._parent)),
                "child": ids.take(pa.array(self._child)),
                "relation": pa.array(RELATIONS, type=pa.string()).take(pa.array(self._relation)),
                "declared": pa.array(self._declared),
                "card": self._cards,
            }
        )
        warnings = pa.table(
            {
                "card": pa.array([w.card for w in self._warnings], type=pa.string()),
                "message": pa.array([w.message for w in self._warnings], type=pa.string()),
            }
        )
        for name, table in ((NODES_FILE, nodes), (EDGES_FILE, edges), (WARNINGS_FILE, warnings)):
            with atomic_path(folder / name, tmp) as path:
                pq.write_table(table, path, compression="zstd")
        write_json(folder / META_FILE, self._meta(), tmp)

    def _meta(self) -> dict[str, Any]:
        rel_counts = np.bincount(self._relation, minlength=len(RELATIONS))
        kind_counts = np.bincount(self._kind, minlength=len(KINDS))
        return {
            "format": FORMAT,
            "nodes": len(self._ids),
            "edges": len(self._parent),
            "declared_edges": int(self._declared.sum()),
            "inferred_edges": int((~self._declared).sum()),
            "edges_by_relation": {r: int(c) for r, c in zip(RELATIONS, rel_counts, strict=True) if c},
            "nodes_by_kind": {k: int(c) for k, c in zip(KINDS, kind_counts, strict=True) if c},
            "warnings": len(self._warnings),
            "cards_read": self.cards_read,
        }

    @classmethod
    def load(cls, folder: Path) -> LineageGraph:
        folder = Path(folder)
        meta_path = folder / META_FILE
        if not meta_path.is_file():
            raise ExpungeError("no lineage graph here (run `expunge lineage build` first)", folder)
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            nodes = pq.read_table(folder / NODES_FILE)
            edges = pq.read_table(folder / EDGES_FILE)
            warns = pq.read_table(folder / WARNINGS_FILE)
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise ExpungeError(f"lineage graph could not be read ({type(exc).__name__})", folder) from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ExpungeError("lineage graph has an unknown format; rebuild it", meta_path)
        try:
            ids_col = nodes.column("id").combine_chunks()
            ids: list[str] = ids_col.to_pylist()
            coded = [
                pc.index_in(nodes.column("kind"), value_set=pa.array(KINDS)).combine_chunks(),
                pc.index_in(edges.column("parent"), value_set=ids_col).combine_chunks(),
                pc.index_in(edges.column("child"), value_set=ids_col).combine_chunks(),
                pc.index_in(edges.column("relation"), value_set=pa.array(RELATIONS)).combine_chunks(),
            ]
            plain = [nodes.column(c).combine_chunks() for c in ("has_card", "gated", "display", "license")]
            plain += [edges.column(c).combine_chunks() for c in ("declared", "card")]
            plain += [warns.column(c).combine_chunks() for c in ("card", "message")]
            if any(c.null_count for c in (*coded, *plain)) or any(a >= b for a, b in itertools.pairwise(ids)):
                raise ExpungeError("lineage graph files disagree with graph.json; rebuild it", folder)
            kind, parent, child, relation = (c.to_numpy(zero_copy_only=False) for c in coded)
            has_card, gated, display, license_, declared, cards, w_card, w_message = plain
            graph = cls(
                ids,
                display.to_pylist(),
                kind.astype(np.int8),
                (
                    has_card.to_numpy(zero_copy_only=False).astype(bool),
                    gated.to_numpy(zero_copy_only=False).astype(bool),
                    license_.to_pylist(),
                ),
                parent.astype(np.int32),
                child.astype(np.int32),
                relation.astype(np.int8),
                declared.to_numpy(zero_copy_only=False).astype(bool),
                cards,
                [CardWarning(c, m) for c, m in zip(w_card.to_pylist(), w_message.to_pylist(), strict=True)],
                int(meta.get("cards_read", 0)),
            )
        except (KeyError, ValueError, TypeError, pa.ArrowException) as exc:
            raise ExpungeError(f"lineage graph files are damaged ({type(exc).__name__})", folder) from None
        if graph._meta() != meta or np.any(np.diff(graph._parent) < 0):
            raise ExpungeError("lineage graph files disagree with graph.json; rebuild it", folder)
        return graph

    # ------------------------------------------------------------------------------------------
    # Queries

    @property
    def warnings(self) -> list[CardWarning]:
        return self._warnings

    @property
    def node_count(self) -> int:
        return len(self._ids)

    @property
    def edge_count(self) -> int:
        return len(self._parent)

    def _index(self, cid: str) -> int | None:
        i = bisect.bisect_left(self._ids, cid)
        return i if i < len(self._ids) and self._ids[i] == cid else None

    def resolve(self, text: str) -> str | None:
        cid = canonical_id(text)
        return cid if cid is not None and self._index(cid) is not None else None

    def node(self, id: str) -> Node | None:
        cid = canonical_id(id)
        i = self._index(cid) if cid is not None else None
        if i is None:
            return None
        kind = KINDS[int(self._kind[i])]
        return Node(
            self._ids[i],
            self._display[i],
            kind,
            bool(self._has_card[i]),
            bool(self._gated[i]),
            self._license[i],
        )

    def aliases(self, id: str) -> list[str]:
        """Nodes that may be the same repo as ``id`` but cannot be tied to it: the owner-less node of the
        same name (``laion2b-en`` for ``laion/laion2b-en``), and for an owner-less ``id`` every
        ``owner/name`` of that name, so a mark made without the owner still reaches the owned repo."""
        cid = canonical_id(id)
        if cid is None:
            return []
        if "/" not in cid:
            tail = "/" + cid
            return [i for i in self._ids if i.endswith(tail)]
        name = cid.split("/", 1)[1]
        return [name] if self._index(name) is not None else []

    def _edges(self, positions: Iterable[int]) -> list[Edge]:
        pos = list(positions)
        if not pos:
            return []
        cards = self._cards.take(pa.array(pos, type=pa.int64())).to_pylist()
        ids = self._ids
        return [
            Edge(ids[p], ids[c], RELATIONS[r], d, card)
            for p, c, r, d, card in zip(
                self._parent[pos].tolist(),
                self._child[pos].tolist(),
                self._relation[pos].tolist(),
                self._declared[pos].tolist(),
                cards,
                strict=True,
            )
        ]

    def out_edges(self, id: str) -> list[Edge]:
        i = self._index(canonical_id(id) or "")
        if i is None:
            return []
        return self._edges(range(int(self._out_starts[i]), int(self._out_starts[i + 1])))

    def _in_index(self) -> tuple[np.ndarray, np.ndarray]:
        if self._in is None:
            self._in = _csr(self._child, len(self._ids))
        return self._in

    def in_edges(self, id: str) -> list[Edge]:
        i = self._index(canonical_id(id) or "")
        if i is None:
            return []
        order, starts = self._in_index()
        return self._edges(order[starts[i] : starts[i + 1]].tolist())

    def upstream(self, id: str) -> set[str]:
        """Every ancestor of ``id`` (not ``id`` itself), cycles included."""
        i = self._index(canonical_id(id) or "")
        if i is None:
            return set()
        order, starts = self._in_index()
        seen = np.zeros(len(self._ids), dtype=bool)
        seen[i] = True
        frontier = np.array([i], dtype=np.int64)
        found: list[np.ndarray] = []
        while len(frontier):
            par = np.unique(self._parent[_gather(order, starts, frontier)])
            par = par[~seen[par]]
            seen[par] = True
            found.append(par)
            frontier = par.astype(np.int64)
        return {self._ids[k] for arr in found for k in arr.tolist()}

    def downstream(self, roots: Iterable[str]) -> dict[str, LineagePath]:
        """Every node reachable from any root (roots themselves excluded), each with one shortest path
        from the nearest root.

        Among shortest paths the one with fewest inferred edges wins, then the lexicographically
        smallest sequence of node ids, then the smaller edge in (parent, child, relation) order. The
        walk goes level by level, so cycles end it; each level is one vectorised step.
        """
        idx = sorted({i for r in roots if (i := self._index(canonical_id(r) or "")) is not None})
        if not idx:
            return {}
        n = len(self._ids)
        seen = np.zeros(n, dtype=bool)
        inferred = np.zeros(n, dtype=np.int32)  # inferred edges on the chosen path
        rank = np.zeros(n, dtype=np.int64)  # order of chosen paths within a level
        via = np.full(n, -1, dtype=np.int64)  # the chosen edge into each node
        frontier = np.array(idx, dtype=np.int64)
        seen[frontier] = True
        rank[frontier] = np.arange(len(frontier))  # ids are sorted, so index order is id order
        levels: list[np.ndarray] = []
        while len(frontier):
            e = _gather(self._out_order, self._out_starts, frontier)
            tgt = self._child[e]
            fresh = ~seen[tgt]
            e, tgt = e[fresh], tgt[fresh].astype(np.int64)
            if not len(e):
                break
            src = self._parent[e]
            cost = inferred[src] + (~self._declared[e])
            o = np.lexsort((e, rank[src], cost, tgt))
            first = np.ones(len(o), dtype=bool)
            first[1:] = tgt[o][1:] != tgt[o][:-1]
            pick = o[first]
            new, chosen = tgt[pick], e[pick]
            via[new] = chosen
            inferred[new] = cost[pick]
            seen[new] = True
            by_path = np.lexsort((new, rank[self._parent[chosen]]))
            new = new[by_path]
            rank[new] = np.arange(len(new))
            levels.append(new)
            frontier = new
        return self._paths(idx, levels, via)

    def _edge_columns(self) -> tuple[list[int], list[int], list[int], list[bool], list[str]]:
        """The edge columns as Python lists, made once when a path is first read: indexing numpy
        arrays one scalar at a time costs microseconds each."""
        if self._edge_lists is None:
            self._edge_lists = (
                self._parent.tolist(),
                self._child.tolist(),
                self._relation.tolist(),
                self._declared.tolist(),
                self._cards.to_pylist(),
            )
        return self._edge_lists

    def _edge_at(self, k: int) -> Edge:
        edge = self._edge_cache.get(k)
        if edge is None:
            parent, child, relation, declared, cards = self._edge_columns()
            ids = self._ids
            edge = Edge(ids[parent[k]], ids[child[k]], RELATIONS[relation[k]], declared[k], cards[k])
            self._edge_cache[k] = edge
        return edge

    def _paths(self, roots: list[int], levels: list[np.ndarray], via: np.ndarray) -> dict[str, LineagePath]:
        """One lazy path per reached node, built a level at a time with C-level loops only."""
        ids = self._ids
        paths = np.empty(len(ids), dtype=object)
        for r in roots:
            root = LineagePath((ids[r],), ())
            root.__dict__["_graph"] = self
            paths[r] = root
        make = functools.partial(tuple.__new__, LineagePath)
        # Nothing here can form a reference cycle, and the cyclic collector would otherwise rescan the
        # growing heap again and again (half the time of a query over a million repos).
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            for level in levels:
                e = via[level]
                pairs = zip(paths[self._parent[e]], e.tolist(), strict=True)
                paths[level] = np.fromiter(map(make, pairs), dtype=object, count=len(level))
            # In id order: the id strings (and the dict) are then read sequentially in memory.
            reached = np.sort(np.concatenate(levels)) if levels else np.empty(0, dtype=np.int64)
            out: dict[str, LineagePath] = dict(
                zip(map(ids.__getitem__, reached.tolist()), paths[reached], strict=True)
            )
        finally:
            if was_enabled:
                gc.enable()
        return out
