"""Banks: versioned, binary, sorted sets of values of one signal type, with their provenance.

Re-importing a newer file of the same bank makes a new version and records which values were added
and removed, so matching can be incremental (only the added values are matched against a stored index).

``bank.json`` is the single commit point of an import. Every other file of a version is named by its
version (``values-vNNNN.parquet``, ``deltas/vNNNN.added.parquet``, ``deltas/vNNNN.removed.parquet``)
and written before ``bank.json`` is atomically replaced, and readers only follow ``bank.json``: a crash
at any point leaves the previous version whole, and the rerun writes the new version afresh.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from expunge import atomic
from expunge.arrow import read_parquet
from expunge.errors import ExpungeError
from expunge.lists.readers import detect_format, read_tokens
from expunge.matchers.exact import SortedSet, prefix64
from expunge.signals import SIGNALS, get_signal
from expunge.store import BANK_FILE, LEGACY_VALUES, Store


@dataclass
class BankInfo:
    name: str
    signal: str
    recipe: str
    source: str
    feature: str
    width: int
    versions: list[dict[str, Any]] = field(default_factory=list)
    threshold: int | None = None  # Hamming distance for perceptual banks (PDQ); None for exact banks
    origin: str | None = None  # absolute path of the file the current version came from (None: older stores)
    # "positive": findings remove rows. "negative": an allow-list of values a hotline or the maintainer
    # cleared (a placeholder image, say): a finding whose matched value is in it never removes a row.
    role: str = "positive"

    @property
    def negative(self) -> bool:
        return self.role == "negative"

    @property
    def version(self) -> int:
        return int(self.versions[-1]["version"]) if self.versions else 0

    @property
    def count(self) -> int:
        return int(self.versions[-1]["count"]) if self.versions else 0

    def public(self) -> dict[str, Any]:
        """What may be published about a bank (manifests, summaries): never the values."""
        last = self.versions[-1] if self.versions else {}
        return {
            "name": self.name,
            "signal": self.signal,
            "recipe": self.recipe,
            "source": self.source,
            "version": self.version,
            "label": last.get("label"),
            "count": self.count,
            "file_sha256": last.get("file_sha256"),
            "threshold": self.threshold,
            **({"role": self.role} if self.negative else {}),
        }


BANK_JSON = BANK_FILE
_DELTA = re.compile(r"^v(\d+)\.(added|removed)\.parquet$")


def load_info(store: Store, name: str) -> BankInfo:
    path = store.bank_file(name)
    if not path.is_file():
        raise ExpungeError(f"no bank named {name!r} in the store (see 'expunge lists ls')", store.root)
    data = atomic.read_json(path)
    return BankInfo(**data)


def _save_info(store: Store, info: BankInfo) -> None:
    atomic.write_json(store.bank_file(info.name), info.__dict__, store.tmp)


def _values_file(bank_dir: Path, entry: dict[str, Any]) -> Path:
    return bank_dir / str(entry.get("values_file", LEGACY_VALUES))


def values_path(bank_dir: Path, version: int) -> Path:
    """The values file of a committed version, as ``bank.json`` names it: never a file written by an
    import that died before its commit."""
    data = atomic.read_json(bank_dir / BANK_JSON)
    for entry in data.get("versions", []):
        if int(entry["version"]) == version:
            return _values_file(bank_dir, entry)
    raise ExpungeError(f"bank version {version} is not in bank.json", bank_dir)


def _file_sha256(path: Path) -> str:
    return _file_sha256s(path, None)[0]


def _file_sha256s(path: Path, prefix: int | None) -> tuple[str, str | None, int]:
    """SHA-256 of the whole file and, in the same pass, of its first ``prefix`` bytes (None: not asked,
    or the file is not longer), and the number of bytes read."""
    h = hashlib.sha256()
    head: str | None = None
    done = 0
    with open(path, "rb") as fh:
        while block := fh.read(1 << 22):
            if prefix is not None and done < prefix <= done + len(block):
                h.update(block[: prefix - done])
                if done + len(block) > prefix:
                    head = h.copy().hexdigest()
                h.update(block[prefix - done :])
            else:
                h.update(block)
            done += len(block)
    return h.hexdigest(), head, done


@dataclass(frozen=True)
class _Tail:
    """The part of a list file beyond the bytes its bank's last version was read from."""

    start: int  # byte offset of the first new line
    first_line: int  # its line number


