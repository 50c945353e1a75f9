"""PDQ Hamming-matching benchmark: expunge's HammingIndex against python-threatexchange's PDQ indexes.

Run by hand (it is not a test)::

    python benchmarks/bench_pdq_match.py [--bank 1000000 --queries 100000 --planted 0.01
        --threshold 31 --workers 2 --tx-queries 100000 --index2-queries 200 --brute-queries 2000
        --faiss --workdir DIR --keep --json FILE]

What it measures, and why it is built this way:

* One generated data set serves every engine: a bank of random 256-bit hashes and queries of which a
  fraction (1 %) are planted near-duplicates of distinct bank entries, each with 0 to 31 random bits
  flipped (uniformly many), the rest random. Random 256-bit hashes are essentially never within 31
  bits of each other (P ~ 1e-23 a pair), so the expected result is the planted pairs.
* Every engine runs in a fresh subprocess of this script (``--step NAME``), so its memory is its
  own: ``build MB`` is the RSS growth across the build (inputs already loaded, and for
  threatexchange already converted to the hex strings its API takes); ``search peak MB`` is the peak
  RSS during the search above the RSS before it (``/proc/self/clear_refs`` resets the peak).
* threatexchange (``pip install threatexchange``) offers, in 1.2.x, ``PDQIndex`` (faiss
  ``IndexBinaryMultiHash``, 16 maps of 16 bits, ``nflip = threshold // 16``, wrapped in
  ``IndexBinaryIDMap2``) and ``PDQIndex2`` (faiss ``IndexFlatL2`` over unpacked bits: exact brute
  force in float). ``PDQIndex`` is timed twice: through the batch ``search_with_distance_in_result``
  of the faiss wrapper it holds (all queries; faiss uses its OpenMP threads) and through its public
  per-hash ``query`` (on the first ``--tx-queries`` queries, faiss on one thread: a single query
  cannot use more, and an OpenMP team made each call ~10x slower here). ``PDQIndex2`` is timed on
  ``--index2-queries`` queries. ``--faiss`` adds bare faiss configured as ``PDQIndex`` configures it
  (automatic when threatexchange cannot be imported). ``brute`` is expunge's blocked brute force on
  ``--brute-queries`` queries, extrapolated.
* expunge is imported from wherever it is installed; to measure a working tree whose editable
  install points elsewhere, run with ``PYTHONPATH=src`` (the step subprocesses inherit it).
* Correctness is checked, not assumed: every engine's pairs (on the queries it ran) are compared as
  sets of ``(query, bank, distance)`` with expunge's, every reported distance is recomputed
  independently, and every planted pair must be found.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

STEPS = ("expunge", "brute", "tx", "index2", "faiss")


# -------------------------------------------------------------------------------------------------
# Data


def make_data(n: int, m: int, planted: float, max_flip: int, seed: int) -> dict[str, np.ndarray]:
    """Random bank and queries; ``planted`` of the queries are bank rows with 0..max_flip bits flipped."""
    rng = np.random.default_rng(seed)
    bank = rng.integers(0, 256, size=(n, 32), dtype=np.uint8)
    queries = rng.integers(0, 256, size=(m, 32), dtype=np.uint8)
    k = min(n, round(m * planted))
    qrows = np.sort(rng.choice(m, size=k, replace=False))
    src = rng.choice(n, size=k, replace=False)
    flips = rng.integers(0, max_flip + 1, size=k)
    # Exactly flips[i] distinct bits: the bits whose random rank in the row is below flips[i].
    ranks = np.argsort(np.argsort(rng.random((k, 256)), axis=1), axis=1)
    masks = np.packbits(ranks < flips[:, None], axis=1)
    queries[qrows] = bank[src] ^ masks
    return {"bank": bank, "queries": queries, "qrows": qrows, "src": src, "flips": flips}


def _hex(rows: np.ndarray) -> list[str]:
    return [bytes(r).hex() for r in rows]


# -------------------------------------------------------------------------------------------------
# Memory


def _status(field: str) -> int:
    """A ``/proc/self/status`` memory field, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def _reset_peak() -> bool:
    """Reset the peak-RSS counter (VmHWM) to the current RSS; False when the kernel refuses."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class Meter:
    """RSS before/after a phase and the peak during it."""

    def __init__(self) -> None:
        self.before = _status("VmRSS")
        self.peak_ok = _reset_peak()

    def done(self) -> dict[str, float]:
        after = _status("VmRSS")
        out = {"rss_delta_mb": (after - self.before) / 1e6}
        if self.peak_ok:
            out["peak_delta_mb"] = (_status("VmHWM") - self.before) / 1e6
        return out


# -------------------------------------------------------------------------------------------------
# Steps (each runs in its own subprocess)


def _load(workdir: Path) -> dict[str, np.ndarray]:
    return dict(np.load(workdir / "data.npz"))


def _save(workdir: Path, name: str, q: np.ndarray, b: np.ndarray, d: np.ndarray) -> None:
    np.savez(workdir / f"pairs_{name}.npz", q=q.astype(np.int64), b=b.astype(np.int64), d=d.astype(np.int64))


def step_expunge(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    from expunge.matchers.hamming import HammingIndex

    data = _load(workdir)
    bank, queries = data["bank"], data["queries"]
    meter = Meter()
    t0 = time.perf_counter()
    index = HammingIndex.build(bank)
    build_s = time.perf_counter() - t0
    build_mem = meter.done()
    meter = Meter()
    t0 = time.perf_counter()
    q, b, d = index.search(queries, args.threshold, workers=args.workers)
    search_s = time.perf_counter() - t0
    search_mem = meter.done()
    _save(workdir, "expunge", q, b, d)
    t0 = time.perf_counter()
    q1, b1, d1 = index.search(queries, args.threshold, workers=1)
    search1_s = time.perf_counter() - t0
    assert np.array_equal(q, q1) and np.array_equal(b, b1) and np.array_equal(d, d1)
    return {
        "build_s": build_s,
        "search_s": search_s,
        "search_1_thread_s": search1_s,
        "queries": len(queries),
        "build_mem": build_mem,
        "search_mem": search_mem,
        "nbytes_mb": index.nbytes() / 1e6,
        "chunks": len(index._chunks),
        "workers": args.workers,
    }


def step_brute(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    from expunge.matchers.hamming import HammingIndex

    data = _load(workdir)
    bank, queries = data["bank"], data["queries"][: args.brute_queries]
    index = HammingIndex.build(bank)
    meter = Meter()
    t0 = time.perf_counter()
    q, b, d = index.search(queries, args.threshold, method="brute", workers=args.workers)
    search_s = time.perf_counter() - t0
    _save(workdir, "brute", q, b, d)
    return {
        "search_s": search_s,
        "queries": len(queries),
        "search_mem": meter.done(),
        "workers": args.workers,
    }


def step_tx(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    import faiss
    from threatexchange.signal_type.pdq.pdq_index import PDQIndex

    data = _load(workdir)
    bank_hex, query_hex = _hex(data["bank"]), _hex(data["queries"])
    threads = faiss.omp_get_max_threads()
    meter = Meter()
    t0 = time.perf_counter()
    index = PDQIndex(entries=zip(bank_hex, range(len(bank_hex)), strict=True))
    build_s = time.perf_counter() - t0
    build_mem = meter.done()

    # Batch: the faiss wrapper PDQIndex holds (PDQMultiHashIndex), all queries at once.
    meter = Meter()
    t0 = time.perf_counter()
    found = index.index.search_with_distance_in_result(query_hex, args.threshold)
    qs, bs, ds = [], [], []
    for i, h in enumerate(query_hex):
        for bank_id, _hash, dist in found[h]:
            qs.append(i)
            bs.append(int(bank_id))
            ds.append(int(dist))
    batch_s = time.perf_counter() - t0
    batch_mem = meter.done()
    _save(workdir, "tx", np.array(qs), np.array(bs), np.array(ds))

    # Public per-hash API, on a prefix of the queries (PDQIndex uses its own threshold, 31). One
    # query cannot be split between threads, and faiss's OpenMP team makes each call ~10x slower
    # when the machine has other work, so this part runs faiss on one thread (its best case).
    faiss.omp_set_num_threads(1)
    sub = query_hex[: args.tx_queries]
    qs, bs, ds = [], [], []
    t0 = time.perf_counter()
    for i, h in enumerate(sub):
        for match in index.query(h):
            qs.append(i)
            bs.append(int(match.metadata))
            ds.append(int(match.similarity_info.distance))
    query_s = time.perf_counter() - t0
    _save(workdir, "tx_query", np.array(qs), np.array(bs), np.array(ds))
    return {
        "build_s": build_s,
        "batch_search_s": batch_s,
        "queries": len(query_hex),
        "query_api_s": query_s,
        "query_api_queries": len(sub),
        "build_mem": build_mem,
        "search_mem": batch_mem,
        "faiss_threads": threads,
        "threshold_used_by_query_api": PDQIndex.get_match_threshold(),  # type: ignore[no-untyped-call]
    }


def step_index2(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    from threatexchange.signal_type.pdq.pdq_index2 import PDQIndex2

    data = _load(workdir)
    bank_hex, query_hex = _hex(data["bank"]), _hex(data["queries"][: args.index2_queries])
    meter = Meter()
    t0 = time.perf_counter()
    index = PDQIndex2(entries=zip(bank_hex, range(len(bank_hex)), strict=True), threshold=args.threshold)
    build_s = time.perf_counter() - t0
    build_mem = meter.done()
    qs, bs, ds = [], [], []
    t0 = time.perf_counter()
    for i, h in enumerate(query_hex):
        for match in index.query(h):
            qs.append(i)
            bs.append(int(match.metadata))
            ds.append(round(float(match.similarity_info.distance)))
    search_s = time.perf_counter() - t0
    _save(workdir, "index2", np.array(qs), np.array(bs), np.array(ds))
    return {"build_s": build_s, "search_s": search_s, "queries": len(query_hex), "build_mem": build_mem}


def step_faiss(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Bare faiss, configured as threatexchange's PDQMultiHashIndex configures it."""
    import faiss

    data = _load(workdir)
    bank, queries = data["bank"], data["queries"]
    meter = Meter()
    t0 = time.perf_counter()
    index = faiss.IndexBinaryIDMap2(faiss.IndexBinaryMultiHash(256, 16, 16))
    index.add_with_ids(bank, np.arange(len(bank), dtype=np.int64))
    build_s = time.perf_counter() - t0
    build_mem = meter.done()
    faiss.downcast_IndexBinary(index.index).nflip = args.threshold // 16  # type: ignore[attr-defined]
    meter = Meter()
    t0 = time.perf_counter()
    # faiss's binary range_search keeps distances strictly below the radius: radius = threshold + 1.
    lims, dist, ids = index.range_search(queries, args.threshold + 1)
    search_s = time.perf_counter() - t0
    search_mem = meter.done()
    q = np.repeat(np.arange(len(queries)), np.diff(lims).astype(np.int64))
    _save(workdir, "faiss", q, ids, dist)
    return {
        "build_s": build_s,
        "search_s": search_s,
        "queries": len(queries),
        "build_mem": build_mem,
        "search_mem": search_mem,
        "faiss_threads": faiss.omp_get_max_threads(),
    }


