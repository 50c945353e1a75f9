"""The Python API. The CLI is a thin skin over these functions; notebooks and pipelines call them too.

Every function takes the dataset as a list of paths/globs and a store folder, and is incremental:
calling ``clean`` twice does the work once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from expunge.config import DEFAULT_STORE, MAX_PIXELS, RunConfig
from expunge.engine import Executor, make_executor
from expunge.errors import ExpungeError, StaleShardError
from expunge.lists.bank import BankInfo, ImportResult, load_info
from expunge.lists.bank import import_list as _import_list
from expunge.pipeline.keep import keep_bank
from expunge.pipeline.run import (
    Dataset,
    Pipeline,
    StageReport,
    bank_infos,
    check_out_location,
    open_dataset,
)
from expunge.progress import Reporter
from expunge.signals import SIGNALS, get_signal
from expunge.store import Store, folder_lock

if TYPE_CHECKING:
    from expunge.proxy.answer import AnswerResult
    from expunge.proxy.importer import AnswerImport
    from expunge.proxy.query import QueryResult
    from expunge.review.export import ExportResult
    from expunge.review.queue import ReviewQueue
    from expunge.review.verdicts import ImportResult as VerdictResult
    from expunge.stages.triage import TriageRun
    from expunge.storage.location import Location


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
        if len(parts) >= 3 and parts[-2] in SIGNALS and parts[-1] in SIGNALS[parts[-2]].recipes:
            recipe, signal, parts = parts[-1], parts[-2], parts[:-2]
        elif len(parts) >= 2 and parts[-1] in SIGNALS:
            signal, parts = parts[-1], parts[:-1]
        elif len(parts) >= 2 and parts[-1] and not Path(text).exists():
            try:
                get_signal(parts[-1])
            except KeyError as exc:  # names a plug-in that failed to load, not just "unknown"
                raise ExpungeError(f"{exc.args[0]} in --list", ":".join(parts[:-1])) from None
        return cls(Path(":".join(parts)), signal, recipe)


Options = RunConfig  # the name callers have used since the first release


@contextlib.contextmanager
def _held_store(spec: str | Path) -> Iterator[Store]:
    """A store by folder or URL. A remote store (``s3://…``) is locked by a conditional write and worked
    on through a local copy, pulled first and pushed after (``storage.mirror``)."""
    from expunge.arrow import without_pandas
    from expunge.storage.location import is_remote

    without_pandas()  # every command that opens a store works on Arrow data: skip pyarrow's pandas probe
    if not is_remote(spec):
        yield Store(spec)
        return
    from expunge.storage.location import parse
    from expunge.storage.mirror import RemoteStore

    with RemoteStore(parse(spec)).held() as local:
        yield Store(local)


class _Session:
    """One command's hold on the store: the lock, the executor and a pipeline built from ``config``."""

    def __init__(self, config: RunConfig) -> None:
        self.config = config
        self._stack = contextlib.ExitStack()

    def dataset(self, dataset: Sequence[str]) -> Dataset:
        return open_dataset(self.store, list(dataset), self.config)

    def __enter__(self) -> _Session:
        with contextlib.ExitStack() as stack:
            self.store = stack.enter_context(_held_store(self.config.store)).ensure()
            stack.enter_context(self.store.lock())
            self.executor: Executor = make_executor(
                self.config.executor, self.config.workers, self.config.address
            )
            stack.callback(self.executor.close)
            self.pipeline = Pipeline(self.store, self.executor, self.config)
            self._stack = stack.pop_all()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.__exit__(*exc)  # type: ignore[arg-type]


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
    negative: bool = False,
) -> ImportResult:
    """Import a list as a new bank version; ``negative``: an allow-list of cleared values (a finding
    whose matched value it holds never removes a row)."""
    with _held_store(store) as s, s.lock():
        args = (name, signal, recipe, source, label, fmt, column, threshold)
        return _import_list(s, Path(path), *args, allow_empty=allow_empty, negative=negative)


