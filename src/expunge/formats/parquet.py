"""Parquet shards: discovery, column detection, streaming reads, and faithful rewrites.

A rewritten shard keeps the source's schema (with its key-value metadata), row order, per-column
compression and dictionary settings, format version and row-group size, so a cleaned release looks
like the original minus the removed rows. Reads stream one row group at a time: memory is bounded by
the largest row group, never by the shard or dataset size.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from expunge import storage
from expunge.errors import ExpungeError
from expunge.formats.paths import is_url, relative, walk
from expunge.storage.errors import classify as storage_classify

URL_COLUMNS = ("url", "URL", "image_url", "img_url", "link", "URL_")
CAPTION_COLUMNS = ("caption", "TEXT", "text", "alt", "title", "CAPTION")
KEY_COLUMNS = ("key", "SAMPLE_ID", "sample_id", "id", "uid")
SUFFIXES = (".parquet", ".pq")


@dataclass(frozen=True)
class ColumnMap:
    url: str | None  # None only for image datasets without URLs
    caption: str | None
    key: str | None


@dataclass(frozen=True)
class Shard:
    name: str  # path relative to the dataset root, '/'-separated: the shard's identity
    path: str  # absolute path


def _is_shard(path: str) -> bool:
    return path.endswith(SUFFIXES) and not os.path.basename(path).startswith((".", "_"))


def _is_release_record(path: str) -> bool:
    """``removed.parquet`` beside an expunge release's ``MANIFEST.json`` is a record, not a shard."""
    if os.path.basename(path) != "removed.parquet":
        return False
    if is_url(path):
        return storage.exists(storage.parse(path).parent.join("MANIFEST.json"))
    return os.path.isfile(os.path.join(os.path.dirname(path), "MANIFEST.json"))


def discover(specs: Sequence[str]) -> tuple[str, list[Shard]]:
    """Resolve directories, globs and files into an ordered shard list and their common root."""
    root, absolute = walk(specs, lambda f: _is_shard(os.path.basename(f)), "parquet")
    absolute = [p for p in absolute if not _is_release_record(p)]
    shards = [Shard(relative(p, root), p) for p in absolute]
    return root, shards


def _remote_failure(exc: BaseException, path: str) -> ExpungeError | None:
    """A failure of the storage under a remote shard (unreachable, denied, gone), as its one line; None
    when it is the file's own fault (corrupt), which the caller reports as such."""
    if not is_url(path):
        return None
    phrase = storage_classify(exc)
    if phrase.startswith("storage error ("):
        return None
    return ExpungeError(phrase, storage.redact(path))


def open_file(path: str) -> pq.ParquetFile:
    """The shard's footer, read; a URL is opened for random access, so a later read of one column
    fetches only that column's byte ranges (the index stage reads a remote shard's URL pages only)."""
    try:
        return pq.ParquetFile(storage.open_input(path) if is_url(path) else path)
    except (pa.ArrowException, OSError) as exc:
        failure = _remote_failure(exc, path)
        if failure is not None:
            raise failure from None
        raise ExpungeError(
            f"not a readable parquet file: truncated or corrupt footer ({type(exc).__name__})",
            storage.redact(path) if is_url(path) else path,
        ) from None


def _pick(names: Sequence[str], override: str | None, candidates: Sequence[str]) -> str | None:
    if override is not None:
        return override if override in names else None
    for c in candidates:
        if c in names:
            return c
    lowered = {n.lower(): n for n in names}
    for c in candidates:
        if c.lower() in lowered:
            return lowered[c.lower()]
    return None


def detect_columns(
    path: str,
    url: str | None = None,
    caption: str | None = None,
    key: str | None = None,
    *,
    require_url: bool = True,
) -> ColumnMap:
    """Find the URL, caption and key columns by their LAION / Re-LAION / HF names, or as overridden."""
    schema = open_file(path).schema_arrow
    names = schema.names
    if url is None:
        candidates = {c.lower() for c in URL_COLUMNS}
        several = [n for n in names if n.lower() in candidates]
        if len(several) > 1:
            # Matching one and publishing the other unmatched would be a guess toward publishing.
            raise ExpungeError(
                f"several URL columns ({', '.join(several)}): name the one to match with --url-column", path
            )
    found = _pick(names, url, URL_COLUMNS)
    if found is None and (require_url or url is not None):
        wanted = url if url is not None else " / ".join(URL_COLUMNS)
        raise ExpungeError(f"no URL column (looked for {wanted}; set --url-column)", path)
    if caption is not None and caption not in names:
        raise ExpungeError(f"no column named {caption!r} for captions", path)
    if key is not None and key not in names:
        raise ExpungeError(f"no column named {key!r} for keys", path)
    if found is not None:
        check_text_type(schema.field(found).type, path, found)
    return ColumnMap(found, _pick(names, caption, CAPTION_COLUMNS), _pick(names, key, KEY_COLUMNS))


