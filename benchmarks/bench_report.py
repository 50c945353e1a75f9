"""Release files at scale (issue 12, "Reports at scale"): a generated summary of 100,000 shards, no data.

Run by hand (it is not a test)::

    python benchmarks/bench_report.py [--sizes 1000,10000,100000] [--repeat 3] [--workdir DIR]

LAION-5B's metadata is tens of thousands of shards. Targets, for a release of 100,000 shards:

- report.html stays under 1 MB and draws its per-shard view as a distribution plus the top shards;
- it renders in headless Chromium in under 2 s (``--dump-dom`` wall time, browser start included);
- summary.json, the manifest, croissant.json and the card are built in time linear in shards: the cost
  per shard at 100k is within 1.3 x of the cost per shard at 10k (and 10k against 1k is printed too).

The summary is made by the clean stage's own ``summary`` function from generated per-shard results
(``tests/release/test_report_scale.py``: ~50,000 rows a shard, removals sparse, a handful of heavy
shards); the report, manifest, croissant.json and card by the release's own functions. Each step is
timed as the best of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.chromium import find_chromium, run_chromium  # noqa: E402
from tests.release.test_report_scale import (  # noqa: E402
    synthetic_files,
    synthetic_inputs,
    synthetic_results,
    synthetic_summary,
)

from expunge import atomic  # noqa: E402
from expunge.release import manifest as release_manifest  # noqa: E402
from expunge.release.croissant import croissant, dataset_card  # noqa: E402
from expunge.release.croissant import dumps as croissant_dumps  # noqa: E402
from expunge.release.report import render_report  # noqa: E402

MAX_BYTES = 1 << 20
MAX_CHROMIUM_S = 2.0
LINEAR_RATIO = 1.3
COLUMNS = [("url", "string"), ("caption", "string"), ("width", "int64"), ("similarity", "double")]


def _met(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def _best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """The least CPU time of ``repeat`` runs: the machine is shared, so wall time measures the
    neighbours as much as the code; a collection first, so one step does not pay for another's garbage."""
    best, value = float("inf"), None
    for _ in range(repeat):
        value = None
        gc.collect()
        t = time.process_time()
        value = fn()
        best = min(best, time.process_time() - t)
    return best, value


def build_all(n: int, folder: Path, repeat: int) -> dict[str, float]:
    """Seconds for each release file of ``n`` shards, built as ``release/assemble.py`` builds it."""
    results = synthetic_results(n)
    inputs = synthetic_inputs(results)
    files = synthetic_files(results)
    media = {r.shard: "application/x-parquet" for r in results}
    folder.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}
    times["summary"], summary = _best(lambda: synthetic_summary(results), repeat)
    times["summary.json"], _ = _best(lambda: atomic.write_json(folder / "summary.json", summary), repeat)
    times["manifest"], man = _best(lambda: release_manifest.build(summary, inputs, "laion-synthetic"), repeat)

    def croissant_text() -> str:
        return croissant_dumps(croissant(man, summary, name="laion", columns=COLUMNS, media_types=media))

    times["croissant.json"], _ = _best(croissant_text, repeat)
    times["README.md"], _ = _best(lambda: dataset_card(man, summary, name="laion"), repeat)

    def manifest_bytes() -> bytes:
        full = release_manifest.with_files(man, files)
        full["release"] = release_manifest.next_release(full, [])
        data = release_manifest.dumps(full)
        atomic.write_bytes(folder / release_manifest.MANIFEST, data)
        return data

    times["MANIFEST.json"], _ = _best(manifest_bytes, repeat)
    # As assemble writes it: the manifest in hand, summary.json read back from the release.
    times["report.html"], _ = _best(lambda: render_report(folder, manifest=man, signed=False), repeat)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-report-"))
    try:
        table = {n: build_all(n, work / f"rel{n}", args.repeat) for n in sizes}
        steps = list(table[sizes[0]])
        print(f"\nBuild time per release file (CPU s, best of {args.repeat}); µs per shard in brackets")
        print(f"{'file':<16}" + "".join(f"{n:>22,}" for n in sizes) + "   ratio of µs/shard")
        verdicts: list[bool] = []
        for step in steps:
            cells = "".join(f"{table[n][step]:>12.4f} s ({table[n][step] / n * 1e6:5.2f})" for n in sizes)
            per = [table[n][step] / n for n in sizes]
            ratios = [b / a for a, b in itertools.pairwise(per)]
            ok = not ratios or ratios[-1] <= LINEAR_RATIO
            verdicts.append(ok)
            print(f"{step:<16}{cells}   " + " ".join(f"{r:.2f}" for r in ratios) + f"  {_met(ok)}")
        print(f"linear in shards (last ratio <= {LINEAR_RATIO}): {_met(all(verdicts))}")

        big = max(sizes)
        folder = work / f"rel{big}"
        html = render_report(folder)
        page = folder / "report.html"
        page.write_text(html, encoding="utf-8")
        size = len(html.encode("utf-8"))
        print(f"\nreport.html at {big:,} shards: {size:,} bytes (< {MAX_BYTES:,}: {_met(size < MAX_BYTES)})")
        t = time.perf_counter()
        render_report(folder)
        alone = time.perf_counter() - t
        print(
            f"render_report: {table[big]['report.html']:.3f} s CPU while a release is written; "
            f"{alone:.3f} s wall as 'expunge report' (reads the {big:,}-shard MANIFEST.json too)"
        )
        has_views = 'data-chart="shard-distribution"' in html and 'data-chart="shards"' in html
        print(f"distribution + top shards drawn: {_met(has_views)}")
        binary = find_chromium()
        if binary is None:
            print("Chromium: not found, not measured (NOT MET)")
            return
        runs = []
        for i in range(3):
            t = time.perf_counter()
            run_chromium(binary, work / f"profile{i}", page, (1200, 2000), "--dump-dom")
            runs.append(time.perf_counter() - t)
        shot = work / "report.png"
        t = time.perf_counter()
        run_chromium(binary, work / "profile-shot", page, (1200, 2400), f"--screenshot={shot}")
        shot_s = time.perf_counter() - t
        (work / "blank.html").write_text("<!DOCTYPE html><title>blank</title>", encoding="utf-8")
        blanks = []
        for i in range(3):
            t = time.perf_counter()
            run_chromium(binary, work / f"profile-blank{i}", work / "blank.html", (1200, 2000), "--dump-dom")
            blanks.append(time.perf_counter() - t)
        blank = min(blanks)
        best = min(runs)
        print(
            f"Chromium --dump-dom: best {best:.2f} s of {', '.join(f'{r:.2f}' for r in runs)} "
            f"(< {MAX_CHROMIUM_S} s: {_met(best < MAX_CHROMIUM_S)}); screenshot {shot_s:.2f} s; "
            f"an empty page best {blank:.2f} s of 3 (browser start)"
        )
        print(
            f"the report's own share (best minus an empty page): {best - blank:+.2f} s; on a loaded machine "
            "the browser's start alone can pass the target, so both figures are printed"
        )
        if args.workdir:
            print(f"screenshot: {shot}")
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