def list_banks(store: str | Path = DEFAULT_STORE) -> list[BankInfo]:
    with _held_store(store) as s:
        return [load_info(s, n) for n in s.bank_names()]


def _scope(
    store: Store,
    banks: Sequence[str] | None,
    lists: Sequence[str] = (),
    allow_empty: bool = False,
    reporter: Reporter | None = None,
    negative_lists: Sequence[str] = (),
) -> list[BankInfo]:
    """The banks a run uses: every ``--list`` gets a bank of its own (two files never share one, see
    ``lists.bank.import_list``), plus the named ``banks``. An empty list is refused unless ``allow_empty``."""
    names = list(banks) if banks else []
    for text, negative in [(t, False) for t in lists] + [(t, True) for t in negative_lists]:
        spec = ListSpec.parse(text)
        res = _import_list(
            store,
            spec.path,
            None,
            spec.signal,
            spec.recipe,
            "command line",
            allow_empty=allow_empty,
            negative=negative,
        )
        if res.note and reporter is not None:
            reporter.note(res.note)
        names.append(res.name)
    if not names and not lists and banks is None:
        return bank_infos(store, None)
    infos = bank_infos(store, sorted(set(names)))
    return infos


def index(
    dataset: Sequence[str], *, banks: Sequence[str] | None = None, opts: RunConfig | None = None
) -> StageReport:
    with _Session(opts or RunConfig()) as s:
        ds = s.dataset(dataset)
        report = s.pipeline.index(ds, [b for b in _scope(s.store, banks) if not b.negative])
        s.pipeline.write_ledger("index")
        return report


def match(
    dataset: Sequence[str], *, banks: Sequence[str] | None = None, opts: RunConfig | None = None
) -> dict[str, Any]:
    with _Session(opts or RunConfig()) as s:
        ds = s.dataset(dataset)
        infos = [b for b in _scope(s.store, banks) if not b.negative]
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
    negative_lists: Sequence[str] = (),
    opts: RunConfig | None = None,
) -> dict[str, Any]:
    """Index, match, triage and write the cleaned release to ``out``; returns the summary written
    beside it. ``negative_lists`` (``FILE:SIGNAL``) are allow-lists: cleared values never remove a row."""
    with _Session(opts or RunConfig()) as s:
        ds = s.dataset(dataset)
        remote = _remote_out(out, ds, s.config.store)  # refused before any list is imported
        infos = _scope(s.store, banks, lists, s.config.allow_empty, s.pipeline.reporter, negative_lists)
        if not infos:
            raise ExpungeError(
                "no lists given and no banks in the store (use --list FILE:SIGNAL)", s.store.root
            )
        staged = remote.staged if remote is not None else Path(out)
        target = check_out_location(s.store, ds, staged)
        with folder_lock(target, "the output folder"):
            summary = _stages(s, ds, infos, target, s.config.cover)
            if remote is not None:
                remote.publish(ds, summary)
        where = remote.url.url if remote is not None else str(Path(out).absolute())
        s.pipeline.write_ledger("clean", {"out": where})
        return summary


@dataclass(frozen=True)
class _RemoteOut:
    """A release bound for object storage: written to a local staging folder like any release, then
    published (``release.publish``): each file in one request, untouched remote shards copied
    server-side, the manifest last, stale objects deleted after it."""

    url: Location
    staged: Path

    def publish(self, ds: Dataset, summary: dict[str, Any]) -> None:
        from expunge.release.publish import publish
        from expunge.storage.location import is_remote, parse

        copies: dict[str, Location] = {}
        actions = {str(sh.get("name")): sh.get("action") for sh in summary.get("shards", [])}
        for shard in ds.shards:
            source = shard.location
            # An untouched shard already sits on the same object store: copied there, never sent.
            if actions.get(shard.name) in ("linked", "copied") and is_remote(source):
                src = parse(source)
                if (
                    src.protocol == self.url.protocol
                    and src.path.split("/", 1)[0] == self.url.path.split("/", 1)[0]
                ):
                    copies[shard.name] = src
        publish(
            self.staged,
            self.url,
            copies=copies,
            state_dir=self.staged.parent / (self.staged.name + ".state"),
            refuse_foreign=True,
        )