def iter_column(path: str, column: str) -> Iterator[pa.Array]:
    """One column, one row group at a time, with corruption reported as file + row range."""
    pf = open_file(path)
    if column not in pf.schema_arrow.names:
        raise ExpungeError(f"no column {column!r} in this shard", path)
    md = pf.metadata
    start = 0
    for i in range(md.num_row_groups):
        n = md.row_group(i).num_rows
        table = read_row_group(pf, path, i, start, [column])
        yield table.column(0).combine_chunks()
        start += n


def _is_text(t: pa.DataType) -> bool:
    return bool(
        pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_null(t)
    )


def check_text_type(t: pa.DataType, path: str, column: str) -> None:
    """Refuse, before any work, a URL column that is not text: hashing its repr would match nothing and
    publish every row."""
    if pa.types.is_dictionary(t):
        t = t.value_type
    if _is_text(t) or t in (pa.string_view(), pa.binary_view()):
        return
    raise ExpungeError(
        f"column {column!r} holds {t}, not text: it cannot be read as URLs (set --url-column)", path
    )


def as_text(values: pa.Array, path: str, column: str) -> pa.Array:
    """A text column as plain string/binary arrays, whatever encoding the writer chose.

    Dictionary-encoded and view-typed columns are valid Arrow spellings of the same strings; every
    downstream kernel (hashing, canonicalisation, take) works on the plain layouts only.
    """
    check_text_type(values.type, path, column)
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    if values.type == pa.string_view():
        values = values.cast(pa.string())
    elif values.type == pa.binary_view():
        values = values.cast(pa.binary())
    return values


def iter_text(path: str, column: str) -> Iterator[pa.Array]:
    """A text column (URLs), one row group at a time, in a layout every kernel accepts."""
    for values in iter_column(path, column):
        yield as_text(values, path, column)


def read_row_group(
    pf: pq.ParquetFile, path: str, i: int, start: int, columns: list[str] | None = None
) -> pa.Table:
    """One row group, with corruption reported as the file and the row range it spans."""
    try:
        return pf.read_row_group(i, columns=columns)
    except (pa.ArrowException, OSError) as exc:
        failure = _remote_failure(exc, path)
        if failure is not None:
            raise failure from None
        n = pf.metadata.row_group(i).num_rows
        raise ExpungeError(
            f"corrupt or truncated data in row group {i} ({type(exc).__name__})",
            path,
            f"rows {start}-{start + n - 1}",
        ) from None


def num_rows(path: str) -> int:
    return int(open_file(path).metadata.num_rows)