def _appended(path: Path, last: dict[str, Any], fmt: str, prefix_sha: str | None) -> _Tail | None:
    """The file is the last version's file with lines appended (a hotline's daily file often is): only
    the new lines need parsing. Plain and threatexchange files only (a CSV's header rules the rows)."""
    size = last.get("bytes")
    if not isinstance(size, int) or prefix_sha is None or last.get("file_sha256") != prefix_sha:
        return None
    if last.get("format") not in ("plain", "pytx") or last.get("format") != fmt:
        return None
    with open(path, "rb") as fh:
        head = fh.read(size)
    if not head.endswith(b"\n"):
        return None  # the old last line may continue in the new bytes
    return _Tail(size, head.count(b"\n") + 1)


def _in_sorted(values: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Which ``query`` values are in the sorted ``values``: one binary search each, no lookup table (a
    daily delta against a million-value bank; building the table would cost more than the search)."""
    pos = np.searchsorted(values, query)
    pos[pos == len(values)] = 0
    found: np.ndarray = values[pos] == query
    return found


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """Sort and de-duplicate fixed-width byte strings (numpy's hash-based ``unique`` is 6x slower here).

    Sorting the byte strings themselves compares them byte by byte (0.14 s for a million MD5s); their
    first 8 bytes as integers sort with numpy's SIMD quicksort in a quarter of that, and only values
    whose prefix repeats (duplicates, mostly) need their full bytes sorted, among themselves.
    """
    width = values.dtype.itemsize
    if values.dtype.kind != "S" or width < 8 or len(values) < 2:
        out = np.sort(values)
    else:
        prefix = prefix64(values, width)
        order = np.argsort(prefix)
        out, ranked = values[order], prefix[order]
        tie = ranked[1:] == ranked[:-1]
        if not tie.any():
            return out  # distinct prefixes: distinct values
        in_run = np.zeros(len(out), dtype=bool)
        in_run[1:] = tie
        in_run[:-1] |= tie
        # The full order refines the prefix order, so the runs sorted together stay in their places.
        out[in_run] = np.sort(out[in_run])
    if len(out) > 1:
        out = out[np.concatenate(([True], out[1:] != out[:-1]))]
    return out


def _write_values(path: Path, values: np.ndarray, width: int, store: Store) -> None:
    buf = pa.py_buffer(values.tobytes()) if len(values) else pa.py_buffer(b"")
    arr = pa.Array.from_buffers(pa.binary(width), len(values), [None, buf])
    with atomic.atomic_path(path, store.tmp) as tmp:
        pq.write_table(pa.table({"value": arr}), tmp, compression="none", row_group_size=1 << 20)


def read_values(path: Path, width: int) -> np.ndarray:
    """Values as a sorted numpy ``S{width}`` array (exact bytes; zero-copy from the Arrow buffer)."""
    col = read_parquet(path, columns=["value"]).column(0).combine_chunks()
    if len(col) == 0:
        return np.empty(0, dtype=f"S{width}")
    buf = col.buffers()[1]
    return np.frombuffer(buf, dtype=f"S{width}", count=len(col), offset=col.offset * width)


@dataclass(frozen=True)
class ImportResult:
    name: str
    version: int
    count: int
    added: int
    removed: int
    unchanged: bool
    note: str | None = None  # one line for the user: a derived name that was disambiguated, a re-pointed bank


# ---------------------------------------------------------------------------------------------------
# Bank names. A bank's folder name folds case (on some file systems) and characters outside
# [A-Za-z0-9._-] (always) and keeps 60 characters: two names can share one folder. A name derived from
# a file's stem is therefore checked against the file the folder's bank came from, and a different
# file gets its own bank, named deterministically from its absolute path.


def _origin(path: Path) -> str:
    return str(path.resolve())


def _occupant(store: Store, name: str) -> BankInfo | None:
    """The bank whose folder ``name`` would use, also when it differs only by case."""
    want = store.bank_dir(name).name
    names = store.bank_names()
    hit = want if want in names else next((n for n in names if n.lower() == want.lower()), None)
    return load_info(store, hit) if hit is not None else None


def _derived_name(store: Store, path: Path, origin: str) -> tuple[str, str | None]:
    """The bank a list file without ``--name`` goes to, and a note when it is not its bare stem."""
    stem = path.stem or "list"
    occ = _occupant(store, stem)
    if occ is None or occ.origin == origin:
        return (occ.name if occ is not None else stem), None
    alt = f"{store.bank_dir(stem).name[:40]}-{hashlib.sha256(origin.encode()).hexdigest()[:12]}"
    occ_alt = _occupant(store, alt)
    if occ_alt is not None and occ_alt.origin == origin:
        return occ_alt.name, None
    if occ_alt is not None:
        raise ExpungeError(
            f"bank names {occ.name!r} and {occ_alt.name!r} are taken by other files: give this list a --name",
            path,
        )
    return alt, (
        f"bank {occ.name!r} holds the list from {occ.origin or 'another file'}; this file is bank {alt!r} "
        f"(to make it a new version of {occ.name!r} instead, import it with --name {occ.name})"
    )


def _resolve_name(store: Store, path: Path, name: str | None, origin: str) -> tuple[str, str | None]:
    if name is None:
        return _derived_name(store, path, origin)
    occ = _occupant(store, name)
    if occ is not None and occ.name != name:
        raise ExpungeError(
            f"bank name {name!r} would share a folder with bank {occ.name!r} (names are compared without "
            "case and with characters other than letters, digits, '.', '_' and '-' folded): choose another "
            "--name",
            path,
        )
    if occ is not None and occ.origin != origin:
        return name, (
            f"bank {name!r} was imported from {occ.origin or 'another file'}; as --name asks, this file "
            "makes its next version (its values replace the bank's)"
        )
    return name, None


def _empty_error(path: Path) -> ExpungeError:
    return ExpungeError(
        "the list holds no values (only comments, blank lines or a header?): an empty list removes "
        "nothing; give --allow-empty if that is intended",
        path,
    )


def _collect_garbage(store: Store, info: BankInfo) -> None:
    """After a commit: files no version of ``bank.json`` can reach (older values, dead imports' deltas)."""
    bdir = store.bank_dir(info.name)
    keep = _values_file(bdir, info.versions[-1]).name
    for p in bdir.glob("values*.parquet"):
        if p.name != keep:
            p.unlink(missing_ok=True)
    deltas = store.bank_deltas(info.name)
    if deltas.is_dir():
        for p in deltas.iterdir():
            m = _DELTA.match(p.name)
            if m is not None and int(m.group(1)) > info.version:
                p.unlink(missing_ok=True)


def import_list(
    store: Store,
    path: Path,
    name: str | None = None,
    signal: str | None = None,
    recipe: str | None = None,
    source: str | None = None,
    label: str | None = None,
    fmt: str = "auto",
    column: str | None = None,
    threshold: int | None = None,
    *,
    allow_empty: bool = False,
    negative: bool = False,
) -> ImportResult:
    """Parse, validate and store a list as a new bank version. Any bad line refuses the whole file, and
    so does a list with no values unless ``allow_empty``: an empty list would remove nothing, silently.

    Without ``name``, the bank is named after the file's stem; a different file whose stem names the
    same folder gets its own bank (stem plus a hash of its absolute path), never a version of another
    file's bank. With ``name``, a different file makes the next version of that bank, and the result
    carries a note saying so.
    """
    store.ensure()
    if not path.is_file():
        raise ExpungeError("list file not found", path)
    origin = _origin(path)
    name, note = _resolve_name(store, path, name, origin)
    prior = load_info(store, name) if store.bank_file(name).is_file() else None
    prior_last = prior.versions[-1] if prior is not None and prior.versions else {}
    prior_bytes = prior_last.get("bytes")
    file_sha, prefix_sha, file_bytes = _file_sha256s(
        path, prior_bytes if isinstance(prior_bytes, int) else None
    )
    role = "negative" if negative else "positive"
    if store.bank_file(name).is_file() and load_info(store, name).role != role:
        # An allow-list turned into a removal list (or back) by a re-import would flip what every
        # finding of it means; that is a new bank, never a new version.
        raise ExpungeError(
            f"bank {name!r} is a {load_info(store, name).role} bank; this import is {role}"
            " (choose another --name)",
            path,
        )
    tail: _Tail | None = None
    if store.bank_file(name).is_file():
        # Re-importing the file a bank was last built from, read the same way, changes nothing: skip
        # the parse. A recipe left out means the signal's default, not whatever the bank holds, and
        # another --format or --column reads other values from the same bytes.
        known = load_info(store, name)
        last = known.versions[-1] if known.versions else {}
        same_threshold = threshold is None or threshold == known.threshold
        kind = SIGNALS.get(signal or known.signal)
        want_recipe = recipe or (kind.default_recipe if kind is not None else None)
        same_kind = signal in (None, known.signal) and want_recipe == known.recipe
        same_read = (
            last.get("format") == (detect_format(path) if fmt == "auto" else fmt)
            and last.get("column") == column
        )
        if last.get("file_sha256") == file_sha and same_threshold and same_kind and same_read:
            if known.count == 0 and not allow_empty:
                raise _empty_error(path)
            _collect_garbage(store, known)  # what a run killed after its commit left
            return ImportResult(known.name, known.version, known.count, 0, 0, True)
        if same_threshold and same_kind and same_read and column is None:
            tail = _appended(path, last, str(last.get("format")), prefix_sha)
            if tail is not None and signal is None:
                signal = known.signal  # the new lines may not name it (threatexchange files do)
    parsed = (
        read_tokens(path, fmt, column, start=tail.start, first_line=tail.first_line)
        if tail is not None
        else read_tokens(path, fmt, column)
    )
    if signal is None:
        signal = parsed.signal
    elif parsed.signal is not None and parsed.signal != signal:
        raise ExpungeError(f"the file names signal type {parsed.signal}, but {signal} was asked for", path)
    if signal is None:
        if len(parsed.tokens) == 0 and not allow_empty:
            raise _empty_error(path)
        raise ExpungeError("signal type unknown: give it (e.g. FILE:url_md5 or --signal url_md5)", path)
    try:
        st = get_signal(signal)
    except KeyError as exc:  # its message also names a plug-in of that name that failed to load
        raise ExpungeError(exc.args[0], path) from None
    recipe = recipe or st.default_recipe
    if recipe not in st.recipes:
        raise ExpungeError(
            f"recipe {recipe!r} does not apply to {signal} (use {' / '.join(st.recipes)})", path
        )
    new = sorted_unique(st.parse_values(parsed))
    if len(new) == 0 and not allow_empty and tail is None:
        raise _empty_error(path)
    bdir = store.bank_dir(name)
    if (bdir / BANK_JSON).is_file():
        info = load_info(store, name)
        if (info.signal, info.recipe) != (signal, recipe):
            raise ExpungeError(
                f"bank {name!r} holds {info.signal}/{info.recipe} values; this import is {signal}/{recipe} "
                "(choose another --name)",
                path,
            )
        old = read_values(_values_file(bdir, info.versions[-1]), st.width)
    else:
        feature = st.feature(recipe).name
        info = BankInfo(name, signal, recipe, source or "unknown", feature, st.width, role=role)
        old = np.empty(0, dtype=f"S{st.width}")
    if st.thresholded:
        info.threshold = threshold if threshold is not None else (info.threshold or st.default_threshold)
        if info.threshold is None or not 0 <= info.threshold <= 128:
            raise ExpungeError("a Hamming threshold must be between 0 and 128", path)
    elif threshold is not None:
        raise ExpungeError(f"--threshold applies to perceptual signals (pdq), not {signal}", path)
    same_threshold = not info.versions or info.versions[-1].get("threshold") == info.threshold
    if tail is not None:
        # Appended lines only add: the values not in the bank yet, merged into its sorted values.
        added = new[~_in_sorted(old, new)] if len(old) else new
        removed = np.empty(0, dtype=f"S{st.width}")
        new = np.insert(old, np.searchsorted(old, added), added)
        lines = int(info.versions[-1].get("lines", 0)) + len(parsed.tokens)
    else:
        added = np.setdiff1d(new, old, assume_unique=True)
        removed = np.setdiff1d(old, new, assume_unique=True)
        lines = len(parsed.tokens)
    if len(new) == 0 and not allow_empty:
        raise _empty_error(path)
    # Only the values decide: the same bytes read with another --column or --format are other values.
    if info.versions and len(added) == 0 and len(removed) == 0 and same_threshold:
        _collect_garbage(store, info)
        return ImportResult(name, info.version, info.count, 0, 0, True)
    version = info.version + 1
    # Every file of the new version first, under names no committed version uses; bank.json last.
    values_file = Store.bank_values_name(version)
    _write_values(store.bank_delta(name, version, "added"), added, st.width, store)
    _write_values(store.bank_delta(name, version, "removed"), removed, st.width, store)
    _write_values(bdir / values_file, new, st.width, store)
    if source:
        info.source = source
    info.origin = origin
    categories = parsed.categories
    info.versions.append(
        {
            "version": version,
            "label": label or dt.date.today().isoformat(),
            "imported_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "file": path.name,
            "path": origin,
            "file_sha256": file_sha,
            "format": parsed.format,
            "column": column,
            "count": len(new),
            "lines": lines,
            "bytes": file_bytes,
            "added": len(added),
            "removed": len(removed),
            "categories": categories,
            "threshold": info.threshold,
            "values_file": values_file,
        }
    )
    _save_info(store, info)  # the commit
    _collect_garbage(store, info)
    return ImportResult(name, version, len(new), len(added), len(removed), False, note)


@dataclass(frozen=True)
class LoadedBank:
    """A bank's current values ready for membership tests, and the delta since a given version.

    The values are read (and their lookup table built) on first use: an incremental match of a list
    that only grew needs the bank's name and version, not its millions of values.
    """

    name: str
    version: int
    signal: str
    feature: str
    width: int
    bank_dir: str
    threshold: int | None = None

    @property
    def values(self) -> SortedSet:
        loaded: SortedSet = _load_cached(self.bank_dir, self.version, self.width)
        return loaded


@lru_cache(maxsize=16)
def _load_cached(bank_dir: str, version: int, width: int) -> SortedSet:
    return SortedSet.build(read_values(values_path(Path(bank_dir), version), width))


def load_bank(store: Store, name: str, expect_version: int | None = None) -> LoadedBank:
    """Load once per process and version (workers keep it for every shard they handle)."""
    info = load_info(store, name)
    if expect_version is not None and info.version != expect_version:
        raise ExpungeError(
            f"bank {name!r} changed during the run (version {info.version}, expected {expect_version})"
        )
    bank_dir = str(store.bank_dir(name))
    return LoadedBank(name, info.version, info.signal, info.feature, info.width, bank_dir, info.threshold)


def added_since(store: Store, name: str, since: int, width: int) -> np.ndarray:
    """Values added after version ``since`` (net of later removals is the caller's business)."""
    info = load_info(store, name)
    parts = [
        read_values(store.bank_delta(name, v, "added"), width) for v in range(since + 1, info.version + 1)
    ]
    if not parts:
        return np.empty(0, dtype=f"S{width}")
    return sorted_unique(np.concatenate(parts))