def _remote_out(out: str | Path, ds: Dataset, store: str | Path | None = None) -> _RemoteOut | None:
    """``--out`` as a URL: where it is staged locally; refused when it overlaps the dataset's or the
    store's prefix (publishing deletes what the release does not hold: a store inside ``--out`` would
    lose its files and its lock, and a release inside the store would be pulled into it)."""
    from expunge.storage.location import is_remote, parse
    from expunge.storage.mirror import local_copy

    if not is_remote(out):
        return None
    url = parse(out)
    dest = url.url.rstrip("/")
    for what, spec in (("dataset", ds.root), ("store", store)):
        if spec is None or not is_remote(spec):
            continue
        root = parse(spec).url.rstrip("/")
        if dest == root or dest.startswith(root + "/") or root.startswith(dest + "/"):
            raise ExpungeError(f"the output must not contain, or lie inside, the {what}", url.redacted())
    return _RemoteOut(url, local_copy(url, "releases") / "release")


def _review_queue(s: _Session, ds: Dataset) -> ReviewQueue:
    from expunge.review.queue import ReviewQueue, queue_path

    return ReviewQueue(queue_path(s.store.review_dir(ds.id)), s.store.key(), ds.id, s.store.tmp)


def _triage_run(s: _Session, ds: Dataset, negatives: list[BankInfo]) -> TriageRun:
    """The policy this clean runs under, with its keyword lists, negative banks and review queue."""
    from expunge.policy.parse import load_policy
    from expunge.stages.triage import TriageRun, load_keywords

    policy = load_policy(s.config.policy)
    keywords = load_keywords(s.config.keywords)
    return TriageRun(policy, keywords, tuple(negatives), _review_queue(s, ds))


def _stages(
    s: _Session, ds: Dataset, infos: list[BankInfo], out: Path, cover: int, *, triage: bool = True
) -> dict[str, Any]:
    """Index, match, triage, clean. A shard found changed behind an unchanged size and mtime is
    forgotten and the stages run once more for it; a second change in the same run is refused.
    Negative banks (allow-lists) are not matched: they cancel the positive banks' findings."""
    positives = [b for b in infos if not b.negative]
    negatives = [b for b in infos if b.negative]
    if not positives:
        raise ExpungeError("only negative banks (allow-lists) were given: nothing to match", s.store.root)
    run = _triage_run(s, ds, negatives) if triage else None
    known = {b.name for b in positives} | ({r.name for r in run.policy.rules} if run is not None else set())
    known.add("hash-lists")  # every hash list together (stages/flood.py)
    for name in s.config.accept_flood:
        if name not in known:
            # A typo would let nothing past the guard, silently; a name that is not there is refused.
            raise ExpungeError(
                f"--accept-flood {name!r} names no bank of this run and no rule of its policy", s.store.root
            )
    if run is not None:  # a policy the dataset cannot serve is refused before any work
        from expunge.stages.triage import check_available

        check_available(ds, run, positives)
    for attempt in (1, 2):
        s.pipeline.index(ds, positives)
        s.pipeline.match(ds, positives)
        if run is not None:
            s.pipeline.triage(ds, positives, run)
        try:
            return s.pipeline.clean(ds, positives, out, cover=cover, triage=run)
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
    lineage_id: str | None = None,
    opts: RunConfig | None = None,
) -> dict[str, Any]:
    """Clean a derivative copy (a subset, a re-shard, another schema) so it follows a cleaned release.

    Without lists, the release is a keep-list (LAION's way): a derivative row stays only if its URL,
    byte for byte, is a URL of the release; every other row is removed as not in the
    release. With lists (or banks), the derivative is matched against them instead. Either way the row
    accounting, containment and resumability of ``clean`` hold. The rows removed are recorded as
    lineage evidence for the derivative (under ``lineage_id``, a repo id, when given).
    """
    from expunge.release import manifest as mf
    from expunge.release.verify import verify_release

    release = Path(release)
    _lineage_id_checked(lineage_id)
    man = mf.load(release / mf.MANIFEST)
    # A release edited after it was published could carry back the rows it removed: follow only one
    # that checks out against its manifest, file by file.
    problems = verify_release(release)
    if problems:
        raise ExpungeError(
            f"the release does not verify ({len(problems)} problem(s); run 'expunge verify' to list them)",
            release,
        )
    with _Session(opts or RunConfig()) as s:
        if lists or banks:
            infos = _scope(s.store, banks, lists, s.config.allow_empty, s.pipeline.reporter)
        else:
            infos = [keep_bank(s.store, s.pipeline, release, man, s.config.url_column)]
        ds = s.dataset(derivative)
        target = check_out_location(s.store, ds, Path(out))
        with folder_lock(target, "the output folder"):
            summary = _stages(s, ds, infos, target, 0, triage=False)
        s.pipeline.write_ledger(
            "apply", {"release": str(release.absolute()), "out": str(Path(out).absolute())}
        )
        _record_apply_evidence(s.store, man, ds.root, Path(out), lineage_id)
        return summary