def file_sha256(path: str, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    if is_url(path):  # streamed, never held whole in memory
        for block in storage.iter_chunks(path, chunk):
            h.update(block)
        return h.hexdigest()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class WriteSettings:
    """What we can recover from a parquet footer about how the file was written."""

    row_group_size: int
    compression: dict[str, str]
    use_dictionary: list[str]
    version: str
    write_statistics: bool
    store_schema: bool


def settings_of(pf: pq.ParquetFile) -> WriteSettings:
    md = pf.metadata
    compression: dict[str, str] = {}
    dictionary: list[str] = []
    stats = True
    rg_size = md.row_group(0).num_rows if md.num_row_groups else 1 << 20
    if md.num_row_groups:
        rg = md.row_group(0)
        for j in range(rg.num_columns):
            col = rg.column(j)
            # Keyed by leaf path: the writer matches per-column settings on it (``tags.list.element``).
            path = col.path_in_schema
            codec = col.compression.lower()
            compression.setdefault(path, "none" if codec == "uncompressed" else codec)
            if any("DICTIONARY" in e for e in col.encodings) and path not in dictionary:
                dictionary.append(path)
            stats = stats and col.is_stats_set
    kv = md.metadata or {}
    return WriteSettings(
        row_group_size=max(rg_size, 1),
        compression=compression,
        use_dictionary=dictionary,
        version=md.format_version if md.format_version in ("1.0", "2.4", "2.6") else "2.6",
        write_statistics=stats,
        store_schema=b"ARROW:schema" in kv,
    )


_PLAIN = {pa.string_view(): pa.string(), pa.binary_view(): pa.binary()}


def _filter_column(column: pa.ChunkedArray, mask: pa.Array, path: str, name: str) -> pa.ChunkedArray:
    """Arrow's filter has no kernel for view layouts (string_view, ...): take those through their
    plain twin and back, so the rewritten shard keeps the source's exact schema."""
    try:
        return column.filter(mask)
    except pa.ArrowNotImplementedError:
        plain = _PLAIN.get(column.type)
        if plain is None:
            raise ExpungeError(
                f"cannot rewrite column {name!r} of type {column.type} (no filter for it in Arrow)", path
            ) from None
        return column.cast(plain).filter(mask).cast(column.type)


def _has_dictionary(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        return True
    return any(_has_dictionary(t.field(i).type) for i in range(t.num_fields))


def _compact(column: pa.ChunkedArray, path: str, name: str) -> pa.ChunkedArray:
    """A dictionary column whose dictionaries hold only the values its rows use.

    Filtering a dictionary array keeps its whole dictionary, and the Parquet writer writes that
    dictionary page as it is: a removed row's URL and caption would still be in the published file.
    """
    if not _has_dictionary(column.type):
        return column
    if not pa.types.is_dictionary(column.type):
        raise ExpungeError(
            f"cannot rewrite column {name!r}: a dictionary nested in {column.type} would keep removed values",
            path,
        )
    chunks = [c.dictionary_decode().dictionary_encode().cast(column.type) for c in column.chunks]
    return pa.chunked_array(chunks, type=column.type)


def _filter(table: pa.Table, mask: pa.Array, path: str) -> pa.Table:
    try:
        table = table.filter(mask)
    except pa.ArrowNotImplementedError:
        columns = [
            _filter_column(c, mask, path, n) for c, n in zip(table.columns, table.column_names, strict=True)
        ]
        table = pa.Table.from_arrays(columns, schema=table.schema)
    return table


def _compacted(table: pa.Table, path: str) -> pa.Table:
    """Every dictionary column rebuilt from the rows at hand, just before they are written.

    Needed on every table written, not only filtered ones: a source written from one Arrow dictionary
    repeats the whole dictionary in every row group, removed rows' values included, and a slice of a
    dictionary array keeps its parent's dictionary.
    """
    names = table.column_names
    return pa.Table.from_arrays(
        [_compact(c, path, n) for c, n in zip(table.columns, names, strict=True)], schema=table.schema
    )


def rewrite(
    src: str,
    dst: Path,
    keep: np.ndarray,
    capture: Sequence[str] = (),
    captured: dict[str, pa.Array] | None = None,
) -> int:
    """Write the rows of ``src`` where ``keep`` is true to ``dst``, as the source was written.

    Row groups are re-cut to the source's row-group size so the output's layout matches the input's;
    returns the number of rows written. ``capture``: columns whose values at the dropped rows go into
    ``captured`` (in row order), read from the row groups this pass reads anyway.
    """
    dropped: dict[str, list[pa.Array]] = {c: [] for c in capture}
    pf = open_file(src)
    if len(keep) != pf.metadata.num_rows:
        raise ValueError(f"keep mask has {len(keep)} entries for {pf.metadata.num_rows} rows")
    settings = settings_of(pf)
    schema = pf.schema_arrow
    size = settings.row_group_size
    pending: list[pa.Table] = []
    pending_rows = 0
    written = 0
    start = 0
    with pq.ParquetWriter(
        dst,
        schema,
        compression=settings.compression or "snappy",
        use_dictionary=settings.use_dictionary,
        version=settings.version,
        write_statistics=settings.write_statistics,
        store_schema=settings.store_schema,
    ) as writer:
        if not settings.store_schema and schema.metadata:
            # Without a stored Arrow schema the writer drops the schema's key-value metadata.
            writer.add_key_value_metadata(schema.metadata)
        for i in range(pf.metadata.num_row_groups):
            n = pf.metadata.row_group(i).num_rows
            mask = keep[start : start + n]
            table = read_row_group(pf, src, i, start)
            start += n
            if not mask.all():
                if dropped:
                    gone = pa.array(~mask)
                    for c in dropped:
                        dropped[c].append(_filter_column(table.column(c), gone, src, c).combine_chunks())
                table = _filter(table, pa.array(mask), src)
            if table.num_rows == 0:
                continue
            pending.append(table)
            pending_rows += table.num_rows
            while pending_rows >= size:
                merged = pa.concat_tables(pending)
                writer.write_table(_compacted(merged.slice(0, size), src), row_group_size=size)
                written += size
                rest = merged.slice(size)
                pending = [rest] if rest.num_rows else []
                pending_rows = rest.num_rows
        if pending_rows:
            writer.write_table(_compacted(pa.concat_tables(pending), src), row_group_size=size)
            written += pending_rows
    if captured is not None:
        for c, chunks in dropped.items():
            captured[c] = pa.concat_arrays(chunks) if chunks else pa.array([], schema.field(c).type)
    return written
