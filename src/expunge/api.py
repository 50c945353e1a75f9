"""The Python API. The CLI is a thin skin over these functions; notebooks and pipelines call them too.

Every function takes the dataset as a list of paths/globs and a store folder, and is incremental:
calling ``clean`` twice does the work once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from expunge.engine import Executor, make_executor
from expunge.errors import ExpungeError, StaleShardError
from expunge.lists.bank import BankInfo, ImportResult, load_info
from expunge.lists.bank import import_list as _import_list
from expunge.pipeline.run import (
    Dataset,
    Pipeline,
    StageReport,
    bank_infos,
    check_out_location,
    open_dataset,
)
from expunge.progress import NullReporter, Reporter
from expunge.signals import RECIPES, SIGNALS
from expunge.store import Store, folder_lock

DEFAULT_STORE = ".expunge"


@dataclass(frozen=True)
class ListSpec:
    """``FILE:SIGNAL[:RECIPE]`` as given to ``clean --list``."""

    path: Path
    signal: str | None
    recipe: str | None

    @classmethod
    def parse(cls, text: str) -> ListSpec:
        parts = text.split(":")
        recipe = signal = None
        if len(parts) >= 3 and parts[-1] in RECIPES and parts[-2] in SIGNALS:
            recipe, signal, parts = parts[-1], parts[-2], parts[:-2]
        elif len(parts) >= 2 and parts[-1] in SIGNALS:
            signal, parts = parts[-1], parts[:-1]
        elif len(parts) >= 2 and parts[-1] and not Path(text).exists():
            raise ExpungeError(
                f"unknown signal type {parts[-1]!r} in --list (known: {', '.join(SIGNALS)})",
                ":".join(parts[:-1]),
            )
        return cls(Path(":".join(parts)), signal, recipe)


@dataclass
class Options:
    """What every stage needs besides the dataset: where state lives and what runs the tasks."""

    store: str | Path = DEFAULT_STORE
    executor: str = "local"
    address: str | None = None  # Ray cluster address (or RAY_ADDRESS); the local executor ignores it
    workers: int | None = None
    url_column: str | None = None
    caption_column: str | None = None
    key_column: str | None = None
    reporter: Reporter | None = None
    dihedral: bool = False  # also index and match the 7 other orientations of every image (PDQ)
    quality_floor: int = 50  # PDQ hashes below this quality are counted, never matched
    max_pixels: int = 178_956_970  # larger images are quarantined as decompression bombs
    sign_key: Path | None = None  # sign the release manifest (minisign format) with this key
    cover: int = 0  # hide each flagged row among at least this many removed rows (release.cover)
    publish_records: bool = False  # put removed.parquet in the release: it names every removed row
    previous_manifest: Path | None = None  # the release this one follows, when OUT does not hold it


class _Session:
    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.store = Store(opts.store).ensure()
        self.executor: Executor = make_executor(opts.executor, opts.workers, opts.address)
        self.pipeline = Pipeline(self.store, self.executor, opts.reporter or NullReporter())
        self.pipeline.quality_floor = opts.quality_floor
        self.pipeline.sign_key = Path(opts.sign_key) if opts.sign_key else None
        self.pipeline.publish_records = opts.publish_records
        self.pipeline.previous_manifest = Path(opts.previous_manifest) if opts.previous_manifest else None
        self._lock = self.store.lock()

    def dataset(self, dataset: Sequence[str]) -> Dataset:
        o = self.opts
        ds = open_dataset(self.store, list(dataset), o.url_column, o.caption_column, o.key_column)
        ds.dihedral = o.dihedral
        ds.max_pixels = o.max_pixels
        return ds

    def __enter__(self) -> _Session:
        self._lock.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.executor.close()
        finally:
            self._lock.__exit__(None, None, None)


def import_list(
    path: str | Path,
    *,
    store: str | Path = DEFAULT_STORE,
    name: str | None = None,
    signal: str | None = None,
    recipe: str | None = None,
    source: str | None = None,
    label: str | None = None,
    fmt: str = "auto",
    column: str | None = None,
    threshold: int | None = None,
    allow_empty: bool = False,
) -> ImportResult:
    s = Store(store)
    with s.lock():
        args = (name, signal, recipe, source, label, fmt, column, threshold)
        return _import_list(s, Path(path), *args, allow_empty=allow_empty)


def list_banks(store: str | Path = DEFAULT_STORE) -> list[BankInfo]:
    s = Store(store)
    return [load_info(s, n) for n in s.bank_names()]


def _scope(
    store: Store,
    banks: Sequence[str] | None,
    lists: Sequence[str] = (),
    allow_empty: bool = False,
    reporter: Reporter | None = None,
) -> list[BankInfo]:
    """The banks a run uses: every ``--list`` gets a bank of its own (two files never share one, see
    ``lists.bank.import_list``), plus the named ``banks``. An empty list is refused unless ``allow_empty``."""
    names = list(banks) if banks else []
    for text in lists:
        spec = ListSpec.parse(text)
        res = _import_list(
            store, spec.path, None, spec.signal, spec.recipe, "command line", allow_empty=allow_empty
        )
        if res.note and reporter is not None:
            reporter.note(res.note)
        names.append(res.name)
    if not names and not lists and banks is None:
        return bank_infos(store, None)
    infos = bank_infos(store, sorted(set(names)))
    return infos


def index(
    dataset: Sequence[str], *, banks: Sequence[str] | None = None, opts: Options | None = None
) -> StageReport:
    with _Session(opts or Options()) as s:
        ds = s.dataset(dataset)
        report = s.pipeline.index(ds, _scope(s.store, banks))
        s.pipeline.write_ledger("index")
        return report


def match(
    dataset: Sequence[str], *, banks: Sequence[str] | None = None, opts: Options | None = None
) -> dict[str, Any]:
    with _Session(opts or Options()) as s:
        ds = s.dataset(dataset)
        infos = _scope(s.store, banks)
        if not infos:
            raise ExpungeError(
                "no banks in the store: import a list first ('expunge lists import')", s.store.root
            )
        s.pipeline.index(ds, infos)
        report = s.pipeline.match(ds, infos)
        per_bank = s.pipeline.findings_summary(ds, infos)
        s.pipeline.write_ledger("match")
        return {"stage": report, "rows_matched_by_bank": per_bank, "banks": [b.public() for b in infos]}


def clean(
    dataset: Sequence[str],
    out: str | Path,
    *,
    lists: Sequence[str] = (),
    banks: Sequence[str] | None = None,
    opts: Options | None = None,
    allow_empty: bool = False,
) -> dict[str, Any]:
    """Index, match and write the cleaned release to ``out``; returns the summary written beside it."""
    with _Session(opts or Options()) as s:
        ds = s.dataset(dataset)
        infos = _scope(s.store, banks, lists, allow_empty, s.pipeline.reporter)
        if not infos:
            raise ExpungeError(
                "no lists given and no banks in the store (use --list FILE:SIGNAL)", s.store.root
            )
        target = check_out_location(s.store, ds, Path(out))
        with folder_lock(target, "the output folder"):
            summary = _stages(s, ds, infos, target, s.opts.cover)
        s.pipeline.write_ledger("clean", {"out": str(Path(out).absolute())})
        return summary


def _stages(s: _Session, ds: Dataset, infos: list[BankInfo], out: Path, cover: int) -> dict[str, Any]:
    """Index, match, clean. A shard found changed behind an unchanged size and mtime is forgotten and
    the stages run once more for it; a second change in the same run is refused."""
    for attempt in (1, 2):
        s.pipeline.index(ds, infos)
        s.pipeline.match(ds, infos)
        try:
            return s.pipeline.clean(ds, infos, out, cover=cover)
        except StaleShardError as exc:
            if attempt == 2:
                raise
            s.pipeline.forget(ds, exc.shard)
    raise AssertionError("unreachable")


def apply(
    release: str | Path,
    derivative: Sequence[str],
    out: str | Path,
    *,
    lists: Sequence[str] = (),
    banks: Sequence[str] | None = None,
    opts: Options | None = None,
    allow_empty: bool = False,
) -> dict[str, Any]:
    """Clean a derivative copy (a subset, a re-shard, another schema) so it follows a cleaned release.

    Without lists, the release is a keep-list (LAION's way): a derivative row stays only if its URL,
    byte for byte, is a URL of the release; every other row is removed as not in the
    release. With lists (or banks), the derivative is matched against them instead. Either way the row
    accounting, containment and resumability of ``clean`` hold.
    """
    from expunge.release import manifest as mf
    from expunge.release.verify import verify_release

    release = Path(release)
    man = mf.load(release / mf.MANIFEST)
    # A release edited after it was published could carry back the rows it removed: follow only one
    # that checks out against its manifest, file by file.
    problems = verify_release(release)
    if problems:
        raise ExpungeError(
            f"the release does not verify ({len(problems)} problem(s); run 'expunge verify' to list them)",
            release,
        )
    with _Session(opts or Options()) as s:
        if lists or banks:
            infos = _scope(s.store, banks, lists, allow_empty, s.pipeline.reporter)
        else:
            infos = [_keep_bank(s, release, man)]
        ds = s.dataset(derivative)
        target = check_out_location(s.store, ds, Path(out))
        with folder_lock(target, "the output folder"):
            summary = _stages(s, ds, infos, target, 0)
        s.pipeline.write_ledger(
            "apply", {"release": str(release.absolute()), "out": str(Path(out).absolute())}
        )
        return summary


def _keep_bank(s: _Session, release: Path, man: dict[str, Any]) -> BankInfo:
    """A bank of the release's exact-URL digests, built from an index of the release itself."""
    import tempfile

    import numpy as np

    from expunge.index.build import read_feature
    from expunge.lists.bank import sorted_unique
    from expunge.matchers.exact import fixed_to_numpy

    feature = "url:raw:sha256"
    probe = BankInfo("release-keep", "release_keep", "raw", "release", feature, 32)
    shards = [str(release / sh["name"]) for sh in man["shards"]]
    rel = open_dataset(s.store, shards, s.opts.url_column, None, None)
    s.pipeline.index(rel, [probe])
    parts = []
    for shard in rel.shards:
        column = read_feature(s.pipeline._index_dir(rel, shard.name), feature)
        values, valid = fixed_to_numpy(column, 32)
        parts.append(values[valid])
    values = sorted_unique(np.concatenate(parts)) if parts else np.empty(0, dtype="S32")
    name = f"release-{man['merkle_root'][:12]}"
    with tempfile.TemporaryDirectory(prefix="expunge-keep-", dir=s.store.tmp) as tmp:
        listing = Path(tmp) / f"{name}.txt"
        # One hex line per digest, built in C: a release has as many digests as rows.
        hexed = np.frombuffer(np.ascontiguousarray(values).tobytes().hex().encode(), dtype=np.uint8)
        newline = np.full((len(values), 1), ord("\n"), np.uint8)
        lines = np.concatenate([hexed.reshape(len(values), 64), newline], axis=1)
        listing.write_bytes(lines.tobytes())
        _import_list(
            s.store,
            listing,
            name,
            "release_keep",
            "raw",
            f"release {man['merkle_root']}",
            "release",
            allow_empty=True,  # an empty release keeps nothing: the safe direction
        )
    return load_info(s.store, name)