def review_export(
    dataset: Sequence[str],
    out: str | Path,
    *,
    include_urls: bool = False,
    again: bool = False,
    opts: RunConfig | None = None,
) -> ExportResult:
    """Write a review package for an authorised hotline: candidates by review id, shard, row, rules and
    scores; URLs only with ``include_urls`` (a separate file, mode 0600); never images or captions."""
    from expunge.features.digest import as_binary
    from expunge.review.export import export
    from expunge.review.queue import utc_now
    from expunge.stages.triage import check_export

    with _Session(opts or RunConfig()) as s:
        ds = s.dataset(dataset)
        shards = {sh.name: sh for sh in ds.shards}

        def urls(shard: str, rows: list[int]) -> list[bytes | None]:
            sh = shards.get(shard)
            if sh is None or not sh.metadata or not ds.columns.url:
                return [None] * len(rows)
            return list(sh.handler.values_at(sh, ds.columns.url, sorted(rows), as_binary))

        queue = _review_queue(s, ds)
        check_export(s.store, ds, queue)
        return export(
            queue,
            Path(out),
            utc_now(),
            include_urls=include_urls,
            again=again,
            urls=urls if include_urls else None,
            tmp=s.store.tmp,
        )


def review_import(
    dataset: Sequence[str], verdicts: str | Path, *, by: str | None = None, opts: RunConfig | None = None
) -> VerdictResult:
    """Record a hotline's verdicts: confirmed rows are removed by the next clean and seed the next
    neighbour expansion; rejected ones are published and never queued again."""
    from expunge.review.queue import utc_now
    from expunge.review.verdicts import import_verdicts

    with _Session(opts or RunConfig()) as s:
        ds = s.dataset(dataset)
        return import_verdicts(_review_queue(s, ds), Path(verdicts), utc_now(), by)


def review_forget(
    dataset: Sequence[str], shard: str, *, drop_confirmed: bool = False, opts: RunConfig | None = None
) -> dict[str, int]:
    """Drop one shard's review rows, for a shard whose content changed (it is withheld whole, as
    ``review:stale``, until then). Confirmed verdicts are dropped only with ``drop_confirmed``: the next
    clean no longer removes those rows unless a list or a rule catches them again."""
    with _Session(opts or RunConfig()) as s:
        ds = s.dataset(dataset)
        if shard not in {sh.name for sh in ds.shards}:
            raise ExpungeError(f"no shard {shard!r} in this dataset", ds.root)
        queue = _review_queue(s, ds)
        confirmed = len(queue.rows_by_verdict(shard)["confirmed"])
        if confirmed and not drop_confirmed:
            raise ExpungeError(
                f"shard {shard!r} has {confirmed} confirmed row(s): dropping their verdicts means the next"
                " clean no longer removes them unless a list or rule does (pass --drop-confirmed)",
                ds.root,
            )
        return queue.forget_shard(shard)


