"""The ``expunge`` command: a thin skin over :mod:`expunge.api`.

Every failure a user can cause ends as one line on stderr naming the file and the line or row, with a
non-zero exit; never a traceback. Nothing printed here ever includes a flagged row's URL or caption.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from expunge import __version__, api
from expunge.errors import ExpungeError
from expunge.progress import RichReporter

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Find and remove dataset rows that match known-abuse hash lists, and publish a clean release.",
)
lists_app = typer.Typer(no_args_is_help=True, help="Import, list and compare hash lists (banks).")
app.add_typer(lists_app, name="lists")
out = Console()

StoreOpt = Annotated[Path, typer.Option("--store", help="State folder (banks, index, findings, runs).")]
WorkersOpt = Annotated[int | None, typer.Option("--workers", help="Worker processes (default: all cores).")]
ExecutorOpt = Annotated[
    str, typer.Option("--executor", help="Where tasks run: local, or ray (a Ray cluster).")
]
AddressOpt = Annotated[
    str | None, typer.Option("--address", help="Ray cluster: auto or ray://host:port (default: RAY_ADDRESS).")
]
UrlColOpt = Annotated[str | None, typer.Option("--url-column", help="URL column (default: detected).")]
CapColOpt = Annotated[
    str | None, typer.Option("--caption-column", help="Caption column (default: detected).")
]
KeyColOpt = Annotated[str | None, typer.Option("--key-column", help="Key column (default: detected).")]
BankOpt = Annotated[list[str] | None, typer.Option("--bank", help="Use only this bank (repeatable).")]
AllowEmptyOpt = Annotated[
    bool, typer.Option("--allow-empty", help="Accept a list with no values (refused by default).")
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
DihedralOpt = Annotated[bool, typer.Option("--dihedral", help="Also match rotated/flipped copies (PDQ).")]
QualityOpt = Annotated[
    int, typer.Option("--quality-floor", help="PDQ hashes below this quality are not matched.")
]
PixelsOpt = Annotated[
    int, typer.Option("--max-pixels", help="Larger images are quarantined (decompression bombs).")
]
DatasetArg = Annotated[list[str], typer.Argument(help="Parquet shards: a folder, a glob, or files.")]


_OPTION_NAMES = (
    "store",
    "workers",
    "executor",
    "address",
    "url_column",
    "caption_column",
    "key_column",
    "dihedral",
    "quality_floor",
    "max_pixels",
)


def _opts(given: dict[str, Any], quiet: bool) -> api.Options:
    """api.Options from a command's own parameters (each command declares only the options it has)."""
    chosen = {k: given[k] for k in _OPTION_NAMES if k in given}
    return api.Options(**chosen, reporter=RichReporter(quiet=quiet))


@app.callback(invoke_without_command=True)
def _root(
    version: Annotated[bool, typer.Option("--version", help="Show the version and exit.")] = False,
) -> None:
    if version:
        out.print(f"expunge {__version__}")
        raise typer.Exit()


