"""Triage benchmark (issue 10): keyword matching and neighbour search, each against its baseline, one run.

Run by hand (it is not a test)::

    python benchmarks/bench_triage.py [--captions 200000 --rows 1000000 --dim 768 --seeds 1000]

Two halves, each a script of its own that can also be run alone:

* ``bench_triage_keyword.py``: captions/s per core of ``KeywordMatcher.match`` (Unicode normalisation
  included) against a compiled ``re`` alternation of the same terms with word boundaries over captions
  already normalised (its normalisation not timed), on the same generated captions; both must find the
  same (row, term) pairs.
* ``bench_triage_neighbour.py``: exact search (per shard, streaming, memory-mapped float16 ``.npy``)
  against the approximate IVF index (build and search timed apart) for ``--rows`` x ``--dim`` float16
  embeddings and ``--seeds`` seeds; recall of the approximate search against the exact one.

The figures go to ``benchmarks/RESULTS.md`` with the command that made them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_triage_keyword
import bench_triage_neighbour


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--captions", type=int, default=200_000)
    p.add_argument("--terms", type=int, default=500)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=768)
    p.add_argument("--seeds", type=int, default=1_000)
    p.add_argument("--nprobe", default="1,4,16", help="comma-separated nprobe values")
    args = p.parse_args()

    kw = bench_triage_keyword.run(args.captions, args.terms)
    nprobes = tuple(int(x) for x in args.nprobe.split(","))
    nb = bench_triage_neighbour.run(args.rows, args.dim, args.seeds, nprobes=nprobes)
    print("\n== triage summary ==")
    print(f"keyword: {kw}")
    print(f"neighbour: {nb}")


if __name__ == "__main__":
    main()