def review_status(dataset: Sequence[str], *, opts: RunConfig | None = None) -> dict[str, int]:
    """How many candidates are queued, exported and decided (by verdict)."""
    with _Session(opts or RunConfig()) as s:
        return _review_queue(s, s.dataset(dataset)).counts()


def bank(name: str, store: str | Path = DEFAULT_STORE) -> BankInfo:
    """One bank's provenance and version history (``lists diff``); never its values."""
    found = next((b for b in list_banks(store) if b.name == name), None)
    if found is None:
        raise ExpungeError(f"no bank named {name!r}", Path(store))
    return found


def verify(
    release: str | Path,
    *,
    manifest: str | Path | None = None,
    pubkey: Path | None = None,
    lists: Sequence[str] = (),
    workers: int | None = None,
    min_sequence: int | None = None,
    previous: Path | None = None,
) -> list[str]:
    """Every way ``release`` differs from what its manifest vouches for, one line each (empty: it
    checks out). With ``lists``, a release that checks out is also matched afresh: no row may match.
    ``release`` (and ``manifest``) may be URLs: a remote release is checked in place."""
    from expunge.release.verify import verify_release
    from expunge.storage.location import Location, is_remote, parse

    remote = is_remote(release) or (manifest is not None and is_remote(manifest))
    target: Path | Location = parse(release) if remote else Path(release)
    problems = verify_release(target, manifest, pubkey, min_sequence=min_sequence, previous=previous)
    if lists and not problems:
        import tempfile

        from expunge.release import manifest as mf

        if isinstance(target, Location):
            from expunge.release.verify_remote import load_manifest

            man = load_manifest(parse(manifest) if manifest is not None else target.join(mf.MANIFEST))[0]
            specs = [(target if s["name"] == "." else target.join(s["name"])).url for s in man["shards"]]
        else:
            man = mf.load(Path(manifest) if manifest is not None else target / mf.MANIFEST)
            specs = [str(target / s["name"]) for s in man.get("shards", [])]
        with tempfile.TemporaryDirectory(prefix="expunge-verify-") as tmp:
            config = RunConfig(store=Path(tmp) / "store", workers=workers)
            found_rows = clean(specs, Path(tmp) / "out", lists=list(lists), opts=config)
        for name, n in sorted(found_rows["removed_by_bank"].items()):
            problems.append(f"{target}: {n} rows still match bank {name}")
    return problems


def diff_release(old: str | Path, new: str | Path) -> dict[str, Any]:
    """The shards to fetch again between two releases (folders or their manifests): ``changed``
    (SHA-256 differs), ``added``, ``removed``, each sorted, and how many are ``unchanged``."""
    from expunge.release import manifest as mf

    def shards(p: Path) -> dict[str, str]:
        m = mf.load(p / mf.MANIFEST if p.is_dir() else p)
        return {s["name"]: s["sha256"] for s in m["shards"]}

    a, b = shards(Path(old)), shards(Path(new))
    return {
        "changed": sorted(n for n in a.keys() & b.keys() if a[n] != b[n]),
        "added": sorted(b.keys() - a.keys()),
        "removed": sorted(a.keys() - b.keys()),
        "unchanged": len([n for n in a.keys() & b.keys() if a[n] == b[n]]),
    }


IMAGE_SIGNALS = ("pdq", "image_md5", "image_sha1", "image_sha256")


@dataclass(frozen=True)
class HashedImage:
    """One image's list lines (threatexchange format) and the signals it could not give."""

    path: Path
    lines: list[str]
    failures: list[str]  # one line each, naming the file; never image content


