"""Cost curves of `expunge clean` as a user runs it: the first run and the daily update, by dataset size.

Run by hand (it is not a test)::

    python benchmarks/bench_curve.py [--sizes 1000000,5000000,20000000 --shard-rows 500000
                                      --bank 1000000 --planted 2000 --workers 2 --layout one
                                      --repeat 1 --quiet-wait 20 --workdir DIR --keep
                                      --results FILE --plot benchmarks/curve.png]

At the default sizes it writes about 1.3 GB of parquet under ``--workdir`` (``/tmp``) and removes it
at the end; on the 2-core machine of RESULTS.md it takes about 15 minutes, most of it generating data.

Why it is built this way:

* Shards have a fixed number of rows (``--shard-rows``, 500,000: 2, 10 and 40 shards at the default
  sizes), as a growing dataset gains shards rather than longer ones; so per-shard costs show in the
  slope, and the intercept is what a run costs whatever the data.
* The largest dataset is generated once (``expunge.demo.synth``) and each smaller one is its first
  shards, hard-linked: the same rows at every size, so the sizes differ only in how many there are.
* ``--layout one`` (default): all planted hits in the first shard, every other shard without the rows
  expunge would quarantine, so a run rewrites one shard and hard-links the rest, as with real lists.
  ``--layout every`` spreads the hits over every shard of each size (every shard is rewritten).
* Both measured commands are processes of the real CLI (``python -m expunge.cli clean ...``), timed
  from start to exit, the update being the same command after the list file gained 100,000 hashes that
  match nothing (see ``bench_urls.update_release``, which also checks that no shard was rewritten and
  that the release equals a from-scratch run with the grown list).
* The helpers (monitoring, quiet wait, data layout, the update itself) are bench_urls.py's.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_urls as bu  # a sibling script, not a package

MILLION = 1_000_000
DEFAULT_SIZES = (1_000_000, 5_000_000, 20_000_000)
SLOPE_GROWTH_LIMIT = 1.3  # slope of an interval / slope of the one before
INTERCEPT_LIMIT = 2.0  # seconds: fixed cost of a first run
RSS_GROWTH_LIMIT = 1.3  # peak RSS at the largest size / at the smallest
UPDATE_FLAT_LIMIT = 1.3  # update time at the two largest sizes, larger / smaller
UPDATE_SHARE_LIMIT = 0.10  # update / first run at the largest size


# --------------------------------------------------------------------------------------------------
# Data


def prepare(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The largest dataset once, each size as a folder of hard links to its first shards, one bank
    per size, and the lines the update appends."""
    from expunge.demo import synth

    largest = max(args.sizes)
    n_shards = -(-largest // args.shard_rows)
    bu._log(f"generating {largest:,} rows in {n_shards} shards ...")
    started = time.perf_counter()
    generated = synth.generate_dataset(
        work / "generated", rows=largest, shards=n_shards, seed=args.seed, flagged=0, utf8_only=True
    )
    shards = [str(p) for p in generated.shards]
    bu._log(f"  {time.perf_counter() - started:.0f} s")
    if args.layout == "one":
        bu._log("dropping the quarantine cases of every shard but the first ...")
        started = time.perf_counter()
        shards = [str(p) for p in bu.one_shard_layout(shards, work / "all", args.workers)]
        shutil.rmtree(work / "generated")
        bu._log(f"  {time.perf_counter() - started:.0f} s")
    random = synth.random_digests(args.bank - args.planted, bu.DIGEST_WIDTH, seed=args.seed + 1)
    growth = bu.write_growth(work / "lists" / "growth.txt", bu.GROWTH, seed=args.seed + 2)
    one_picks = bu.pick_digests(shards[:1], args.planted) if args.layout == "one" else None
    sizes = []
    for rows in sorted(args.sizes):
        mine = shards[: -(-rows // args.shard_rows)]
        folder = work / f"data_{rows}"
        folder.mkdir()
        for shard in mine:
            os.link(shard, folder / Path(shard).name)
        picks = one_picks if one_picks is not None else bu.pick_digests(mine, args.planted)
        lists = work / "lists" / str(rows)
        lists.mkdir(parents=True)
        bank = synth.write_digest_list(lists / "bank.txt", bu._bank(random, picks, args.seed), "plain")
        sizes.append(
            {
                "rows_nominal": rows,
                "rows": sum(_rows_of(folder / Path(s).name) for s in mine),
                "shards": [Path(s).name for s in mine],
                "dir": str(folder),
                "list": str(bank),
                "bytes": sum((folder / Path(s).name).stat().st_size for s in mine),
            }
        )
    return {"sizes": sizes, "growth": str(growth)}


def _rows_of(path: Path) -> int:
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(path).metadata.num_rows)


# --------------------------------------------------------------------------------------------------
# Measurement


def measure_size(
    work: Path, size: dict[str, Any], growth: Path, args: argparse.Namespace, gate: Any
) -> dict[str, Any]:
    """First run and update of one size, ``--repeat`` times each; the fastest of each counts."""
    firsts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    dataset, bank = Path(size["dir"]), Path(size["list"])
    store, out = work / f"store_{size['rows_nominal']}", work / f"out_{size['rows_nominal']}"
    expected_rewrites = 1 if args.layout == "one" else len(size["shards"])
    for _ in range(args.repeat):
        bu._fresh(store, out)
        gate.wait()
        first = bu.run_process(bu.clean_command(dataset, bank, store, out, args.workers), args.timeout)
        summary = json.loads((out / "summary.json").read_text())
        first["stages"] = bu._ledger_stages(store, "clean")
        first["outside_stages_seconds"] = first["seconds"] - sum(
            s["seconds"] for s in first["stages"].values()
        )
        first["rows_removed"] = summary["rows_removed"]
        first["shards_rewritten"] = summary["shards_rewritten"]
        problems = []
        if summary["rows_removed"] != args.planted:
            problems.append(f"first run removed {summary['rows_removed']} rows, expected {args.planted}")
        if summary["shards_rewritten"] != expected_rewrites:
            problems.append(
                f"first run rewrote {summary['shards_rewritten']} shards, expected {expected_rewrites}"
            )
        first["problems"] = problems
        bu._log(f"  {size['rows']:,} rows, first run: {first['seconds']:.2f} s, peak {_peak(first):.0f} MiB")
        gate.wait()
        update = bu.update_release(
            dataset=dataset,
            list_path=bank,
            store=store,
            out=out,
            growth=growth,
            workers=args.workers,
            shard_names=size["shards"],
            scratch=work / "verify",
            timeout=args.timeout,
        )
        update["problems"] = bu.update_problems(update, args.planted)
        bu._log(f"  {size['rows']:,} rows, update: {update['seconds']:.2f} s, peak {_peak(update):.0f} MiB")
        firsts.append(first)
        updates.append(update)
    bu._fresh(store, out)
    return {"first": _best(firsts), "update": _best(updates)}


def _best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    best = dict(min(runs, key=lambda run: float(run["seconds"])))
    best["all_seconds"] = [run["seconds"] for run in runs]
    best["all_other_cores"] = [run["cpu"]["other_cores"] for run in runs]
    best["peak_mib_max"] = max(_peak(run) for run in runs)
    best["problems"] = [p for run in runs for p in run["problems"]]
    return best


def _peak(run: dict[str, Any]) -> float:
    return float(run["memory"]["peak_mib"])


# --------------------------------------------------------------------------------------------------
# The curve: intercept and slopes, targets


def curve_of(rows: list[int], seconds: list[float], names: list[int]) -> dict[str, Any]:
    """Cost per million rows between consecutive sizes, and the fixed cost: the intercept of the
    least-squares line through every point and, separately, of the first interval's line (what a run
    of no rows would cost if the smallest interval's rate held all the way down)."""
    millions = [r / MILLION for r in rows]
    slopes = [(seconds[i + 1] - seconds[i]) / (millions[i + 1] - millions[i]) for i in range(len(rows) - 1)]
    fit_slope, fit_intercept = (float(v) for v in np.polyfit(millions, seconds, 1))
    return {
        "slopes_s_per_million": slopes,
        "intervals": [
            f"{names[i] / MILLION:g}M -> {names[i + 1] / MILLION:g}M" for i in range(len(rows) - 1)
        ],
        "fit_slope_s_per_million": fit_slope,
        "fit_intercept_s": fit_intercept,
        "first_interval_intercept_s": seconds[0] - slopes[0] * millions[0] if slopes else None,
    }


def evaluate(points: list[dict[str, Any]], first: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of the issue with its value and met / not met; the update's slopes are printed but
    not judged (they are near zero, so their ratio is noise), its flatness is."""
    targets: list[dict[str, Any]] = []

    def add(key: str, figure: str, value: float | None, target: str, met: bool | None, **extra: Any) -> None:
        targets.append({"key": key, "figure": figure, "value": value, "target": target, "met": met, **extra})

    slopes = first["slopes_s_per_million"]
    for i in range(1, len(slopes)):
        ratio = slopes[i] / slopes[i - 1] if slopes[i - 1] > 0 else None
        add(
            f"first_slope_growth_{i}",
            f"first run: slope {first['intervals'][i]} / slope {first['intervals'][i - 1]}",
            ratio,
            f"<= {SLOPE_GROWTH_LIMIT:g}",
            None if ratio is None else ratio <= SLOPE_GROWTH_LIMIT,
        )
    intercept = first["fit_intercept_s"]
    add(
        "first_intercept",
        "first run: fixed cost (intercept of the fit), s",
        intercept,
        f"< {INTERCEPT_LIMIT:g} s",
        intercept < INTERCEPT_LIMIT,
    )
    lo, hi = points[0], points[-1]
    for kind in ("first", "update"):
        ratio = hi[kind]["peak_mib_max"] / lo[kind]["peak_mib_max"]
        add(
            f"{kind}_rss_flat",
            f"{kind}: peak RSS at {hi['rows']:,} / at {lo['rows']:,} rows",
            ratio,
            f"<= {RSS_GROWTH_LIMIT:g}",
            ratio <= RSS_GROWTH_LIMIT,
        )
    if len(points) >= 2:
        a, b = points[-2]["update"]["seconds"], points[-1]["update"]["seconds"]
        ratio = max(a, b) / min(a, b)
        add(
            "update_flat",
            f"update: {points[-2]['rows']:,} vs {points[-1]['rows']:,} rows, larger / smaller",
            ratio,
            f"<= {UPDATE_FLAT_LIMIT:g}",
            ratio <= UPDATE_FLAT_LIMIT,
        )
    share = hi["update"]["seconds"] / hi["first"]["seconds"]
    add(
        "update_vs_first_at_largest",
        f"update / first run at {hi['rows']:,} rows",
        share,
        f"<= {UPDATE_SHARE_LIMIT:g}",
        share <= UPDATE_SHARE_LIMIT,
        rows=hi["rows"],
    )
    return targets


# --------------------------------------------------------------------------------------------------
# Report and plot


def print_report(meta: dict[str, Any], result: dict[str, Any]) -> None:
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
    print(f"\nexpunge cost curves, {meta['date']}; {meta['cpu']}, {meta['cores']} cores; {versions}")
    print(f"command: {meta['command']}; expunge from {meta['expunge_source']}")
    print(
        f"layout {meta['layout']} ({_layout_words(meta['layout'])}); {meta['shard_rows']:,} rows per shard; "
        f"bank {meta['bank']:,} MD5s incl. {meta['planted']:,} planted; "
        f"update +{bu.GROWTH:,} non-matching; workers {meta['workers']}; best of {meta['repeat']}; "
        f"waited {meta['quiet_wait_seconds']:.0f} s for quiet\n"
    )
    head = f"{'first s':>8} {'peak MiB':>8} | {'update s':>8} {'peak MiB':>8}"
    print(f"{'rows':>12} {'shards':>6} {'MiB':>6} | {head} | other cores")
    for p in result["points"]:
        f, u = p["first"], p["update"]
        print(
            f"{p['rows']:>12,} {len(p['shards']):>6} {p['bytes'] / bu.MIB:>6,.0f} | {f['seconds']:>8.2f} "
            f"{f['peak_mib_max']:>8.0f} | {u['seconds']:>8.2f} {u['peak_mib_max']:>8.0f} | "
            f"{max(f['all_other_cores']):.2f} / {max(u['all_other_cores']):.2f}"
        )
    for kind in ("first", "update"):
        c = result["curves"][kind]
        slopes = ", ".join(
            f"{iv}: {s:.3f}" for iv, s in zip(c["intervals"], c["slopes_s_per_million"], strict=True)
        )
        print(
            f"\n{kind}: s per million rows {slopes}; least-squares fit {c['fit_intercept_s']:.2f} s + "
            f"{c['fit_slope_s_per_million']:.3f} s/M; "
            f"first interval's intercept {c['first_interval_intercept_s']:.2f} s"
        )
    print("\nwhere the time goes (ledger stages; 'outside' = start-up, list import, release files):")
    for p in result["points"]:
        for kind in ("first", "update"):
            run = p[kind]
            stages = ", ".join(f"{k} {v['seconds']:.2f}" for k, v in run["stages"].items())
            print(f"  {p['rows']:>12,} {kind:6}: {stages}, outside {run['outside_stages_seconds']:.2f} s")
    for p in result["points"]:
        u, scratch = p["update"], p["update"]["from_scratch"]
        same = scratch["shards_compared"] - len(scratch["shards_differing"])
        print(
            f"  {p['rows']:>12,} update: shards replaced {u['shards_replaced'] or 'none'}, manifest shard "
            f"entries changed {u['manifest_shard_entries_changed'] or 'none'}, {same}/"
            f"{scratch['shards_compared']} shards byte-identical to a from-scratch run"
        )
    print(f"\n{'target':<64}{'value':>10}  {'limit':>8}  met")
    for t in result["targets"]:
        value = "n/a" if t["value"] is None else f"{t['value']:.3f}"
        met = "" if t["met"] is None else ("yes" if t["met"] else "NO")
        print(f"{t['figure']:<64}{value:>10}  {t['target']:>8}  {met}")
    failures = result["failures"]
    print("\ncorrectness: " + ("all checks passed" if not failures else "; ".join(failures)))


def plot(path: Path, result: dict[str, Any], meta: dict[str, Any]) -> None:
    """Seconds against rows, first run and update, as a PNG drawn with Pillow (no matplotlib here):
    axes with ticks, each measured point with its value, straight lines between points."""
    from PIL import Image, ImageDraw, ImageFont

    width, height = 960, 600
    left, right, top, bottom = 90, 80, 70, 90
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=15)
    small = ImageFont.load_default(size=13)
    points = result["points"]
    xs = [p["rows"] / MILLION for p in points]
    series = {
        "first run": ([p["first"]["seconds"] for p in points], (31, 119, 180)),
        "update (+100k non-matching hashes)": ([p["update"]["seconds"] for p in points], (214, 96, 24)),
    }
    x_max = _nice_ceiling(max(xs))
    y_max = _nice_ceiling(max(max(v) for v, _ in series.values()) * 1.1)

    def at(x: float, y: float) -> tuple[float, float]:
        return (
            left + x / x_max * (width - left - right),
            height - bottom - y / y_max * (height - top - bottom),
        )

    # axes, grid and ticks
    x0, y0 = at(0, 0)
    draw.line([at(0, y_max), (x0, y0), at(x_max, 0)], fill="black", width=2)
    for y in _ticks(y_max):
        px, py = at(0, y)
        draw.line([(px, py), at(x_max, y)], fill=(225, 225, 225))
        draw.line([(px - 5, py), (px, py)], fill="black")
        draw.text((px - 8, py), f"{y:g}", fill="black", font=small, anchor="rm")
    for x in _ticks(x_max):
        px, py = at(x, 0)
        draw.line([(px, py), (px, py + 5)], fill="black")
        draw.text((px, py + 8), f"{x:g}", fill="black", font=small, anchor="mt")
    draw.text(
        ((left + width - right) / 2, height - bottom + 32),
        "rows (millions)",
        fill="black",
        font=font,
        anchor="mt",
    )
    draw.text((left, top - 14), "seconds", fill="black", font=font, anchor="mb")
    title = (
        f"expunge clean as a process: seconds vs rows ({meta['workers']} workers, "
        f"{meta['bank']:,}-hash bank, {_layout_words(meta['layout'])})"
    )
    draw.text((width / 2, 22), title, fill="black", font=font, anchor="mt")
    draw.text(
        (width / 2, height - 22),
        f"{meta['date'][:10]}, {meta['cores']} cores, {meta['shard_rows']:,} rows per shard; "
        f"best of {meta['repeat']}",
        fill=(90, 90, 90),
        font=small,
        anchor="mb",
    )
    # series
    for n, (label, (ys, colour)) in enumerate(series.items()):
        pts = [at(x, y) for x, y in zip(xs, ys, strict=True)]
        draw.line(pts, fill=colour, width=3)
        for (px, py), y in zip(pts, ys, strict=True):
            draw.ellipse([px - 5, py - 5, px + 5, py + 5], fill=colour)
            # up and to the left: clear of a line that rises to the right
            draw.text((px - 6, py - 8), f"{y:.1f} s", fill=colour, font=small, anchor="rb")
        ly = top + 10 + n * 22
        draw.line([(left + 20, ly), (left + 50, ly)], fill=colour, width=3)
        draw.text((left + 58, ly), label, fill="black", font=small, anchor="lm")
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, optimize=True)


def _nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at least ``value``."""
    if value <= 0:
        return 1.0
    power = 10 ** np.floor(np.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return float(step * power)
    return float(10 * power)


def _ticks(limit: float) -> list[float]:
    step = _nice_ceiling(limit / 6)
    return [float(i * step) for i in range(round(limit / step) + 1)]


def _layout_words(layout: str) -> str:
    return "all hits in the first shard" if layout == "one" else "hits in every shard"


# --------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument(
        "--sizes",
        type=lambda text: sorted({int(t) for t in text.split(",") if t.strip()}),
        default=list(DEFAULT_SIZES),
        help="rows, comma-separated (at least two)",
    )
    p.add_argument("--shard-rows", type=int, default=500_000)
    p.add_argument("--bank", type=int, default=1_000_000, help="bank size, planted digests included")
    p.add_argument("--planted", type=int, default=2_000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--layout", choices=("one", "every"), default="one")
    p.add_argument("--repeat", type=int, default=1, help="runs of each command per size; the best counts")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", type=Path, default=None, help="parent folder for generated data (/tmp)")
    p.add_argument("--keep", action="store_true", help="keep the generated data")
    p.add_argument("--results", type=Path, default=None, help="also write every figure as JSON here")
    p.add_argument("--plot", type=Path, default=Path(__file__).resolve().parent / "curve.png")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds allowed per command")
    p.add_argument(
        "--quiet-wait", type=float, default=20.0, help="seconds a run may wait for quiet (0: never)"
    )
    p.add_argument("--replot", type=Path, default=None, help="only draw --plot from this results JSON")
    args = p.parse_args(argv)
    if args.replot:
        saved = json.loads(args.replot.read_text())
        plot(args.plot, saved, saved["meta"])
        return 0
    if len(args.sizes) < 2 or args.sizes[0] < args.planted or args.shard_rows < 1 or args.repeat < 1:
        p.error("need two or more --sizes of at least --planted rows, --shard-rows >= 1, --repeat >= 1")
    if args.layout == "one" and args.sizes[0] < args.shard_rows:
        p.error("the one-shard layout needs every size to hold the first shard (--sizes >= --shard-rows)")

    parent = args.workdir or Path(tempfile.gettempdir())
    parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="expunge-curve-", dir=parent))
    shown = argv if argv is not None else sys.argv[1:]
    meta: dict[str, Any] = {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": bu._cpu_model(),
        "cores": len(os.sched_getaffinity(0)),
        "versions": bu._versions(),
        "expunge_source": bu._expunge_source(),
        "command": " ".join(["python", "benchmarks/bench_curve.py", *shown]),
        "python": sys.executable,
        "layout": args.layout,
        "shard_rows": args.shard_rows,
        "bank": args.bank,
        "planted": args.planted,
        "workers": args.workers,
        "repeat": args.repeat,
    }
    failures: list[str] = []
    try:
        plan = prepare(work, args)
        gate = bu.QuietGate(args.quiet_wait, budget=2 * len(args.sizes) * args.repeat * args.quiet_wait)
        points = []
        for size in plan["sizes"]:
            bu._log(f"{size['rows']:,} rows in {len(size['shards'])} shards ...")
            points.append({**size, **measure_size(work, size, Path(plan["growth"]), args, gate)})
        meta["quiet_wait_seconds"] = gate.waited
        rows = [pt["rows"] for pt in points]
        names = [pt["rows_nominal"] for pt in points]
        curves = {k: curve_of(rows, [pt[k]["seconds"] for pt in points], names) for k in ("first", "update")}
        failures = [
            f"{pt['rows']:,} rows {k}: {msg}"
            for pt in points
            for k in ("first", "update")
            for msg in pt[k]["problems"]
        ]
        result = {
            "points": points,
            "curves": curves,
            "targets": evaluate(points, curves["first"]),
            "failures": failures,
        }
        print_report(meta, result)
        plot(args.plot, result, meta)
        bu._log(f"wrote {args.plot}")
        if args.results:
            args.results.write_text(json.dumps({"meta": meta, **result}, indent=2, default=str))
    finally:
        if args.keep:
            bu._log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
