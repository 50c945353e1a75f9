"""What the CLI prints: tables and lines built from the API's results. Counts, names and paths only:
nothing here ever shows a flagged row's URL or caption."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from expunge.demo import DemoResult
    from expunge.lists.bank import BankInfo

console = Console()


def banks_table(banks: list[BankInfo], store: Path | str) -> None:
    table = Table(title=f"banks in {store}")
    for col in ("name", "signal", "recipe", "threshold", "source", "version", "label", "values"):
        table.add_column(col, justify="right" if col in ("version", "values", "threshold") else "left")
    for b in banks:
        p = b.public()
        threshold = "" if b.threshold is None else str(b.threshold)
        # Names, sources and labels come from users and partners: shown as text, never as Rich markup.
        cells = (
            b.name,
            b.signal,
            b.recipe,
            threshold,
            b.source,
            str(b.version),
            str(p["label"]),
            f"{b.count:,}",
        )
        table.add_row(*(Text(c) for c in cells))
    console.print(table)


def bank_history(info: BankInfo) -> None:
    table = Table(title=Text(f"{info.name}: {info.signal}/{info.recipe} from {info.source}"))
    for col in ("version", "label", "file sha256", "values", "added", "removed"):
        table.add_column(col)
    for v in info.versions:
        table.add_row(
            str(v["version"]),
            Text(str(v["label"])),
            v["file_sha256"][:16],
            f"{v['count']:,}",
            f"+{v['added']:,}",
            f"-{v['removed']:,}",
        )
    console.print(table)


def matched_table(res: dict[str, Any]) -> None:
    table = Table(title="rows matched")
    table.add_column("bank")
    table.add_column("version", justify="right")
    table.add_column("rows", justify="right")
    for b in res["banks"]:
        table.add_row(Text(b["name"]), str(b["version"]), f"{res['rows_matched_by_bank'][b['name']]:,}")
    console.print(table)


def release_diff(diff: dict[str, Any]) -> None:
    for key in ("changed", "added", "removed"):
        for name in diff[key]:
            console.print(f"{key:8} {name}")
    console.print(f"{diff['unchanged']} shards unchanged")


def print_summary(summary: dict[str, Any], out_dir: Path | str, con: Console | None = None) -> None:
    con = con or console
    table = Table(title="expunge clean")
    table.add_column("", style="bold")
    table.add_column("rows", justify="right")
    table.add_row("input", f"{summary['rows_in']:,}")
    table.add_row("kept", f"{summary['rows_kept']:,}")
    table.add_row("removed", f"{summary['rows_removed']:,}", style="red")
    table.add_row("quarantined", f"{summary['rows_quarantined']:,}", style="yellow")
    con.print(table)
    banks = Table(title="removed by bank")
    for col in ("bank", "signal", "recipe", "version", "values", "rows removed"):
        banks.add_column(col, justify="right" if col in ("version", "values", "rows removed") else "left")
    for b in summary["banks"]:
        hit = summary["removed_by_bank"].get(f"{b['name']}@v{b['version']}", 0)
        banks.add_row(b["name"], b["signal"], b["recipe"], str(b["version"]), f"{b['count']:,}", f"{hit:,}")
    con.print(banks)
    if summary["quarantined_by_reason"]:
        con.print(
            "quarantined: "
            + ", ".join(f"{k} {v:,}" for k, v in sorted(summary["quarantined_by_reason"].items()))
        )
    con.print(
        f"shards: {summary['shards_copied']} copied unchanged, {summary['shards_rewritten']} rewritten → "
        f"[bold]{out_dir}[/]  (summary.json, MANIFEST.json, report.html beside the shards)"
    )


def demo_result(res: DemoResult) -> bool:
    """Print the demo's outcome; True when every planted row, and nothing else, was removed."""
    from expunge.demo import DEMO_LISTS

    print_summary(res.summary, res.release)
    verdict = "[green]OK[/]" if res.missed == 0 and res.extra == 0 else "[red]MISMATCH[/]"
    console.print(
        f"{verdict}: {res.expected_removed - res.missed:,} of {res.expected_removed:,} planted synthetic "
        f"rows removed, {res.extra} removed that were not planted"
    )
    where = Table(title="where everything went", show_header=False)
    where.add_column(style="bold")
    where.add_column()
    where.add_row("dataset", str(res.dataset))
    for name, path in res.lists.items():
        signal, recipe, _ = DEMO_LISTS[name]
        where.add_row(f"list {name}", f"{path}  ({signal}, {recipe})")
    where.add_row("store", f"{res.store}  (banks, index, findings, run ledger)")
    where.add_row("release", f"{res.release}")
    where.add_row("summary", f"{res.release / 'summary.json'}")
    where.add_row("removed rows", f"{res.release / 'removed.parquet'}  (keyed hashes, shard, row, reasons)")
    bad = bool(res.missed or res.extra)
    if res.triage is not None:
        tri = res.triage
        console.print(
            "\n[bold]triage part[/]: the same dataset under Re-LAION's research-safe policy (punsafe > 0.45,"
            " or > 0.95 with a SYNTHETIC keyword), hash lists as before"
        )
        print_summary(tri.summary, tri.release)
        ok = tri.left == 0 and tri.lost == 0
        bad = bad or not ok
        rules = ", ".join(f"{k} {v:,}" for k, v in sorted(tri.summary.get("removed_by_rule", {}).items()))
        console.print(
            f"{'[green]OK[/]' if ok else '[red]MISMATCH[/]'}: {tri.over:,} rows with punsafe > 0.45 or none,"
            f" {tri.left} of them left in the release, {tri.lost} safe rows taken by a rule; by rule: {rules}"
        )
        where.add_row("keyword list", f"{tri.keywords}  (SYNTHETIC neutral words)")
        where.add_row("research-safe release", str(tri.release))
    if res.images is not None:
        img = res.images
        console.print(
            f"\n[bold]image part[/]: img2dataset-style tar shards, {img.summary['rows_in']:,} rows, "
            "listed images planted as exact, re-encoded, resized and cropped copies"
        )
        print_summary(img.summary, img.release)
        ok = img.missed == 0 and img.extra == 0
        bad = bad or not ok
        by_md5 = img.summary["removed_by_signal"].get("image_md5", 0)
        console.print(
            f"{'[green]OK[/]' if ok else '[red]MISMATCH[/]'}: "
            f"{img.planted - img.missed} of {img.planted} planted copies removed "
            f"({by_md5} by MD5, the rest only by PDQ), {img.extra} removed that were not planted"
        )
        where.add_row("image dataset", str(img.dataset))
        where.add_row("image release", str(img.release))
    where.add_row("time", ", ".join(f"{k} {v:.1f}s" for k, v in res.seconds.items()))
    console.print(where)
    return not bad
