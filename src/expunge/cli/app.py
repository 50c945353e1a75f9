"""The ``expunge`` command: parsing and printing around :mod:`expunge.api`, one call per command.

Every failure a user can cause ends as one line on stderr naming the file and the line or row, with a
non-zero exit; never a traceback. Nothing printed here ever includes a flagged row's URL or caption.
Options are declared once in :mod:`expunge.cli.options`; what is printed is built in
:mod:`expunge.cli.render`.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from expunge import __version__
from expunge.cli import render
from expunge.cli.options import (
    AllowEmptyOpt,
    BankOpt,
    DatasetArg,
    DihedralOpt,
    JsonOpt,
    PixelsOpt,
    QuietOpt,
    StoreOpt,
    SummaryJsonOpt,
    WorkersOpt,
    run_options,
)
from expunge.cli.render import console
from expunge.config import (
    DEFAULT_POLICY,
    DEFAULT_STORE,
    FLOOD_MIN_ROWS,
    FLOOD_MULTIPLE,
    FLOOD_SHARE,
    MAX_PIXELS,
    RunConfig,
)
from expunge.errors import ExpungeError
from expunge.progress import RichReporter

if TYPE_CHECKING:
    from expunge import api
else:

    class _Api:
        """``expunge.api``, imported when a command first calls it: ``expunge --help`` and a command's
        own start do not pay for pyarrow, DuckDB and the pipeline before they are needed."""

        def __getattr__(self, name: str) -> Any:
            import expunge.api

            return getattr(expunge.api, name)

    api = _Api()

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Find and remove dataset rows that match known-abuse hash lists, and publish a clean release.",
)
lists_app = typer.Typer(no_args_is_help=True, help="Import, list and compare hash lists (banks).")
app.add_typer(lists_app, name="lists")
review_app = typer.Typer(
    no_args_is_help=True,
    help="Send candidates the policy withheld to an authorised hotline, and take its verdicts back.",
)
app.add_typer(review_app, name="review")
lineage_app = typer.Typer(
    no_args_is_help=True,
    help="Which models and datasets descend from data with removed rows, and a notice for each.",
)
app.add_typer(lineage_app, name="lineage")
proxy_app = typer.Typer(
    no_args_is_help=True,
    help="Match by proxy: a hotline matches your dataset's digests against lists you never see.",
)
app.add_typer(proxy_app, name="proxy")


def _stderr() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


@app.callback(invoke_without_command=True)
def _root(
    version: Annotated[bool, typer.Option("--version", help="Show the version and exit.")] = False,
) -> None:
    if version:
        console.print(f"expunge {__version__}")
        raise typer.Exit()


@lists_app.command("import")
def lists_import(
    path: Annotated[
        Path,
        typer.Argument(metavar="FILE", help="List file: plain text, CSV with header, or threatexchange."),
    ],
    signal: Annotated[
        str | None, typer.Option("--signal", help="Signal type, e.g. url_md5 (pytx files name it).")
    ] = None,
    recipe: Annotated[
        str | None, typer.Option("--recipe", help="URL recipe the list owner hashed: raw/stripped/canonical.")
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            "--name", help="Bank name (default: the file's stem, or stem-HASH if another file holds it)."
        ),
    ] = None,
    source: Annotated[str | None, typer.Option("--source", help="Organisation the list came from.")] = None,
    label: Annotated[str | None, typer.Option("--label", help="Version label or date of this file.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="auto, plain, csv or pytx.")] = "auto",
    column: Annotated[str | None, typer.Option("--column", help="CSV column holding the values.")] = None,
    threshold: Annotated[
        int | None, typer.Option("--threshold", help="Hamming threshold for pdq lists (default 31).")
    ] = None,
    allow_empty: AllowEmptyOpt = False,
    negative: Annotated[
        bool,
        typer.Option(
            "--negative",
            help="An allow-list: values a hotline or you cleared; their findings never remove a row.",
        ),
    ] = False,
    store: StoreOpt = DEFAULT_STORE,
) -> None:
    """Import a list as a new version of a bank; a malformed line, or no value at all, refuses the file."""
    res = api.import_list(
        path,
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
        negative=negative,
    )
    err = _stderr()
    if res.note:
        err.print(f"[yellow]note:[/] {escape(res.note)}")
    if res.count == 0:
        err.print(f"[yellow]warning:[/] {escape(str(path))} holds no values: is it the right file?")
    if res.unchanged:
        console.print(f"bank [bold]{res.name}[/] unchanged at version {res.version} ({res.count:,} values)")
    else:
        console.print(
            f"bank [bold]{res.name}[/] version {res.version}: {res.count:,} values "
            f"(+{res.added:,} added, -{res.removed:,} removed)"
        )


@lists_app.command("ls")
def lists_ls(store: StoreOpt = DEFAULT_STORE, as_json: JsonOpt = False) -> None:
    """Show the banks in the store with their provenance (never their values)."""
    banks = api.list_banks(store)
    if as_json:
        print(json.dumps([b.public() for b in banks], indent=2, sort_keys=True))
        return
    render.banks_table(banks, store)


@lists_app.command("diff")
def lists_diff(
    name: Annotated[str, typer.Argument(metavar="BANK", help="Bank name.")],
    store: StoreOpt = DEFAULT_STORE,
) -> None:
    """Version history of a bank: how many values each import added and removed."""
    render.bank_history(api.bank(name, store))


@app.command("index")
@run_options
def index_cmd(dataset: DatasetArg, config: RunConfig, banks: BankOpt = None) -> None:
    """Compute and store, once per shard, the digests that the banks' recipes need."""
    rep = api.index(dataset, banks=banks, opts=config)
    console.print(
        f"indexed {rep.shards_run} of {rep.shards_total} shards ({rep.details['rows_read']:,} rows read) "
        f"in {rep.seconds:.1f}s"
    )


