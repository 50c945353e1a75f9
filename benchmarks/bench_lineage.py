"""Lineage benchmark: build a graph from a generated card dump, query it, and read raw README cards.

Run by hand (it is not a test)::

    python benchmarks/bench_lineage.py [N_CARDS] [--readmes 20000] [--workdir DIR]

Targets (issue 11): a dump of 1,000,000 model cards builds a graph in under a minute, and a report
query (everything downstream of a dataset, with one path each) answers in under a second.

How the dump is shaped, and why: hub lineage is power-law. A few hundred base models are trained from
scratch on a few datasets (LAION-2B among them); every other card picks its parent among earlier cards
with a strong bias to the oldest (``floor(i * u**3)``), so a handful of bases collect most fine-tunes,
adapters, merges and quantisations, and chains run several levels deep. A tenth of cards name no parent
(lineage unknown); some adapters are known only by their adapter config; some cards carry only a
``_name_or_path`` hint; ids come in mixed case and sometimes as URLs. The query starts at LAION-2B,
whose descendants are a large share of the graph: the worst case for materialising paths.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from expunge.lineage.cards import read_dump, read_tree
from expunge.lineage.graph import LineageGraph

N_BASES = 300
DATASETS = ["laion/laion2B-en", "laion/laion5B", "laion/laion-aesthetics-v2", "example/coco-captions"]
DATASETS += [f"org{i}/dataset-{i}" for i in range(200)]
RELATIONS = np.array(["finetune", "adapter", "merge", "quantized"])
REL_P = [0.55, 0.25, 0.08, 0.12]


def _model_id(i: int) -> str:
    return f"User{i % 50_000}/model-{i}"


def generate_dump(n_cards: int, path: Path, seed: int = 0) -> None:
    """``n_cards`` model cards plus one row per dataset, in the shape of the hub-stats dumps."""
    rng = np.random.default_rng(seed)
    idx = np.arange(n_cards)
    parent = (idx * rng.random(n_cards) ** 3).astype(np.int64)
    second = (idx * rng.random(n_cards) ** 3).astype(np.int64)
    rel = rng.choice(len(RELATIONS), size=n_cards, p=REL_P)
    orphan = rng.random(n_cards) < 0.10
    adapter_only = (RELATIONS[rel] == "adapter") & (rng.random(n_cards) < 0.5)
    hint_only = rng.random(n_cards) < 0.03
    url_form = rng.random(n_cards) < 0.02
    # Zipf-like dataset choice for base models: LAION-2B is the most popular.
    ds_pick = np.minimum(rng.zipf(1.6, size=(n_cards, 2)) - 1, len(DATASETS) - 1)
    ids, kinds, card_data, adapter_base, name_or_path = [], [], [], [], []
    for name in DATASETS:
        ids.append(name)
        kinds.append("dataset")
        card_data.append(json.dumps({"license": "cc-by-4.0"}))
        adapter_base.append(None)
        name_or_path.append(None)
    for i in range(n_cards):
        ids.append(_model_id(i))
        kinds.append("model")
        meta: dict[str, object] = {"license": "apache-2.0", "tags": ["text-to-image"]}
        ab = nop = None
        if i < N_BASES:
            meta["datasets"] = sorted({DATASETS[int(k)] for k in ds_pick[i]})
        elif orphan[i]:
            pass
        elif hint_only[i]:
            nop = _model_id(int(parent[i]))
        else:
            r = str(RELATIONS[rel[i]])
            base = _model_id(int(parent[i]))
            if url_form[i]:
                base = f"https://huggingface.co/{base.upper()}"
            if r == "adapter" and adapter_only[i]:
                ab = base
            elif r == "merge" and second[i] != parent[i]:
                meta["base_model"] = [base, _model_id(int(second[i]))]
                meta["base_model_relation"] = r
            else:
                meta["base_model"] = base
                meta["base_model_relation"] = r
        card_data.append(json.dumps(meta))
        adapter_base.append(ab)
        name_or_path.append(nop)
    table = pa.table(
        {
            "id": pa.array(ids, pa.string()),
            "kind": pa.array(kinds, pa.string()),
            "card_data": pa.array(card_data, pa.string()),
            "adapter_base": pa.array(adapter_base, pa.string()),
            "name_or_path": pa.array(name_or_path, pa.string()),
        }
    )
    pq.write_table(table, path, compression="zstd")


def generate_readmes(n: int, root: Path, seed: int = 1) -> None:
    """``n`` README.md cards (owner/name folders) with typical front matter and a short body."""
    rng = np.random.default_rng(seed)
    parent = (np.arange(n) * rng.random(n) ** 3).astype(np.int64)
    body = "\n".join(f"Generated benchmark card text, paragraph {k}." for k in range(20))
    for i in range(n):
        folder = root / "models" / f"owner{i % 500}" / f"model-{i}"
        folder.mkdir(parents=True)
        if i < 50:
            lineage = "datasets:\n  - laion/laion2B-en\n"
        else:
            lineage = f"base_model: owner{parent[i] % 500}/model-{parent[i]}\nbase_model_relation: finetune\n"
        tags = "tags:\n  - text-to-image\n  - diffusers\n"
        front = f"license: apache-2.0\n{tags}{lineage}library_name: diffusers\n"
        (folder / "README.md").write_text(f"---\n{front}---\n\n# model-{i}\n\n{body}\n")


class _Clock:
    """Prints and keeps one figure per step."""

    def __init__(self) -> None:
        self.results: dict[str, float] = {}
        self._t0 = 0.0

    def start(self) -> None:
        self._t0 = time.perf_counter()

    def stop(self, label: str) -> float:
        took = time.perf_counter() - self._t0
        self.results[label] = took
        print(f"  {label:<46} {took:8.2f} s", flush=True)
        return took


def run(n_cards: int, readmes: int = 20_000, workdir: Path | None = None) -> dict[str, float]:
    clock = _Clock()
    base = Path(tempfile.mkdtemp(prefix="bench-lineage-", dir=workdir))
    try:
        dump = base / "cards.parquet"
        print(f"lineage benchmark: {n_cards:,} model cards", flush=True)
        clock.start()
        generate_dump(n_cards, dump)
        clock.stop("generate dump (not timed against a target)")
        clock.start()
        cards = read_dump(dump)
        took = clock.stop("read_dump")
        clock.start()
        graph = LineageGraph.from_cards(cards)
        took += clock.stop("LineageGraph.from_cards")
        clock.results["build"] = took
        print(f"  {'build: read_dump + from_cards (target < 60 s)':<46} {took:8.2f} s")
        counts = f"{graph.node_count:,} nodes, {graph.edge_count:,} edges, {len(graph.warnings):,} warnings"
        print(f"  graph: {counts}")
        del cards
        clock.start()
        graph.save(base / "graph", base / "tmp")
        clock.stop("save")
        clock.start()
        graph = LineageGraph.load(base / "graph")
        clock.stop("load")
        for root in ("laion/laion2B-en", "laion/laion5B"):
            clock.start()
            found = graph.downstream([root])
            clock.stop(f"downstream({root}) (target < 1 s)")
            share = len(found) / graph.node_count
            clock.start()
            depth = max((len(p.edges) for p in found.values()), default=0)
            clock.stop("  then read every path's nodes and edges")
            print(f"    affected: {len(found):,} repos ({share:.0%}), deepest path {depth} edges")
            del found
        clock.start()
        graph.upstream(_model_id(n_cards - 1))
        clock.stop("upstream(the newest repo)")
        if readmes:
            tree = base / "tree"
            clock.start()
            generate_readmes(readmes, tree)
            clock.stop(f"generate {readmes:,} README.md (not timed)")
            clock.start()
            got = read_tree(tree)
            took = clock.stop("read_tree")
            clock.results["read_tree cards/s"] = got.cards_read / took
            print(f"  read_tree: {got.cards_read:,} cards, {got.cards_read / took:,.0f} cards/s")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return clock.results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("n_cards", nargs="?", type=int, default=1_000_000)
    ap.add_argument("--readmes", type=int, default=20_000)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args(argv)
    run(args.n_cards, args.readmes, args.workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