def hash_files(
    files: Sequence[str | Path],
    *,
    signals: Sequence[str] | None = None,
    dihedral: bool = False,
    max_pixels: int = MAX_PIXELS,
) -> Iterator[HashedImage]:
    """Hash image files into lines ``lists import`` reads (``pdq HEX QUALITY``, ``image_md5 HEX``).

    One file at a time, in order, so a caller can print as it goes; an unreadable file stops the run
    with an ExpungeError after the files before it.
    """
    from expunge.features.images import hash_image, pdq_to_hex

    wanted = list(signals or ["pdq", "image_md5"])
    for name in wanted:
        if name not in IMAGE_SIGNALS:
            raise ExpungeError(f"unknown image signal {name!r} ({', '.join(IMAGE_SIGNALS)})")
    for path in map(Path, files):
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ExpungeError(f"cannot read image ({exc.strerror})", path) from None
        h = hash_image(data, max_pixels=max_pixels, dihedral=dihedral)
        lines: list[str] = []
        failures: list[str] = []
        for name in wanted:
            if name == "pdq":
                if h.pdq is None:
                    failures.append(f"{path}: no PDQ ({h.error})")
                    continue
                lines.append(f"pdq {pdq_to_hex(h.pdq)} {h.quality}")
                lines.extend(f"pdq {pdq_to_hex(extra)} {h.quality}" for extra in h.dihedral)
            else:
                digest = {"image_md5": h.md5, "image_sha1": h.sha1, "image_sha256": h.sha256}[name]
                lines.append(f"{name} {digest.hex()}")
        yield HashedImage(path, lines, failures)


def report(release: str | Path, *, store: Path | None = None, out: Path | None = None) -> Path:
    """Write a report of ``release`` with bank history and stage timings (counts only, no flagged
    content) beside the release, never into it: the release's own files are all in its manifest."""
    from expunge.release.report import write_report

    release = Path(release)
    if not (release / "summary.json").is_file():
        raise ExpungeError("not a release folder (no summary.json)", release)
    target = out or release.parent / f"{release.resolve().name}.report.html"
    if release.resolve() in target.resolve().parents:
        raise ExpungeError("write the report outside the release (its manifest lists every file)", target)
    return write_report(release, store, path=target)


def keygen(prefix: str | Path) -> tuple[Path, Path]:
    """Make an Ed25519 key pair for signing release manifests: ``PREFIX.key`` (secret, 0600) and
    ``PREFIX.pub`` (minisign's format); an existing file is never overwritten."""
    from expunge.release.sign import keygen as _keygen

    return _keygen(Path(prefix))


# ---- lineage: what descends from data with removed rows (issue 11) ------------------------------


def _lineage_graph_dir(s: Store) -> Path:
    return s.lineage_dir() / "graph"


def lineage_build(cards: Sequence[str | Path], *, store: str | Path = DEFAULT_STORE) -> dict[str, Any]:
    """Read model and dataset cards (folders or a parquet dump) into the store's lineage graph.

    Returns counts and every card warning (card, message): messy cards warn, they never stop the build."""
    from expunge.lineage.cards import read_sources
    from expunge.lineage.graph import LineageGraph

    with _held_store(store) as s, s.lock():
        found = read_sources([Path(c) for c in cards])
        graph = LineageGraph.from_cards(found)
        graph.save(_lineage_graph_dir(s), s.tmp)
    kinds = [n.kind for n in found.nodes.values()]
    return {
        "cards_read": found.cards_read,
        "nodes": len(found.nodes),
        "models": kinds.count("model"),
        "datasets": kinds.count("dataset"),
        "edges": len(found.edges),
        "warnings": [(w.card, w.message) for w in graph.warnings],
    }


def _lineage_load_graph(s: Store) -> Any:
    from expunge.lineage.graph import LineageGraph

    folder = _lineage_graph_dir(s)
    if not folder.is_dir():
        raise ExpungeError(
            "no lineage graph in the store: run 'expunge lineage build CARDS...' first", folder
        )
    return LineageGraph.load(folder)


@dataclass(frozen=True)
class LineageMarkResult:
    dataset: str
    status: str
    successor: str | None
    merkle_root: str | None
    rows_removed: int | None
    history: int  # marks recorded for this dataset, this one included
    warnings: list[str]


