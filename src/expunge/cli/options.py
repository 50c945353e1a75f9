"""Every CLI option, declared once, and the decorator that turns a command's run options into one
:class:`~expunge.config.RunConfig`.

``index``, ``match``, ``clean`` and ``apply`` take the same run options (store, executor, columns, image
settings, progress) from :data:`RUN_OPTIONS`, so they cannot drift apart. A command's own option whose
name is a ``RunConfig`` field (``--cover``, ``--sign``...) lands in the configuration too; the rest are
passed to the command as they are.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from typing import Annotated, Any

import typer

from expunge.config import DEFAULT_EXECUTOR, DEFAULT_STORE, MAX_PIXELS, QUALITY_FLOOR, RunConfig
from expunge.progress import RichReporter

StoreOpt = Annotated[
    str, typer.Option("--store", help="State folder or URL (s3://...): banks, index, findings, runs.")
]
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
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
SummaryJsonOpt = Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")]
DihedralOpt = Annotated[bool, typer.Option("--dihedral", help="Also match rotated/flipped copies (PDQ).")]
QualityOpt = Annotated[
    int, typer.Option("--quality-floor", help="PDQ hashes below this quality are not matched.")
]
PixelsOpt = Annotated[
    int, typer.Option("--max-pixels", help="Larger images are quarantined (decompression bombs).")
]
DatasetArg = Annotated[list[str], typer.Argument(help="Parquet shards: a folder, a glob, or files.")]

# Options that only change what the CLI prints, never what a command does.
RENDERING = frozenset({"quiet", "as_json"})


def _option(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


RUN_OPTIONS: tuple[inspect.Parameter, ...] = (
    _option("store", StoreOpt, DEFAULT_STORE),
    _option("workers", WorkersOpt, None),
    _option("executor", ExecutorOpt, DEFAULT_EXECUTOR),
    _option("address", AddressOpt, None),
    _option("url_column", UrlColOpt, None),
    _option("caption_column", CapColOpt, None),
    _option("key_column", KeyColOpt, None),
    _option("dihedral", DihedralOpt, False),
    _option("quality_floor", QualityOpt, QUALITY_FLOOR),
    _option("max_pixels", PixelsOpt, MAX_PIXELS),
    _option("quiet", QuietOpt, False),
)
CONFIG_FIELDS = frozenset(f.name for f in dataclasses.fields(RunConfig))


def run_options(command: Callable[..., None]) -> Callable[..., None]:
    """Give ``command`` (which takes ``config: RunConfig``) every run option, and build its config.

    Typer reads the signature set here; the command itself never sees the options one by one.
    """
    own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.name != "config"]
    names = {p.name for p in own}
    params = own + [p for p in RUN_OPTIONS if p.name not in names]

    @functools.wraps(command)
    def wrapper(**given: Any) -> None:
        quiet = bool(given.pop("quiet", False) or given.get("as_json", False))
        fields = {k: given.pop(k) for k in list(given) if k in CONFIG_FIELDS}
        command(config=RunConfig(**fields, reporter=RichReporter(quiet=quiet)), **given)

    wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    return wrapper
