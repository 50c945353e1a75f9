"""img2dataset / webdataset shards: an image tar with its companion parquet and stats.

A shard is ``00000.tar`` holding ``KEY.jpg``, ``KEY.txt``, ``KEY.json``... per sample, beside
``00000.parquet`` (one row per attempted URL, with a ``key`` column) and ``00000_stats.json``. The tar
itself is read by :mod:`expunge.formats.tar_scan` and rewritten by :mod:`expunge.formats.tar_rewrite`;
this module discovers shards, links their samples to metadata rows and rewrites the companions.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from expunge import atomic, storage
from expunge.atomic import atomic_path, read_json, write_json
from expunge.errors import ExpungeError
from expunge.formats import parquet
from expunge.formats.base import (
    CleanRows,
    CleanTarget,
    Shard,
    ShardFormat,
    ShardOutputs,
    parquet_rows_or_unreadable,
    place,
)
from expunge.formats.members import MemberData
from expunge.formats.paths import is_url, relative, walk
from expunge.formats.tar import normalize_name
from expunge.formats.tar_rewrite import frozen, rewrite_tar
from expunge.formats.tar_scan import iter_data, sample_keys

SUFFIXES = (".tar",)


# ------------------------------------------------------------------------------------------------
# Discovery
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TarShard:
    name: str  # path relative to the dataset root, '/'-separated: the shard's identity
    path: str  # absolute path
    parquet: str | None  # companion ``00000.parquet`` if present
    stats: str | None  # companion ``00000_stats.json`` if present


def _is_tar(filename: str) -> bool:
    return filename.endswith(SUFFIXES) and not os.path.basename(filename).startswith((".", "_"))


def _companions(path: str, listed: set[str] | None = None) -> tuple[str | None, str | None]:
    """img2dataset's ``NAME.parquet`` and ``NAME_stats.json`` beside ``NAME.tar``; for a remote shard,
    looked up in ``listed`` (the objects of its folders, from one listing, not a HEAD each)."""
    stem = os.path.splitext(path)[0]
    pq_path = stem + ".parquet"
    stats_path = stem + "_stats.json"
    present = (lambda p: p in listed) if listed is not None else os.path.isfile
    return (pq_path if present(pq_path) else None, stats_path if present(stats_path) else None)


def discover_tars(specs: Sequence[str]) -> tuple[str, list[TarShard]]:
    """Resolve directories, globs and files into an ordered tar-shard list and their common root.

    Mirrors :func:`expunge.formats.parquet.discover` so both formats name shards the same way:
    directories are walked recursively in sorted order, hidden directories and ``.``/``_`` files
    skipped; globs and directories only contribute ``*.tar``; a file named explicitly is taken as is.
    """
    root, absolute = walk(specs, _is_tar, "tar")
    listed = {x.url for x in storage.walk(root)} if is_url(root) else None
    shards = [TarShard(relative(p, root), p, *_companions(p, listed)) for p in absolute]
    return root, shards


# ------------------------------------------------------------------------------------------------
# Linking samples to metadata rows
# ------------------------------------------------------------------------------------------------

_DIGITS = re.compile(r"[0-9]{1,30}")  # an integer key's text; longer runs are not integers here


def _metadata_keys(meta: str, column: str) -> tuple[list[Any], bool]:
    """The key column's values (None for nulls) and whether they are integers.

    Text (string, large or view, dictionary-encoded, UTF-8 binary) or integers; anything else is
    refused: a float or struct key would link nothing and publish every sample unchecked.
    """
    names = parquet.open_file(meta).schema_arrow
    if column not in names.names:
        raise ExpungeError(f"no key column {column!r} in the companion parquet", meta)
    t = names.field(column).type
    if pa.types.is_dictionary(t):
        t = t.value_type
    integer = pa.types.is_integer(t)
    text = t in (pa.string(), pa.large_string(), pa.string_view(), pa.binary(), pa.large_binary(), pa.null())
    if not integer and not text:
        raise ExpungeError(f"key column {column!r} holds {t}, not text or integers", meta)
    values: list[Any] = []
    for col in parquet.iter_column(meta, column):
        if pa.types.is_dictionary(col.type):
            col = col.dictionary_decode()
        if text and col.type != pa.string():
            try:
                col = pc.cast(col, pa.string())
            except pa.ArrowException:
                raise ExpungeError(f"key column {column!r} is not valid UTF-8 text", meta) from None
        values.extend(col.to_pylist())
    if text:  # spelled as member names are compared: "./000001" is the tar's "000001"
        values = [None if v is None else normalize_name(v) or None for v in values]  # "" names no sample
    return values, integer


def _row_index(meta: str, column: str) -> tuple[dict[Any, int], bool]:
    """Key value → metadata row; refuses duplicate keys (one of the rows would be named by the other)."""
    values, integer = _metadata_keys(meta, column)
    row_of: dict[Any, int] = {}
    duplicates = 0
    for i, v in enumerate(values):
        if v is None:
            continue  # a row without a key links to no sample: it is cleaned as a row on its own
        if v in row_of:
            duplicates += 1
        else:
            row_of[v] = i
    if duplicates:
        raise ExpungeError(
            f"{duplicates} duplicate key(s) in column {column!r}: rows and samples cannot be told apart"
            " (refusing the shard)",
            meta,
        )
    return row_of, integer


def _link_values(keys: Sequence[str], integer: bool) -> list[Any]:
    """What each tar key is looked up by: itself, or for an integer column its integer value.

    ``000000001`` links to the integer ``1`` only when no other key of the tar has that value too
    (``1`` and ``01`` would be ambiguous: neither links, and the shard is refused).
    """
    if not integer:
        return list(keys)
    ints: list[int | None] = [int(k) if _DIGITS.fullmatch(k) else None for k in keys]
    counts = Counter(v for v in ints if v is not None)
    return [v if v is not None and counts[v] == 1 else None for v in ints]


def link_rows(tar: str, keys: Sequence[str], meta: str, column: str) -> list[int]:
    """The metadata row of each sample (by :func:`sample_keys` order); refuses a shard that does not link.

    Every sample must link to exactly one row: a sample without a row would keep its image and its
    ``KEY.json`` (often holding the URL) in the release when the row is removed. Rows without a sample
    are normal (img2dataset's failed downloads). Keys match exactly; an integer column matches tar keys
    by value when unambiguous; duplicate keys in the metadata are refused.
    """
    row_of, integer = _row_index(meta, column)
    rows = [row_of.get(v, -1) if v is not None else -1 for v in _link_values(keys, integer)]
    unlinked = rows.count(-1)
    if unlinked:
        raise ExpungeError(
            f"{unlinked} of {len(keys)} sample(s) link to no row of {os.path.basename(meta)} by column"
            f" {column!r} (refusing the shard: their members would be published unchecked)",
            tar,
        )
    return rows


# ------------------------------------------------------------------------------------------------
# Companions
# ------------------------------------------------------------------------------------------------


def _statuses(src: str, rows: np.ndarray) -> Counter[str] | None:
    """How many of the given metadata rows had each img2dataset ``status``; None without that column."""
    if "status" not in parquet.open_file(src).schema_arrow.names:
        return None
    status = pa.chunked_array(list(parquet.iter_column(src, "status")))
    return Counter(str(v) for v in status.take(pa.array(rows, pa.int64())).to_pylist())


def _rows_of_keys(src: str, drop: Collection[str], key_column: str, in_tar: set[str]) -> np.ndarray:
    """Metadata rows of the dropped keys; every dropped sample of the tar must have one."""
    row_of, integer = _row_index(src, key_column)
    keys = sorted(drop)
    values = _link_values(keys, integer)
    rows = {k: row_of.get(v, -1) if v is not None else -1 for k, v in zip(keys, values, strict=True)}
    missing = sum(1 for k in in_tar if rows[k] < 0)
    if missing:
        raise ExpungeError(
            f"{missing} dropped sample(s) of the tar have no row in the companion parquet"
            f" (is {key_column!r} the column holding the tar keys?)",
            src,
        )
    return np.array(sorted(r for r in rows.values() if r >= 0), dtype=np.int64)


def _read_stats(path: str) -> dict[str, Any]:
    try:
        stats = json.loads(storage.read_bytes(path)) if is_url(path) else read_json(Path(path))
    except json.JSONDecodeError as exc:
        raise ExpungeError("stats file is not valid JSON", path, f"line {exc.lineno}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ExpungeError(f"cannot read stats file ({type(exc).__name__})", path) from None
    if not isinstance(stats, dict):
        raise ExpungeError("stats file is not a JSON object", path)
    return stats


def _decrement(obj: dict[str, Any], field: str, n: int) -> None:
    value = obj.get(field)
    if isinstance(value, int) and not isinstance(value, bool):
        obj[field] = max(0, value - n)


def rewrite_companions(
    shard: TarShard,
    out_dir: Path,
    drop_keys: Collection[str],
    key_column: str = "key",
    tmp_dir: Path | None = None,
    *,
    rows: Sequence[int] | None = None,
) -> None:
    """Write the shard's parquet and stats json to ``out_dir`` (same basenames) without the dropped rows.

    The parquet loses the given metadata ``rows`` (the clean stage knows them from the index), or, when
    ``rows`` is None, the rows of ``drop_keys`` by ``key_column`` (linked as :func:`link_rows` does);
    then every dropped sample in the tar must have a row there, or it is an error: the flagged rows' URLs
    and captions would otherwise stay without a word. In the stats, ``count`` drops by the rows removed
    and ``successes`` (and ``status_dict.success``) by the removed downloaded samples; with a ``status``
    column, ``failed_*`` counts drop by the removed rows of that status. ``expunge_removed`` records the
    rows removed, added to any earlier value so re-cleaning a release accumulates. Without a parquet,
    the dropped samples found in the tar count as the rows removed.

    All inputs are read and checked before anything is written; every file is written atomically.
    """
    drop = frozen(drop_keys)
    in_tar = {k for k in sample_keys(shard.path) if k in drop}
    stats = _read_stats(shard.stats) if shard.stats is not None else None
    removed = successes = len(in_tar)  # the tar holds exactly the downloaded samples
    by_status: Counter[str] | None = None
    if shard.parquet is not None:
        n = parquet.num_rows(shard.parquet)
        if rows is None:
            hit_rows = _rows_of_keys(shard.parquet, drop, key_column, in_tar)
        else:
            hit_rows = np.unique(np.asarray(rows, dtype=np.int64))
            if len(hit_rows) and (hit_rows[0] < 0 or hit_rows[-1] >= n):
                raise ExpungeError("rows to remove lie outside the companion parquet", shard.parquet)
        keep = np.ones(n, dtype=bool)
        keep[hit_rows] = False
        by_status = _statuses(shard.parquet, hit_rows)
        with atomic_path(out_dir / os.path.basename(shard.parquet), tmp_dir) as tmp:
            parquet.rewrite(shard.parquet, tmp, keep)
        removed = len(hit_rows)
        if by_status is not None:
            successes = by_status.get("success", 0)
    if shard.stats is None or stats is None:
        return
    _decrement(stats, "count", removed)
    _decrement(stats, "successes", successes)
    status_dict = stats.get("status_dict")
    if isinstance(status_dict, dict):
        _decrement(status_dict, "success", successes)
    for status, k in (by_status or {}).items():
        if status.startswith("failed_"):
            _decrement(stats, status, k)
    before = stats.get("expunge_removed")
    before = before if isinstance(before, int) and not isinstance(before, bool) else 0
    stats["expunge_removed"] = before + removed
    write_json(out_dir / os.path.basename(shard.stats), stats, tmp_dir)


# ------------------------------------------------------------------------------------------------
# The format
# ------------------------------------------------------------------------------------------------


def _listing(spec: str) -> list[storage.Location]:
    """A remote folder's objects for discovery; one that cannot be listed claims nothing here (the
    format that takes the dataset reports the failure, once)."""
    try:
        return storage.walk(spec)
    except ExpungeError:
        return []


def has_tars(specs: Sequence[str]) -> bool:
    """Discovery: a dataset is a webdataset when a spec is a tar or a folder holds one."""
    for spec in specs:
        spec = spec.removeprefix("file://")
        if spec.endswith(".tar"):
            return True
        if is_url(spec):
            if not any(ch in spec for ch in "*?[") and any(_is_tar(x.url) for x in _listing(spec)):
                return True
            continue
        if os.path.isdir(spec):
            for _dirpath, dirnames, filenames in os.walk(spec):
                dirnames[:] = [d for d in dirnames if not d.startswith((".", "_"))]
                if any(f.endswith(".tar") and not f.startswith((".", "_")) for f in filenames):
                    return True
    return False


class WebDatasetFormat(ShardFormat):
    """Image tars, each with an optional companion parquet (its rows) and stats json."""

    name = "webdataset"
    has_images = True
    sample_key_names_row = True
    media_type = "application/x-tar"

    def claims(self, specs: Sequence[str]) -> bool:
        return has_tars(specs)

    def discover(self, specs: Sequence[str]) -> tuple[str, list[Shard]]:
        root, tars = discover_tars(specs)
        shards = [Shard(t.name, self.name, t.path, t.parquet, (t.stats,) if t.stats else ()) for t in tars]
        return root, shards

    def content_files(self, shard: Shard) -> list[str]:
        return [p for p in (shard.location, shard.metadata) if p]

    def sample_keys(self, shard: Shard) -> list[str]:
        return sample_keys(shard.location)

    def link_rows(self, shard: Shard, keys: Sequence[str], key_column: str) -> list[int]:
        assert shard.metadata is not None
        return link_rows(shard.location, keys, shard.metadata, key_column)

    def iter_members(self, shard: Shard) -> Iterator[MemberData]:
        return iter_data(shard.location)

    def outputs(self, shard: Shard, target: CleanTarget, drop_keys: frozenset[str]) -> ShardOutputs:
        out = target.out
        meta = [out.parent / os.path.basename(shard.metadata)] if shard.metadata else []
        stats = [out.parent / os.path.basename(p) for p in shard.companions]
        return ShardOutputs([out, *meta, *stats], [out, *meta])

    def write_clean(self, shard: Shard, target: CleanTarget, rows: CleanRows) -> str:
        """Tar without every member of the dropped samples; companions without their rows; stats adjusted."""
        out, tmp_dir = target.out, target.tmp_dir
        if not rows.gone:
            how = place(shard.location, out, tmp_dir)
            for companion in (shard.metadata, *shard.companions):
                if companion:
                    place(companion, out.parent / os.path.basename(companion), tmp_dir)
            return how
        with atomic.atomic_path(out, tmp_dir) as tmp:
            rewrite_tar(shard.location, tmp, rows.drop_keys)
        stats = shard.companions[0] if shard.companions else None
        tar = TarShard(shard.name, shard.location, shard.metadata, stats)
        if shard.metadata or stats:
            # The metadata loses exactly the decided rows (by position, as the index linked them).
            gone = rows.gone if shard.metadata else None
            rewrite_companions(tar, out.parent, rows.drop_keys, rows.key_column or "key", tmp_dir, rows=gone)
        return "rewritten"

    def owns_release_shard(self, release: Path, name: str) -> bool:
        return name.endswith(".tar")

    def release_files(self, release: Path, name: str) -> tuple[list[str], int | None]:
        main = release / name
        meta = main.with_suffix("").with_suffix(".parquet")
        files = [str(main)] + ([str(meta)] if meta.is_file() else [])
        return files, parquet_rows_or_unreadable(meta) if meta.is_file() else None