def lineage_mark(
    dataset_id: str,
    *,
    release: str | Path | None = None,
    status: str = "removed",
    successor: str | None = None,
    store: str | Path = DEFAULT_STORE,
) -> LineageMarkResult:
    """Record that a dataset had rows removed (or was withdrawn, gated, renamed), with the cleaned
    release as its successor. A release that does not verify is refused; marks are kept as a history."""
    from expunge.lineage import marks as lm
    from expunge.lineage.cards import canonical_id

    if status not in lm.STATUSES:
        raise ExpungeError(f"unknown status {status!r} ({', '.join(lm.STATUSES)})")
    canonical = canonical_id(dataset_id)
    if canonical is None:
        raise ExpungeError("not a repo id (expected owner/name)", Path(dataset_id))
    succ = None
    if successor is not None:
        succ = canonical_id(successor)
        if succ is None:
            raise ExpungeError("the successor is not a repo id (expected owner/name)", Path(successor))
    if status == "renamed" and succ is None:
        raise ExpungeError("a renamed dataset needs --successor (its new id)", Path(dataset_id))
    ref = lm.release_ref(Path(release)) if release is not None else None
    warnings: list[str] = []
    with _held_store(store) as s:
        folder = _lineage_graph_dir(s)
        resolved = None
        if folder.is_dir():
            graph = _lineage_load_graph(s)
            resolved = graph.resolve(dataset_id) or (canonical if graph.node(canonical) else None)
        if resolved is None:
            warnings.append(f"{canonical}: not in the lineage graph; build it first or check the id")
        dataset = resolved or canonical
        if status == "removed" and ref is None:
            warnings.append(
                f"{dataset}: marked without --release: no removed-row count and no cleaned successor"
            )
        if ref is not None and ref.rows_removed == 0:
            warnings.append(f"{dataset}: the release given removed no rows")
        mark = lm.Mark(dataset, status, lm.utc_now(), ref, succ)
        with s.lock():
            current = lm.load(s.lineage_dir())
            lm.add_mark(current, mark)
            lm.save(s.lineage_dir(), current, s.tmp)
    return LineageMarkResult(
        dataset,
        status,
        succ,
        ref.merkle_root if ref else None,
        ref.rows_removed if ref else None,
        len(current.history[dataset]),
        warnings,
    )


def lineage_report(
    *, fmt: str = "text", out: str | Path | None = None, store: str | Path = DEFAULT_STORE
) -> str:
    """Every model and dataset downstream of a marked dataset, with its path, the nearest marked
    ancestor's removed-row count and the cleaned successor; rendered as text, json or html (written to
    ``out`` atomically when given). Returns the rendering."""
    from expunge import atomic
    from expunge.lineage import marks as lm
    from expunge.lineage.report import FORMATS, build_report, render

    if fmt not in FORMATS:
        raise ExpungeError(f"unknown report format {fmt!r} ({', '.join(FORMATS)})")
    with _held_store(store) as s:
        report = build_report(_lineage_load_graph(s), lm.load(s.lineage_dir()))
    text = render(report, fmt)
    if out is not None:
        atomic.write_bytes(Path(out), text.encode("utf-8"))
    return text


def lineage_notices(out: str | Path, *, store: str | Path = DEFAULT_STORE) -> dict[str, Any]:
    """One Markdown notice per affected repo in ``out`` (new or empty), an index, and the repos whose
    cards point at withdrawn, gated or renamed datasets."""
    from expunge.lineage import marks as lm
    from expunge.lineage.notices import INDEX, POINTERS, write_notices
    from expunge.lineage.report import build_report

    with _held_store(store) as s:
        report = build_report(_lineage_load_graph(s), lm.load(s.lineage_dir()))
    written = write_notices(report, Path(out))
    return {
        "notices": len(written),
        "index": Path(out) / INDEX,
        "pointers": Path(out) / POINTERS,
        "pointer_repos": len(report.pointers),
    }


def _lineage_id_checked(lineage_id: str | None) -> str | None:
    """``apply --lineage-id``: a repo id, refused before any work when it is not one."""
    if lineage_id is None:
        return None
    from expunge.lineage.cards import canonical_id

    lid = canonical_id(lineage_id)
    if lid is None:
        raise ExpungeError("--lineage-id is not a repo id (expected owner/name)", Path(lineage_id))
    return lid