@app.command("match")
@run_options
def match_cmd(
    dataset: DatasetArg, config: RunConfig, banks: BankOpt = None, as_json: JsonOpt = False
) -> None:
    """Match the stored index against the banks (only new bank values are matched on a rerun)."""
    res = api.match(dataset, banks=banks, opts=config)
    if as_json:
        print(json.dumps(res["rows_matched_by_bank"], indent=2, sort_keys=True))
        return
    render.matched_table(res)


@app.command("clean")
@run_options
def clean_cmd(
    dataset: DatasetArg,
    config: RunConfig,
    out: Annotated[str, typer.Option("--out", help="Folder or URL (s3://...) for the cleaned release.")],
    lists: Annotated[
        list[str] | None, typer.Option("--list", help="FILE:SIGNAL[:RECIPE] to import and use (repeatable).")
    ] = None,
    allow_empty: AllowEmptyOpt = False,
    banks: BankOpt = None,
    sign_key: Annotated[
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
    previous_manifest: Annotated[
        Path | None,
        typer.Option(
            "--previous", help="MANIFEST.json of the release this one follows (default: the one in --out)."
        ),
    ] = None,
    policy: Annotated[
        str,
        typer.Option(
            "--policy",
            help="hash-only (default), research, research-safe, or a policy file (TOML).",
        ),
    ] = DEFAULT_POLICY,
    keywords: Annotated[
        list[Path] | None,
        typer.Option("--keywords", help="Caption term list the policy's keyword rules use (repeatable)."),
    ] = None,
    negative_lists: Annotated[
        list[str] | None,
        typer.Option(
            "--negative", help="FILE:SIGNAL allow-list: cleared hashes never remove a row (repeatable)."
        ),
    ] = None,
    accept_flood: Annotated[
        list[str] | None,
        typer.Option("--accept-flood", help="Let this bank or rule past the flood guard (repeatable)."),
    ] = None,
    flood_share: Annotated[
        float,
        typer.Option("--flood-share", help="Flood guard: largest share of rows one bank or rule may take."),
    ] = FLOOD_SHARE,
    flood_multiple: Annotated[
        float,
        typer.Option(
            "--flood-multiple", help="Flood guard: largest multiple of a bank's or rule's last count."
        ),
    ] = FLOOD_MULTIPLE,
    flood_min_rows: Annotated[
        int, typer.Option("--flood-min-rows", help="Flood guard: counts up to this many rows never trip it.")
    ] = FLOOD_MIN_ROWS,
    as_json: SummaryJsonOpt = False,
) -> None:
    """Index, match, triage and write the cleaned release: same shards, schema and row order, minus
    the rows the lists and the policy take out."""
    summary = api.clean(
        dataset, out, lists=lists or (), banks=banks, negative_lists=negative_lists or (), opts=config
    )
    if summary.get("notice"):  # once, on stderr, even with --json or --quiet
        Console(stderr=True).print(f"expunge: note: {escape(summary['notice'])}", highlight=False)
    if as_json:
        print(json.dumps(summary, indent=2, sort_keys=True))
        return
    render.print_summary(summary, out)


@review_app.command("export")
@run_options
def review_export_cmd(
    dataset: DatasetArg,
    config: RunConfig,
    out: Annotated[Path, typer.Option("--out", help="New folder for the review package.")],
    include_urls: Annotated[
        bool,
        typer.Option(
            "--include-urls",
            help="Also write urls.csv (mode 0600) for the hotline: it names the candidates' URLs.",
        ),
    ] = False,
    again: Annotated[
        bool,
        typer.Option("--again", help="Also send candidates exported before and still undecided or unsure."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Write a package for an authorised hotline: review ids, shards, rows, rules and scores; never
    images or captions; URLs only with --include-urls."""
    res = api.review_export(dataset, out, include_urls=include_urls, again=again, opts=config)
    if res.urls_file is not None:
        Console(stderr=True).print(
            f"expunge: warning: {escape(str(res.urls_file))} names the candidates' URLs: send it to the"
            " authorised hotline only, over a secure channel, and delete it afterwards",
            highlight=False,
        )
    if as_json:
        print(json.dumps({"out": str(res.out), "candidates": res.candidates, "round": res.round}))
        return
    console.print(
        f"review package round {res.round}: {res.candidates:,} candidate(s) in {escape(str(res.out))}"
    )


@review_app.command("import")
@run_options
def review_import_cmd(
    verdicts: Annotated[Path, typer.Argument(metavar="VERDICTS", help="The hotline's verdicts CSV.")],
    dataset: DatasetArg,
    config: RunConfig,
    by: Annotated[str | None, typer.Option("--by", help="Who decided (when the file does not say).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Record verdicts (confirmed / not / unsure): the next clean removes confirmed rows and publishes
    rejected ones."""
    res = api.review_import(dataset, verdicts, by=by, opts=config)
    if as_json:
        print(json.dumps({"decided": res.decided, "unchanged": res.unchanged, "changed": res.changed}))
        return
    got = ", ".join(f"{v} {k}" for k, v in sorted(res.decided.items())) or "nothing new"
    console.print(f"verdicts recorded: {got}; {res.unchanged} unchanged; {res.skipped} blank line(s) skipped")


@review_app.command("forget")
@run_options
def review_forget_cmd(
    dataset: DatasetArg,
    config: RunConfig,
    shard: Annotated[str, typer.Option("--shard", help="The shard (its path in the dataset) to forget.")],
    drop_confirmed: Annotated[
        bool, typer.Option("--drop-confirmed", help="Also drop confirmed verdicts (they stop removing rows).")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Drop one changed shard's review rows, so the next clean reviews it afresh instead of withholding
    it whole (review:stale)."""
    dropped = api.review_forget(dataset, shard, drop_confirmed=drop_confirmed, opts=config)
    if as_json:
        print(json.dumps(dropped, sort_keys=True))
        return
    console.print("dropped: " + ", ".join(f"{k} {v:,}" for k, v in dropped.items()))


@review_app.command("status")
@run_options
def review_status_cmd(dataset: DatasetArg, config: RunConfig, as_json: JsonOpt = False) -> None:
    """How many candidates are queued, exported and decided."""
    counts = api.review_status(dataset, opts=config)
    if as_json:
        print(json.dumps(counts, sort_keys=True))
        return
    console.print(", ".join(f"{k} {v:,}" for k, v in counts.items()))


@app.command("apply")
@run_options
def apply_cmd(
    release: Annotated[Path, typer.Argument(help="A cleaned release (with MANIFEST.json).")],
    derivative: DatasetArg,
    config: RunConfig,
    out: Annotated[Path, typer.Option("--out", help="Folder for the cleaned derivative.")],
    lists: Annotated[
        list[str] | None, typer.Option("--list", help="Match these lists instead of the release's keep-list.")
    ] = None,
    allow_empty: AllowEmptyOpt = False,
    banks: BankOpt = None,
    lineage_id: Annotated[
        str | None,
        typer.Option("--lineage-id", help="The derivative's repo id (owner/name) in the lineage graph."),
    ] = None,
    as_json: SummaryJsonOpt = False,
) -> None:
    """Clean a derivative copy so it follows a release: keep only rows whose URL is in the release."""
    summary = api.apply(
        release, derivative, out, lists=lists or (), banks=banks, lineage_id=lineage_id, opts=config
    )
    if as_json:
        print(json.dumps(summary, indent=2, sort_keys=True))
        return
    render.print_summary(summary, out)


@app.command("hash")
def hash_cmd(
    files: Annotated[list[Path], typer.Argument(help="Image files to hash.")],
    signals: Annotated[
        list[str] | None,
        typer.Option(
            "--signal",
            help="pdq, image_md5, image_sha1 or image_sha256 (repeatable; default pdq and image_md5).",
        ),
    ] = None,
    dihedral: DihedralOpt = False,
    max_pixels: PixelsOpt = MAX_PIXELS,
) -> None:
    """Print threatexchange-format lines ('pdq HEX QUALITY', 'image_md5 HEX') that 'lists import' reads.

    A list holds one signal type: pick one with --signal when the output is meant for 'lists import'.
    """
    err = Console(stderr=True)
    failed = 0
    for image in api.hash_files(files, signals=signals, dihedral=dihedral, max_pixels=max_pixels):
        for line in image.lines:
            print(line)
        for problem in image.failures:
            err.print(escape(problem), highlight=False)
        failed += len(image.failures)
    if failed:
        raise typer.Exit(1)


@app.command("report")
def report_cmd(
    release: Annotated[Path, typer.Argument(help="A release folder written by 'expunge clean'.")],
    store: Annotated[Path | None, typer.Option("--store", help="Store for bank history and timings.")] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Where to write it (default: RELEASE.report.html beside it).")
    ] = None,
) -> None:
    """Write a report of RELEASE with bank history and stage timings: charts, counts only, no flagged
    content. It goes beside the release, not into it: the release's own report.html is in its manifest."""
    console.print(f"report: {api.report(release, store=store, out=out)}")


@app.command("keygen")
def keygen_cmd(
    prefix: Annotated[
        Path, typer.Argument(help="Writes PREFIX.key (secret, 0600) and PREFIX.pub (minisign).")
    ],
) -> None:
    """Make an Ed25519 key pair for signing release manifests."""
    secret, public = api.keygen(prefix)
    console.print(
        f"secret key: {secret} (keep it private)\npublic key: {public} (publish it; minisign reads it)"
    )


@app.command("verify")
def verify_cmd(
    release: Annotated[
        str, typer.Argument(help="A release written by 'expunge clean': a folder or a URL (s3://...).")
    ],
    manifest: Annotated[
        str | None, typer.Option("--manifest", help="Manifest (default: RELEASE/MANIFEST.json).")
    ] = None,
    pubkey: Annotated[
        Path | None, typer.Option("--pubkey", help="Public key: the manifest's signature must match.")
    ] = None,
    lists: Annotated[
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
    problems = api.verify(
        release,
        manifest=manifest,
        pubkey=pubkey,
        lists=lists or (),
        workers=workers,
        min_sequence=min_sequence,
        previous=previous,
    )
    err = Console(stderr=True)
    for line in problems:
        err.print(f"[red]mismatch:[/] {escape(line)}", highlight=False, soft_wrap=True)
    if problems:
        raise typer.Exit(1)
    console.print(f"[green]verified[/]: {release}")


@app.command("diff-release")
def diff_release_cmd(
    old: Annotated[Path, typer.Argument(help="Old release folder or its MANIFEST.json.")],
    new: Annotated[Path, typer.Argument(help="New release folder or its MANIFEST.json.")],
    as_json: JsonOpt = False,
) -> None:
    """Shards to fetch again: those whose SHA-256 changed, plus added and removed ones."""
    diff = api.diff_release(old, new)
    if as_json:
        print(json.dumps(diff, indent=2, sort_keys=True))
        return
    render.release_diff(diff)


@app.command("demo")
def demo_cmd(
    workdir: Annotated[
        Path, typer.Option("--dir", help="Folder for the demo's data, lists, store and release.")
    ] = Path("expunge-demo"),
    rows: Annotated[int, typer.Option("--rows", help="Rows to synthesise.")] = 200_000,
    shards: Annotated[int, typer.Option("--shards", help="Parquet shards to spread them over.")] = 8,
    images: Annotated[
        int, typer.Option("--images", help="Images in the img2dataset-style part (0 to skip).")
    ] = 2_000,
    workers: WorkersOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Synthesise a LAION-like dataset and synthetic lists, then run the whole flow on them."""
    from expunge import demo

    console.print(
        f"[bold]expunge demo[/]: {rows:,} synthetic rows over {shards} shards, four SYNTHETIC lists "
        "(hashes of ordinary generated rows; nothing harmful anywhere)"
    )
    reporter = RichReporter(quiet=quiet)
    res = demo.run_demo(workdir, rows=rows, shards=shards, workers=workers, reporter=reporter, images=images)
    if not render.demo_result(res):
        raise typer.Exit(1)


MAX_WARNINGS = 50  # card warnings printed by 'lineage build'; the rest are counted


@lineage_app.command("build")
def lineage_build_cmd(
    cards: Annotated[
        list[Path],
        typer.Argument(
            metavar="CARDS...",
            help="Card folders (models/, datasets/, one folder per repo) or parquet dumps.",
        ),
    ],
    store: StoreOpt = DEFAULT_STORE,
) -> None:
    """Read model and dataset cards into the store's lineage graph; messy cards warn, never stop it."""
    res = api.lineage_build(cards, store=store)
    err = _stderr()
    warnings = res["warnings"]
    for card, message in warnings[:MAX_WARNINGS]:
        err.print(f"[yellow]warning:[/] {escape(str(card))}: {escape(str(message))}")
    if len(warnings) > MAX_WARNINGS:
        err.print(f"[yellow]warning:[/] ... and {len(warnings) - MAX_WARNINGS:,} more")
    console.print(
        f"lineage graph: {res['cards_read']:,} cards read, {res['nodes']:,} repos ({res['models']:,} models, "
        f"{res['datasets']:,} datasets), {res['edges']:,} edges, {len(warnings):,} warning(s)"
    )


@lineage_app.command("mark")
def lineage_mark_cmd(
    dataset_id: Annotated[
        str, typer.Argument(metavar="DATASET_ID", help="The dataset's repo id, owner/name.")
    ],
    release: Annotated[
        Path | None,
        typer.Option("--release", help="The cleaned release that succeeds it (it must verify)."),
    ] = None,
    status: Annotated[
        str, typer.Option("--status", help="removed (default), withdrawn, gated or renamed.")
    ] = "removed",
    successor: Annotated[
        str | None, typer.Option("--successor", help="Repo id of the successor (required for renamed).")
    ] = None,
    store: StoreOpt = DEFAULT_STORE,
) -> None:
    """Record that a dataset had rows removed (or was withdrawn, gated, renamed) and what succeeds it."""
    res = api.lineage_mark(dataset_id, release=release, status=status, successor=successor, store=store)
    err = _stderr()
    for line in res.warnings:
        err.print(f"[yellow]warning:[/] {escape(line)}")
    got = f"{res.rows_removed:,} rows removed" if res.rows_removed is not None else "no release"
    root = f", successor release {res.merkle_root}" if res.merkle_root else ""
    succ = f", successor {res.successor}" if res.successor else ""
    console.print(
        f"marked {escape(res.dataset)} {res.status} ({got}{root}{succ}); mark {res.history} in its history"
    )


@lineage_app.command("report")
def lineage_report_cmd(
    fmt: Annotated[str, typer.Option("--format", help="text (default), json or html.")] = "text",
    out: Annotated[Path | None, typer.Option("--out", help="Write the report to this file.")] = None,
    store: StoreOpt = DEFAULT_STORE,
) -> None:
    """Every model and dataset downstream of a marked dataset: path, removed rows, cleaned successor."""
    text = api.lineage_report(fmt=fmt, out=out, store=store)
    if out is None:
        sys.stdout.write(text)
    else:
        console.print(f"lineage report: {escape(str(out))}")


@lineage_app.command("notices")
def lineage_notices_cmd(
    out: Annotated[Path, typer.Option("--out", help="New (or empty) folder for the notices.")],
    store: StoreOpt = DEFAULT_STORE,
) -> None:
    """One Markdown notice per affected repo, an index, and the cards pointing at withdrawn datasets."""
    res = api.lineage_notices(out, store=store)
    console.print(
        f"{res['notices']:,} notice(s) in {escape(str(out))} (index {escape(str(res['index']))}); "
        f"{res['pointer_repos']:,} card(s) point at withdrawn, gated or renamed datasets"
    )


@proxy_app.command("export")
@run_options
def proxy_export_cmd(
    dataset: DatasetArg,
    config: RunConfig,
    signals: Annotated[
        str,
        typer.Option(
            "--signals",
            help="Comma-separated SIGNAL[:RECIPE], e.g. url_md5,url_sha1:canonical,image_md5,pdq.",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="New (or empty) folder for the query package.")],
    sign_key: Annotated[
        Path | None, typer.Option("--sign", help="Sign query.json with this key (from 'expunge keygen').")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Holder: write a query package of the dataset's distinct digests (no shard, row, URL or caption)."""
    res = api.proxy_export(dataset, out, signals=signals, opts=config)  # --sign is in config
    if as_json:
        print(json.dumps({"package_id": res.package_id, "out": str(res.out), "counts": res.counts}))
        return
    counts = ", ".join(f"{k} {v:,}" for k, v in res.counts.items())
    signed = " (signed)" if res.signed else ""
    console.print(f"query {res.package_id}{signed} in {escape(str(res.out))}: {counts} distinct digests")


@proxy_app.command("match")
def proxy_match_cmd(
    query: Annotated[Path, typer.Argument(metavar="QUERY", help="The holder's query package.")],
    lists: Annotated[
        list[str], typer.Option("--list", help="Your list, FILE:SIGNAL[:RECIPE] (repeatable); never written.")
    ],
    out: Annotated[Path, typer.Option("--out", help="New (or empty) folder for the answer package.")],
    source: Annotated[
        str, typer.Option("--source", help="Your organisation's label, recorded as the banks' source.")
    ] = "hotline",
    threshold: Annotated[
        int | None, typer.Option("--threshold", help="Hamming threshold for pdq lists (default 31).")
    ] = None,
    sign_key: Annotated[
        Path | None, typer.Option("--sign", help="Sign answer.json with this key (from 'expunge keygen').")
    ] = None,
    pubkey: Annotated[
        Path | None, typer.Option("--pubkey", help="The holder's public key: refuse a query it did not sign.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Hotline: match a query package against your lists; the answer holds only the query's own digests
    that matched."""
    res = api.proxy_match(
        query, out, lists=lists, source=source, threshold=threshold, sign_key=sign_key, pubkey=pubkey
    )
    if as_json:
        print(json.dumps({"answer_id": res.answer_id, "query_id": res.query_id, "matched": res.matched}))
        return
    counts = ", ".join(f"{k} {v:,}" for k, v in res.matched.items())
    signed = " (signed)" if res.signed else ""
    console.print(
        f"answer {res.answer_id}{signed} to query {res.query_id} in {escape(str(res.out))}: {counts}"
    )


@proxy_app.command("import")
def proxy_import_cmd(
    answer: Annotated[Path, typer.Argument(metavar="ANSWER", help="The hotline's answer package.")],
    pubkey: Annotated[
        Path | None,
        typer.Option("--pubkey", help="The hotline's public key: refuse an answer it did not sign."),
    ] = None,
    query: Annotated[
        Path | None, typer.Option("--query", help="Also check the answer against this query package.")
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="Bank name (NAME-SIGNAL-RECIPE for several signals).")
    ] = None,
    store: StoreOpt = DEFAULT_STORE,
    as_json: JsonOpt = False,
) -> None:
    """Holder: check an answer (signature, that it answers this store's query, only its digests) and
    record it as banks; the next clean removes the rows."""
    res = api.proxy_import(answer, pubkey=pubkey, query=query, name=name, store=store)
    if as_json:
        banks = [
            {"name": b.name, "signal": b.signal, "recipe": b.recipe, "count": b.count} for b in res.banks
        ]
        print(json.dumps({"answer_id": res.answer_id, "query_id": res.query_id, "banks": banks}))
        return
    for b in res.banks:
        state = "unchanged at" if b.unchanged else "now"
        console.print(
            f"bank [bold]{escape(b.name)}[/] ({b.signal}/{b.recipe}) {state} version {b.version}: "
            f"{b.count:,} digest(s) from {escape(res.hotline)}, answer {res.answer_id}"
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