STEP_FUNCS = {
    "expunge": step_expunge,
    "brute": step_brute,
    "tx": step_tx,
    "index2": step_index2,
    "faiss": step_faiss,
}


# -------------------------------------------------------------------------------------------------
# Driver


def _run_step(name: str, argv: list[str], workdir: Path) -> dict[str, Any] | str:
    """Run one step in a fresh interpreter; its result dict, or the reason it failed."""
    cmd = [sys.executable, __file__, *argv, "--step", name, "--workdir", str(workdir)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return " / ".join(tail) or f"exit {proc.returncode}"
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def _pairs(workdir: Path, name: str) -> np.ndarray:
    z = np.load(workdir / f"pairs_{name}.npz")
    return np.stack([z["q"], z["b"], z["d"]], axis=1) if len(z["q"]) else np.empty((0, 3), dtype=np.int64)


def _as_set(p: np.ndarray) -> set[tuple[int, int, int]]:
    return {(int(a), int(b), int(c)) for a, b, c in p}


def _tx_importable() -> str | None:
    try:
        from threatexchange.signal_type.pdq.pdq_index import PDQIndex  # noqa: F401
    except Exception as exc:  # report why, whatever it is
        return f"{type(exc).__name__}: {exc}"
    return None


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bank", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=100_000)
    ap.add_argument("--planted", type=float, default=0.01)
    ap.add_argument("--max-flip", type=int, default=31)
    ap.add_argument("--threshold", type=int, default=31)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--tx-queries", type=int, default=100_000, help="queries through PDQIndex.query")
    ap.add_argument("--index2-queries", type=int, default=200, help="queries through PDQIndex2 (0: skip)")
    ap.add_argument("--brute-queries", type=int, default=2_000, help="queries by brute force (0: skip)")
    ap.add_argument("--faiss", action="store_true", help="also run bare faiss IndexBinaryMultiHash")
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--step", choices=STEPS, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.step:
        print(json.dumps(STEP_FUNCS[args.step](args, args.workdir)))
        return

    passthrough = [
        *("--threshold", str(args.threshold)),
        *("--workers", str(args.workers)),
        *("--tx-queries", str(args.tx_queries)),
        *("--index2-queries", str(args.index2_queries)),
        *("--brute-queries", str(args.brute_queries)),
    ]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_pdq_"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        _drive(args, passthrough, workdir)
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


def _drive(args: argparse.Namespace, passthrough: list[str], workdir: Path) -> None:
    from expunge.matchers.hamming import hamming_matrix

    print(
        f"# {platform.platform()}, {len(os.sched_getaffinity(0))} CPUs, load {os.getloadavg()[0]:.2f}; "
        f"python {platform.python_version()}, numpy {np.__version__}, faiss-cpu {_version('faiss-cpu')}, "
        f"threatexchange {_version('threatexchange')}"
    )
    t0 = time.perf_counter()
    data = make_data(args.bank, args.queries, args.planted, args.max_flip, args.seed)
    np.savez(workdir / "data.npz", allow_pickle=False, **data)
    print(
        f"# data: bank {args.bank:,}, queries {args.queries:,} ({len(data['qrows']):,} planted, "
        f"0-{args.max_flip} bits flipped), threshold {args.threshold}; "
        f"made in {time.perf_counter() - t0:.1f} s"
    )

    tx_missing = _tx_importable()
    steps = ["expunge"]
    if args.brute_queries:
        steps.append("brute")
    if tx_missing is None:
        steps.append("tx")
        if args.index2_queries:
            steps.append("index2")
    else:
        print(f"# threatexchange cannot be imported ({tx_missing}): comparing with bare faiss instead")
    if args.faiss or tx_missing is not None:
        steps.append("faiss")

    results: dict[str, Any] = {}
    for name in steps:
        t0 = time.perf_counter()
        res = _run_step(name, passthrough, workdir)
        results[name] = res
        print(
            f"# step {name}: {time.perf_counter() - t0:.1f} s wall"
            + (f" FAILED: {res}" if isinstance(res, str) else "")
        )

    # ---- correctness
    ref = _pairs(workdir, "expunge")
    bank, queries = data["bank"], data["queries"]
    recomputed = np.array(
        [int(hamming_matrix(queries[q : q + 1], bank[b : b + 1])[0, 0]) for q, b, _ in ref], dtype=np.int64
    )
    planted = {(int(q), int(b)) for q, b in zip(data["qrows"], data["src"], strict=True)}
    found = {(int(q), int(b)) for q, b, _ in ref}
    checks: dict[str, Any] = {
        "expunge distances recomputed": bool(np.array_equal(recomputed, ref[:, 2])) if len(ref) else True,
        "expunge sorted, no repeats": bool(
            len(ref) == 0 or np.all(np.diff(ref[:, 0] * args.bank + ref[:, 1]) > 0)
        ),
        f"planted pairs found ({len(planted)})": planted <= found,
        "pairs beyond the planted ones": len(found - planted),
    }
    subsets = {"brute": args.brute_queries, "tx": args.queries, "tx_query": args.tx_queries}
    subsets |= {"index2": args.index2_queries, "faiss": args.queries}
    for name, nq in subsets.items():
        path = workdir / f"pairs_{name}.npz"
        if not path.exists():
            continue
        mine = _as_set(ref[ref[:, 0] < nq])
        theirs = _as_set(_pairs(workdir, name))
        checks[f"{name} == expunge on first {min(nq, args.queries):,} queries"] = (
            "same" if mine == theirs else f"DIFFER: {len(theirs - mine)} extra, {len(mine - theirs)} missing"
        )

    # ---- table
    rows: list[tuple[str, str, str, str, str, str]] = []

    def qps(n: int, s: float) -> float:
        return n / s if s > 0 else float("inf")

    ex = results.get("expunge")
    if isinstance(ex, dict):
        ex_qps = qps(ex["queries"], ex["search_s"])
        rate1 = qps(ex["queries"], ex["search_1_thread_s"])
        rows.append(
            (
                f"expunge HammingIndex ({ex['chunks']} chunks, {ex['workers']} threads)",
                f"{ex['build_s']:.2f}",
                f"{ex['search_s']:.2f}",
                f"{ex_qps:,.0f}",
                f"nbytes {ex['nbytes_mb']:.0f}; RSS +{ex['build_mem']['rss_delta_mb']:.0f}",
                f"{ex['search_mem'].get('peak_delta_mb', float('nan')):.0f}",
            )
        )
        rows.append(
            (
                "expunge HammingIndex, 1 thread",
                "(same)",
                f"{ex['search_1_thread_s']:.2f}",
                f"{rate1:,.0f}",
                "(same)",
                "-",
            )
        )
    else:
        ex_qps = rate1 = float("nan")
    br = results.get("brute")
    if isinstance(br, dict):
        rate = qps(br["queries"], br["search_s"])
        rows.append(
            (
                f"expunge brute force ({br['queries']:,} queries, extrapolated)",
                "-",
                f"{args.queries / rate:.1f}",
                f"{rate:,.0f}",
                "-",
                f"{br['search_mem'].get('peak_delta_mb', float('nan')):.0f}",
            )
        )
    tx = results.get("tx")
    if isinstance(tx, dict):
        batch_qps = qps(tx["queries"], tx["batch_search_s"])
        query_qps = qps(tx["query_api_queries"], tx["query_api_s"])
        mem = f"RSS +{tx['build_mem']['rss_delta_mb']:.0f}"
        rows.append(
            (
                f"threatexchange PDQIndex, batch faiss search ({tx['faiss_threads']} threads)",
                f"{tx['build_s']:.2f}",
                f"{tx['batch_search_s']:.2f}",
                f"{batch_qps:,.0f}",
                mem,
                f"{tx['search_mem'].get('peak_delta_mb', float('nan')):.0f}",
            )
        )
        rows.append(
            (
                f"threatexchange PDQIndex.query, 1 thread ({tx['query_api_queries']:,} queries)",
                "(same)",
                f"{args.queries / query_qps:.1f}",
                f"{query_qps:,.0f}",
                "(same)",
                "-",
            )
        )
        checks["expunge / PDQIndex batch (queries/s)"] = f"{ex_qps / batch_qps:.1f}x"
        checks["expunge / PDQIndex.query (queries/s)"] = f"{ex_qps / query_qps:.1f}x"
        checks["expunge 1 thread / PDQIndex.query 1 thread"] = f"{rate1 / query_qps:.1f}x"
    i2 = results.get("index2")
    if isinstance(i2, dict):
        rate = qps(i2["queries"], i2["search_s"])
        rows.append(
            (
                f"threatexchange PDQIndex2 ({i2['queries']:,} queries, extrapolated)",
                f"{i2['build_s']:.2f}",
                f"{args.queries / rate:.0f}",
                f"{rate:,.1f}",
                f"RSS +{i2['build_mem']['rss_delta_mb']:.0f}",
                "-",
            )
        )
        checks["expunge / PDQIndex2 (queries/s)"] = f"{ex_qps / rate:.0f}x"
    fa = results.get("faiss")
    if isinstance(fa, dict):
        rate = qps(fa["queries"], fa["search_s"])
        rows.append(
            (
                f"bare faiss IndexBinaryMultiHash 16x16 ({fa['faiss_threads']} threads)",
                f"{fa['build_s']:.2f}",
                f"{fa['search_s']:.2f}",
                f"{rate:,.0f}",
                f"RSS +{fa['build_mem']['rss_delta_mb']:.0f}",
                f"{fa['search_mem'].get('peak_delta_mb', float('nan')):.0f}",
            )
        )
        checks["expunge / bare faiss (queries/s)"] = f"{ex_qps / rate:.1f}x"

    header = ("engine", "build s", "search s", "queries/s", "index memory MB", "search peak MB")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
    for k, v in checks.items():
        print(f"{k}: {v}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "args": vars(args) | {"json": str(args.json), "workdir": None},
                    "results": results,
                    "checks": checks,
                },
                indent=2,
                default=str,
            )
        )


if __name__ == "__main__":
    main()