@lists_app.command("import")
def lists_import(
    file: Annotated[Path, typer.Argument(help="List file: plain text, CSV with header, or threatexchange.")],
    signal: Annotated[
        str | None, typer.Option(help="Signal type, e.g. url_md5 (pytx files name it).")
    ] = None,
    recipe: Annotated[
        str | None, typer.Option(help="URL recipe the list owner hashed: raw/stripped/canonical.")
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(help="Bank name (default: the file's stem, or stem-HASH if another file holds it)."),
    ] = None,
    source: Annotated[str | None, typer.Option(help="Organisation the list came from.")] = None,
    label: Annotated[str | None, typer.Option(help="Version label or date of this file.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="auto, plain, csv or pytx.")] = "auto",
    column: Annotated[str | None, typer.Option(help="CSV column holding the values.")] = None,
    threshold: Annotated[
        int | None, typer.Option(help="Hamming threshold for pdq lists (default 31).")
    ] = None,
    allow_empty: AllowEmptyOpt = False,
    store: StoreOpt = Path(api.DEFAULT_STORE),
) -> None:
    """Import a list as a new version of a bank; a malformed line, or no value at all, refuses the file."""
    res = api.import_list(
        file,
        store=store,
        name=name,
        signal=signal,
        recipe=recipe,
        source=source,
        label=label,
        fmt=fmt,
        column=column,
        threshold=threshold,
        allow_empty=allow_empty,
    )
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    if res.note:
        err.print(f"[yellow]note:[/] {escape(res.note)}")
    if res.count == 0:
        err.print(f"[yellow]warning:[/] {escape(str(file))} holds no values: is it the right file?")
    if res.unchanged:
        out.print(f"bank [bold]{res.name}[/] unchanged at version {res.version} ({res.count:,} values)")
    else:
        out.print(
            f"bank [bold]{res.name}[/] version {res.version}: {res.count:,} values "
            f"(+{res.added:,} added, -{res.removed:,} removed)"
        )


@lists_app.command("ls")
def lists_ls(
    store: StoreOpt = Path(api.DEFAULT_STORE),
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show the banks in the store with their provenance (never their values)."""
    banks = api.list_banks(store)
    if as_json:
        print(json.dumps([b.public() for b in banks], indent=2, sort_keys=True))
        return
    table = Table(title=f"banks in {store}")
    for col in ("name", "signal", "recipe", "threshold", "source", "version", "label", "values"):
        table.add_column(col, justify="right" if col in ("version", "values", "threshold") else "left")
    for b in banks:
        p = b.public()
        threshold = "" if b.threshold is None else str(b.threshold)
        table.add_row(
            b.name, b.signal, b.recipe, threshold, b.source, str(b.version), str(p["label"]), f"{b.count:,}"
        )
    out.print(table)


@lists_app.command("diff")
def lists_diff(
    bank: Annotated[str, typer.Argument(help="Bank name.")],
    store: StoreOpt = Path(api.DEFAULT_STORE),
) -> None:
    """Version history of a bank: how many values each import added and removed."""
    info = next((b for b in api.list_banks(store) if b.name == bank), None)
    if info is None:
        raise ExpungeError(f"no bank named {bank!r}", store)
    table = Table(title=f"{bank}: {info.signal}/{info.recipe} from {info.source}")
    for col in ("version", "label", "file sha256", "values", "added", "removed"):
        table.add_column(col)
    for v in info.versions:
        table.add_row(
            str(v["version"]),
            str(v["label"]),
            v["file_sha256"][:16],
            f"{v['count']:,}",
            f"+{v['added']:,}",
            f"-{v['removed']:,}",
        )
    out.print(table)


@app.command("index")
def index_cmd(
    dataset: DatasetArg,
    bank: BankOpt = None,
    store: StoreOpt = Path(api.DEFAULT_STORE),
    workers: WorkersOpt = None,
    executor: ExecutorOpt = "local",
    address: AddressOpt = None,
    url_column: UrlColOpt = None,
    caption_column: CapColOpt = None,
    key_column: KeyColOpt = None,
    dihedral: DihedralOpt = False,
    quality_floor: QualityOpt = 50,
    max_pixels: PixelsOpt = 178_956_970,
    quiet: QuietOpt = False,
) -> None:
    """Compute and store, once per shard, the digests that the banks' recipes need."""
    opts = _opts(locals(), quiet)
    rep = api.index(dataset, banks=bank, opts=opts)
    out.print(
        f"indexed {rep.shards_run} of {rep.shards_total} shards ({rep.details['rows_read']:,} rows read) "
        f"in {rep.seconds:.1f}s"
    )


@app.command("match")
def match_cmd(
    dataset: DatasetArg,
    bank: BankOpt = None,
    store: StoreOpt = Path(api.DEFAULT_STORE),
    workers: WorkersOpt = None,
    executor: ExecutorOpt = "local",
    address: AddressOpt = None,
    url_column: UrlColOpt = None,
    caption_column: CapColOpt = None,
    key_column: KeyColOpt = None,
    dihedral: DihedralOpt = False,
    quality_floor: QualityOpt = 50,
    max_pixels: PixelsOpt = 178_956_970,
    quiet: QuietOpt = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Match the stored index against the banks (only new bank values are matched on a rerun)."""
    opts = _opts(locals(), quiet)
    res = api.match(dataset, banks=bank, opts=opts)
    if as_json:
        print(json.dumps(res["rows_matched_by_bank"], indent=2, sort_keys=True))
        return
    table = Table(title="rows matched")
    table.add_column("bank")
    table.add_column("version", justify="right")
    table.add_column("rows", justify="right")
    for b in res["banks"]:
        table.add_row(b["name"], str(b["version"]), f"{res['rows_matched_by_bank'][b['name']]:,}")
    out.print(table)


@app.command("clean")
def clean_cmd(
    dataset: DatasetArg,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the cleaned release.")],
    list_: Annotated[
        list[str] | None, typer.Option("--list", help="FILE:SIGNAL[:RECIPE] to import and use (repeatable).")
    ] = None,
    allow_empty: AllowEmptyOpt = False,
    bank: BankOpt = None,
    store: StoreOpt = Path(api.DEFAULT_STORE),
    workers: WorkersOpt = None,
    executor: ExecutorOpt = "local",
    address: AddressOpt = None,
    url_column: UrlColOpt = None,
    caption_column: CapColOpt = None,
    key_column: KeyColOpt = None,
    dihedral: DihedralOpt = False,
    quality_floor: QualityOpt = 50,
    max_pixels: PixelsOpt = 178_956_970,
    sign: Annotated[
        Path | None, typer.Option("--sign", help="Sign MANIFEST.json with this key (from 'expunge keygen').")
    ] = None,
    cover: Annotated[
        int,
        typer.Option(
            "--cover", help="Hide each flagged row among at least K removed rows in the public diff."
        ),
    ] = 0,
    publish_records: Annotated[
        bool,
        typer.Option(
            "--publish-records",
            help="Also publish removed.parquet: it reveals which rows went (shard, row, reasons).",
        ),
    ] = False,
    previous: Annotated[
        Path | None,
        typer.Option(
            "--previous", help="MANIFEST.json of the release this one follows (default: the one in --out)."
        ),
    ] = None,
    quiet: QuietOpt = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")] = False,
) -> None:
    """Index, match and write the cleaned release: same shards, schema and row order, minus matches."""
    opts = _opts(locals(), quiet or as_json)
    opts.sign_key = sign
    opts.cover = cover
    opts.publish_records = publish_records
    opts.previous_manifest = previous
    summary = api.clean(dataset, out_dir, lists=list_ or (), banks=bank, opts=opts, allow_empty=allow_empty)
    if summary.get("notice"):  # once, on stderr, even with --json or --quiet
        Console(stderr=True).print(f"expunge: note: {escape(summary['notice'])}", highlight=False)
    if as_json:
        print(json.dumps(summary, indent=2, sort_keys=True))
        return
    print_summary(summary, out_dir)


@app.command("hash")
def hash_cmd(
    files: Annotated[list[Path], typer.Argument(help="Image files to hash.")],
    signal: Annotated[
        list[str] | None,
        typer.Option(
            "--signal",
            help="pdq, image_md5, image_sha1 or image_sha256 (repeatable; default pdq and image_md5).",
        ),
    ] = None,
    dihedral: DihedralOpt = False,
    max_pixels: PixelsOpt = 178_956_970,
) -> None:
    """Print threatexchange-format lines ('pdq HEX QUALITY', 'image_md5 HEX') that 'lists import' reads.

    A list holds one signal type: pick one with --signal when the output is meant for 'lists import'.
    """
    from expunge.features.images import hash_image, pdq_to_hex

    wanted = signal or ["pdq", "image_md5"]
    for name in wanted:
        if name not in ("pdq", "image_md5", "image_sha1", "image_sha256"):
            raise ExpungeError(f"unknown image signal {name!r} (pdq, image_md5, image_sha1, image_sha256)")
    err = Console(stderr=True)
    failed = 0
    for path in files:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ExpungeError(f"cannot read image ({exc.strerror})", path) from None
        h = hash_image(data, max_pixels=max_pixels, dihedral=dihedral)
        for name in wanted:
            if name == "pdq":
                if h.pdq is None:
                    err.print(f"{escape(str(path))}: no PDQ ({h.error})", highlight=False)
                    failed += 1
                    continue
                print(f"pdq {pdq_to_hex(h.pdq)} {h.quality}")
                for extra in h.dihedral:
                    print(f"pdq {pdq_to_hex(extra)} {h.quality}")
            else:
                digest = {"image_md5": h.md5, "image_sha1": h.sha1, "image_sha256": h.sha256}[name]
                print(f"{name} {digest.hex()}")
    if failed:
        raise typer.Exit(1)


@app.command("apply")
def apply_cmd(
    release: Annotated[Path, typer.Argument(help="A cleaned release (with MANIFEST.json).")],
    derivative: DatasetArg,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the cleaned derivative.")],
    list_: Annotated[
        list[str] | None, typer.Option("--list", help="Match these lists instead of the release's keep-list.")
    ] = None,
    allow_empty: AllowEmptyOpt = False,
    bank: BankOpt = None,
    store: StoreOpt = Path(api.DEFAULT_STORE),
    workers: WorkersOpt = None,
    url_column: UrlColOpt = None,
    quiet: QuietOpt = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")] = False,
) -> None:
    """Clean a derivative copy so it follows a release: keep only rows whose URL is in the release."""
    opts = _opts(locals(), quiet or as_json)
    summary = api.apply(
        release, derivative, out_dir, lists=list_ or (), banks=bank, opts=opts, allow_empty=allow_empty
    )
    if as_json:
        print(json.dumps(summary, indent=2, sort_keys=True))
        return
    print_summary(summary, out_dir)


@app.command("report")
def report_cmd(
    release: Annotated[Path, typer.Argument(help="A release folder written by 'expunge clean'.")],
    store: Annotated[Path | None, typer.Option("--store", help="Store for bank history and timings.")] = None,
    to: Annotated[
        Path | None, typer.Option("--out", help="Where to write it (default: RELEASE.report.html beside it).")
    ] = None,
) -> None:
    """Write a report of RELEASE with bank history and stage timings: charts, counts only, no flagged
    content. It goes beside the release, not into it: the release's own report.html is in its manifest."""
    from expunge.release.report import write_report

    if not (release / "summary.json").is_file():
        raise ExpungeError("not a release folder (no summary.json)", release)
    target = to or release.parent / f"{release.resolve().name}.report.html"
    if release.resolve() in target.resolve().parents:
        raise ExpungeError("write the report outside the release (its manifest lists every file)", target)
    path = write_report(release, store, path=target)
    out.print(f"report: {path}")


@app.command("keygen")
def keygen_cmd(
    prefix: Annotated[
        Path, typer.Argument(help="Writes PREFIX.key (secret, 0600) and PREFIX.pub (minisign).")
    ],
) -> None:
    """Make an Ed25519 key pair for signing release manifests."""
    from expunge.release.sign import keygen

    secret, public = keygen(prefix)
    out.print(f"secret key: {secret} (keep it private)\npublic key: {public} (publish it; minisign reads it)")


@app.command("verify")
def verify_cmd(
    release: Annotated[Path, typer.Argument(help="A release folder written by 'expunge clean'.")],
    manifest: Annotated[Path | None, typer.Option(help="Manifest (default: RELEASE/MANIFEST.json).")] = None,
    pubkey: Annotated[
        Path | None, typer.Option(help="Public key: the manifest's signature must match.")
    ] = None,
    list_: Annotated[
        list[str] | None, typer.Option("--list", help="FILE:SIGNAL[:RECIPE]: no row may match it.")
    ] = None,
    workers: WorkersOpt = None,
    min_sequence: Annotated[
        int | None, typer.Option("--min-sequence", help="Reject a release older than this sequence number.")
    ] = None,
    previous: Annotated[
        Path | None,
        typer.Option("--previous", help="An earlier MANIFEST.json: reject a release that is not newer."),
    ] = None,
) -> None:
    """Check signature, roots, every file's SHA-256 (nothing unlisted), shard rows, sequence, no matches."""
    from expunge.release.verify import verify_release

    problems = verify_release(
        release, manifest, pubkey, list_ or (), workers, min_sequence=min_sequence, previous=previous
    )
    err = Console(stderr=True)
    for line in problems:
        err.print(f"[red]mismatch:[/] {escape(line)}", highlight=False, soft_wrap=True)
    if problems:
        raise typer.Exit(1)
    out.print(f"[green]verified[/]: {release}")


@app.command("diff-release")
def diff_release_cmd(
    old: Annotated[Path, typer.Argument(help="Old release folder or its MANIFEST.json.")],
    new: Annotated[Path, typer.Argument(help="New release folder or its MANIFEST.json.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Shards to fetch again: those whose SHA-256 changed, plus added and removed ones."""
    from expunge.release import manifest as mf

    def shards(p: Path) -> dict[str, str]:
        m = mf.load(p / mf.MANIFEST if p.is_dir() else p)
        return {s["name"]: s["sha256"] for s in m["shards"]}

    a, b = shards(old), shards(new)
    lists: dict[str, list[str]] = {
        "changed": sorted(n for n in a.keys() & b.keys() if a[n] != b[n]),
        "added": sorted(b.keys() - a.keys()),
        "removed": sorted(a.keys() - b.keys()),
    }
    unchanged = len([n for n in a.keys() & b.keys() if a[n] == b[n]])
    if as_json:
        print(json.dumps({**lists, "unchanged": unchanged}, indent=2, sort_keys=True))
        return
    for key, names in lists.items():
        for name in names:
            out.print(f"{key:8} {name}")
    out.print(f"{unchanged} shards unchanged")


@app.command("demo")
def demo_cmd(
    workdir: Annotated[
        Path, typer.Option("--dir", help="Folder for the demo's data, lists, store and release.")
    ] = Path("expunge-demo"),
    rows: Annotated[int, typer.Option(help="Rows to synthesise.")] = 200_000,
    shards: Annotated[int, typer.Option(help="Parquet shards to spread them over.")] = 8,
    images: Annotated[int, typer.Option(help="Images in the img2dataset-style part (0 to skip).")] = 2_000,
    workers: WorkersOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Synthesise a LAION-like dataset and synthetic lists, then run the whole flow on them."""
    from expunge.demo import DEMO_LISTS, run_demo

    reporter = RichReporter(quiet=quiet)
    out.print(
        f"[bold]expunge demo[/]: {rows:,} synthetic rows over {shards} shards, four SYNTHETIC lists "
        "(hashes of ordinary generated rows; nothing harmful anywhere)"
    )
    res = run_demo(workdir, rows=rows, shards=shards, workers=workers, reporter=reporter, images=images)
    print_summary(res.summary, res.release)
    verdict = "[green]OK[/]" if res.missed == 0 and res.extra == 0 else "[red]MISMATCH[/]"
    out.print(
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
    bad = res.missed or res.extra
    if res.images is not None:
        img = res.images
        out.print(
            f"\n[bold]image part[/]: img2dataset-style tar shards, {img.summary['rows_in']:,} rows, "
            "listed images planted as exact, re-encoded, resized and cropped copies"
        )
        print_summary(img.summary, img.release)
        ok = img.missed == 0 and img.extra == 0
        bad = bad or not ok
        by_md5 = img.summary["removed_by_signal"].get("image_md5", 0)
        out.print(
            f"{'[green]OK[/]' if ok else '[red]MISMATCH[/]'}: "
            f"{img.planted - img.missed} of {img.planted} planted copies removed "
            f"({by_md5} by MD5, the rest only by PDQ), {img.extra} removed that were not planted"
        )
        where.add_row("image dataset", str(img.dataset))
        where.add_row("image release", str(img.release))
    where.add_row("time", ", ".join(f"{k} {v:.1f}s" for k, v in res.seconds.items()))
    out.print(where)
    if bad:
        raise typer.Exit(1)


def print_summary(summary: dict[str, Any], out_dir: Path, console: Console | None = None) -> None:
    con = console or out
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


def os_error_line(exc: OSError) -> str:
    """One line for a refusal by the system: which file, and the system's reason by its errno only.

    Arrow's I/O errors carry free text that can quote what was being parsed; only the errno is kept.
    """
    reason = os.strerror(exc.errno) if exc.errno else "input/output error"
    files = [str(f) for f in (exc.filename, exc.filename2) if f]
    return f"{' -> '.join(files)}: {reason}" if files else f"cannot read or write a file: {reason}"


def main() -> None:
    """Entry point: user errors become one line on stderr, never a traceback."""
    err = Console(stderr=True)
    # Pillow reports some decoder trouble through logging; images are counted and quarantined instead.
    logging.getLogger("PIL").setLevel(logging.CRITICAL)
    debug = "--debug" in sys.argv
    if debug:
        sys.argv.remove("--debug")
    try:
        app()
    except ExpungeError as exc:
        err.print(f"[red]expunge: error:[/] {escape(exc.one_line())}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except OSError as exc:  # the environment refused: a full disk, a read-only or missing folder
        if debug:
            raise
        err.print(f"[red]expunge: error:[/] {escape(os_error_line(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("expunge: interrupted; rerun the same command to resume")
        sys.exit(130)
    except Exception as exc:  # a bug: say so without dumping data-bearing context
        if debug:
            raise
        err.print(f"expunge: internal error ({type(exc).__name__}); rerun with --debug for details")
        sys.exit(70)