def _record_apply_evidence(
    s: Store, man: dict[str, Any], root: str, out: Path, lineage_id: str | None
) -> None:
    """After an apply: how many rows the derivative still held that the release removed, by the roots of
    the release followed and of the cleaned derivative, so the derivative is marked from evidence."""
    from expunge.lineage import marks as lm
    from expunge.release import manifest as mf

    result = lm.manifest_ref(mf.load(out / mf.MANIFEST), out / mf.MANIFEST)
    lid = _lineage_id_checked(lineage_id)
    key = lid or str(Path(root).absolute())
    check = lm.Evidence(key, lid, lm.utc_now(), str(man.get("merkle_root", "")), result)
    current = lm.load(s.lineage_dir())
    lm.add_evidence(current, check)
    lm.save(s.lineage_dir(), current, s.tmp)


# ---- match by proxy: lists the holder never sees (issue 14) -------------------------------------


def _inside(path: Path, folder: Path) -> bool:
    """``path`` is ``folder`` or lies inside it, symlinks resolved."""
    p, f = path.resolve(), folder.resolve()
    return p == f or f in p.parents


def proxy_export(
    dataset: Sequence[str], out: str | Path, *, signals: str, opts: RunConfig | None = None
) -> QueryResult:
    """Write a query package for a hotline: the dataset's distinct digests for ``signals``
    (``url_md5,url_sha1:canonical,image_md5,pdq``), in byte order, with no shard, row, URL or caption;
    signed with ``opts.sign_key`` when given. The store keeps a copy to check the answer against."""
    from expunge.lists.bank import BankInfo as _Info
    from expunge.proxy.package import parse_signals
    from expunge.proxy.query import export_query

    parts = parse_signals(signals)
    config = opts or RunConfig()
    with _Session(config) as s:
        ds = s.dataset(dataset)
        if _inside(Path(out), Path(ds.root)):
            # The package would become part of the dataset it describes (and stop the next index).
            raise ExpungeError("--out lies inside the dataset: write the query package elsewhere", Path(out))
        wanted = [_Info(p.key, p.signal, p.recipe, "proxy", p.feature, p.width) for p in parts]
        s.pipeline.index(ds, wanted)
        res = export_query(
            s.store, ds, parts, Path(out), quality_floor=config.quality_floor, sign_key=config.sign_key
        )
        s.pipeline.write_ledger("proxy-export", {"package_id": res.package_id, "counts": res.counts})
        return res


def proxy_match(
    query: str | Path,
    out: str | Path,
    *,
    lists: Sequence[str],
    source: str = "hotline",
    threshold: int | None = None,
    sign_key: Path | None = None,
    pubkey: Path | None = None,
) -> AnswerResult:
    """The hotline's side: match a query package against ``lists`` (``FILE:SIGNAL[:RECIPE]``, read into
    memory, never written) and write an answer holding only the query's own digests that matched. With
    ``pubkey`` the query must carry a valid signature by that key."""
    from expunge.proxy.answer import HotlineList, match

    if _inside(Path(out), Path(query)):
        raise ExpungeError("--out lies inside the query package: write the answer elsewhere", Path(out))
    specs = [ListSpec.parse(t) for t in lists]
    hotline = [HotlineList(sp.path, sp.signal, sp.recipe) for sp in specs]
    return match(
        Path(query), hotline, Path(out), source=source, threshold=threshold, sign_key=sign_key, pubkey=pubkey
    )


def proxy_import(
    answer: str | Path,
    *,
    pubkey: Path | None = None,
    query: Path | None = None,
    name: str | None = None,
    store: str | Path = DEFAULT_STORE,
) -> AnswerImport:
    """Check a hotline's answer whole (signature with ``pubkey``, that it answers a query this store
    exported, that it names only digests of that query) and record it as banks the next clean uses."""
    from expunge.proxy.importer import import_answer

    with _held_store(store) as s, s.lock():
        return import_answer(s, Path(answer), pubkey=pubkey, query=query, name=name)
