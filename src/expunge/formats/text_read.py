"""Reading text shards: opening and decompressing, line and record parsing, layout and column
detection, and value iteration (the rules are in ``expunge.formats.text``'s docstring)."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import re
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from expunge.errors import ExpungeError
from expunge.formats.parquet import CAPTION_COLUMNS, KEY_COLUMNS, URL_COLUMNS, ColumnMap

KINDS = {".tsv": "tsv", ".csv": "csv", ".jsonl": "jsonl"}
COMPRESSIONS = {".gz": "gzip", ".zst": "zstd"}
MAGIC = {"gzip": b"\x1f\x8b", "zstd": b"\x28\xb5\x2f\xfd"}
MEDIA = {"tsv": "text/tab-separated-values", "csv": "text/csv", "jsonl": "application/jsonlines"}
BOM = b"\xef\xbb\xbf"
BLOCK = 1 << 20
MAX_RECORD = 8 << 20
SAMPLE = 200
BATCH = 1 << 16
_URL = re.compile(r"\s*https?://", re.IGNORECASE)
_URL_NAMES = {c.lower() for c in URL_COLUMNS}

# What a record is: a row that parsed, a row that did not, or a line that is not a row.
OK, BAD, BLANK = 0, 1, 2
Record = tuple[bytes, int, Any]  # raw bytes (BOM excluded), kind, parsed fields (list or dict) or None


def split_name(path: str) -> tuple[str, str | None] | None:
    """(kind, compression) of a shard file name, or None when it is not one."""
    low = path.lower()
    comp = next((c for s, c in COMPRESSIONS.items() if low.endswith(s)), None)
    if comp is not None:
        low = low.rsplit(".", 1)[0]
    return next(((k, comp) for s, k in KINDS.items() if low.endswith(s)), None)


def _is_shard(path: str) -> bool:
    return split_name(path) is not None and not os.path.basename(path).startswith((".", "_"))


def _open(path: str, compression: str | None) -> Any:  # a binary file, gzip, zstandard or Arrow stream
    """The file's decompressed bytes; a compressed suffix on other bytes (and the reverse) is refused."""
    with open(path, "rb") as fh:
        head = fh.read(4)
    if compression is None:
        if any(head.startswith(m) for m in MAGIC.values()):
            raise ExpungeError("compressed data in a file not named .gz/.zst", path)
        return open(path, "rb")
    if not head.startswith(MAGIC[compression]):
        raise ExpungeError(f"not {compression} data, though the file is named so", path)
    if compression == "gzip":
        return gzip.open(path, "rb")
    try:
        import zstandard  # type: ignore[import-not-found,unused-ignore]

        return zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), closefd=True)
    except ImportError:
        return pa.CompressedInputStream(pa.OSFile(path), "zstd")


def _lines(path: str, compression: str | None) -> Iterator[bytes]:
    """Physical lines with their terminators; the first yield is the BOM (or b"")."""
    n = 0
    try:
        with _open(path, compression) as fh:
            tail = b""
            first = True
            while True:
                block = fh.read(BLOCK)
                if first:
                    first = False
                    if b"\x00" in block[:BLOCK]:
                        raise ExpungeError("not a text file (NUL bytes)", path)
                    bom = block.startswith(BOM)
                    yield BOM if bom else b""
                    block = block[3:] if bom else block
                if not block:
                    break
                parts = (tail + block).split(b"\n")
                tail = parts.pop()
                for line in parts:
                    n += 1
                    yield line + b"\n"
                if len(tail) > MAX_RECORD:
                    raise ExpungeError(
                        "a line longer than 8 MiB: not line-oriented text", path, f"line {n + 1}"
                    )
            if tail:
                yield tail
    except (OSError, EOFError, zlib.error, pa.ArrowException) as exc:
        raise ExpungeError(
            f"corrupt or truncated {compression or 'file'} data ({type(exc).__name__})",
            path,
            f"after line {n}",
        ) from None


def _no_dup_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("duplicate key")  # readers disagree on which value wins: fail closed
    return obj


def _parse(raw: bytes, kind: str) -> Record:
    body = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1] if raw.endswith(b"\n") else raw
    if not body:
        return raw, BLANK, None
    try:
        text = body.decode("utf-8")
        if kind == "tsv":
            return raw, OK, text.split("\t")
        if kind == "csv":
            rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
            return (raw, OK, rows[0]) if len(rows) == 1 else (raw, BAD, None)
        obj = json.loads(text, object_pairs_hook=_no_dup_keys)
        return (raw, OK, obj) if isinstance(obj, dict) else (raw, BAD, None)
    except (UnicodeDecodeError, csv.Error, ValueError, RecursionError):
        return raw, BAD, None


def records(path: str, kind: str, compression: str | None) -> Iterator[Record]:
    """Every record in file order, the first being ``(bom, BLANK, None)``; a CSV record spans the lines
    of a quoted field (open while its count of ``"`` is odd)."""
    lines = _lines(path, compression)
    yield next(lines), BLANK, None
    pending: list[bytes] = []
    size = quotes = 0
    for line in lines:
        if kind != "csv":
            yield _parse(line, kind)
            continue
        pending.append(line)
        size += len(line)
        quotes += line.count(b'"')
        if quotes % 2 == 0:
            yield _parse(b"".join(pending), kind)
            pending, size, quotes = [], 0, 0
        elif size > MAX_RECORD:
            raise ExpungeError("a quoted field still open after 8 MiB (unbalanced quotes)", path)
    if pending:  # a quote never closed before the end: one row that does not parse
        yield b"".join(pending), BAD, None


@dataclass(frozen=True)
class Layout:
    kind: str
    compression: str | None
    header: bool  # the first row is a header (copied as it is, never a row)
    columns: tuple[str, ...]  # header names, 0-based positions as text, or JSON keys seen in the sample
    fields: int  # the field count of a row (0 for JSONL)
    url_by_values: tuple[str, ...]  # columns whose sampled values mostly look like http(s) URLs
    mean_length: tuple[float, ...]


def layout(path: str) -> Layout:
    """How a shard is laid out, from its first rows: the same answer for the source and its release."""
    split = split_name(path)
    if split is None:
        raise ExpungeError("not a .tsv/.csv/.jsonl shard", path)
    kind, comp = split
    sample: list[Any] = []
    bad = 0
    first: list[str] | None = None  # the first line that is not blank, when it parses
    for i, (_, what, value) in enumerate(r for r in records(path, kind, comp) if r[1] != BLANK):
        if i == 0 and what == OK and kind != "jsonl":
            first = value
        if what == OK:
            sample.append(value)
        bad += what == BAD
        if len(sample) + bad >= SAMPLE:
            break
    if bad and not sample:
        raise ExpungeError("no line of the first rows parses as UTF-8 text rows: not a text file", path)
    if kind == "jsonl":
        names: dict[str, None] = {}
        for obj in sample:
            names.update(dict.fromkeys(obj))
        columns: tuple[str, ...] = tuple(names)
        values = [[o.get(c) for o in sample] for c in columns]
        return Layout(kind, comp, False, columns, 0, _urlish(columns, values), _lengths(values))
    header = first is not None and _is_header(first)
    body = sample[1:] if header else sample
    fields = len(first or ()) if header else Counter(map(len, body)).most_common(1)[0][0] if body else 0
    columns = tuple(first or ()) if header else tuple(str(i) for i in range(fields))
    values = [[r[i] for r in body if len(r) == fields] for i in range(fields)]
    return Layout(kind, comp, header, columns, fields, _urlish(columns, values), _lengths(values))


def _is_header(first: list[str]) -> bool:
    """Names a known URL column and holds no URL (anything else is a row, checked like the others)."""
    return any(f.strip().lower() in _URL_NAMES for f in first) and not any(_URL.match(f) for f in first)


def _show(names: Sequence[str]) -> str:
    """Column names for a message: names read from a file are shown only when they look like names."""
    return ", ".join(n if re.fullmatch(r"[A-Za-z0-9_. -]{1,40}", n) else "(a column)" for n in names)


def _urlish(columns: Sequence[str], values: list[list[Any]]) -> tuple[str, ...]:
    def share(vs: list[Any]) -> float:
        return sum(isinstance(v, str) and bool(_URL.match(v)) for v in vs) / max(len(vs), 1)

    return tuple(c for c, vs in zip(columns, values, strict=True) if share(vs) > 0.5)


def _lengths(values: list[list[Any]]) -> tuple[float, ...]:
    return tuple(sum(len(v) for v in vs if isinstance(v, str)) / max(len(vs), 1) for vs in values)


def _resolve(lay: Layout, name: str, path: str) -> str:
    """A column by name, or by 0-based position (text files without such a name)."""
    if name in lay.columns:
        return name
    if name.isdigit() and lay.kind != "jsonl" and int(name) < len(lay.columns):
        return lay.columns[int(name)]
    raise ExpungeError(f"no column {name!r} in this shard (names, or 0-based positions)", path)


def _by_name(lay: Layout, candidates: Sequence[str]) -> list[str]:
    lowered = {c.lower() for c in candidates}
    return [c for c in lay.columns if c.lower() in lowered] if lay.header or lay.kind == "jsonl" else []


def detect(path: str, url: str | None, caption: str | None, key: str | None, require_url: bool) -> ColumnMap:
    lay = layout(path)
    if url is not None:
        found: str | None = _resolve(lay, url, path)
    else:
        named = _by_name(lay, URL_COLUMNS)
        found_all = named or list(lay.url_by_values)
        if len(found_all) > 1:
            raise ExpungeError(
                f"several URL-like columns ({_show(found_all)}): name one with --url-column", path
            )
        found = found_all[0] if found_all else None
        if found is None and require_url:
            raise ExpungeError(
                "no URL column: no header names one and no column holds URLs (set --url-column)", path
            )
    if caption is not None:
        cap: str | None = _resolve(lay, caption, path)
    else:
        named = _by_name(lay, CAPTION_COLUMNS)
        rest = [c for c in lay.columns if c != found and c not in lay.url_by_values]
        longest = max(rest, key=lambda c: lay.mean_length[lay.columns.index(c)]) if rest else None
        cap = named[0] if named else longest if not lay.header and lay.kind != "jsonl" else None
    k = _resolve(lay, key, path) if key is not None else next(iter(_by_name(lay, KEY_COLUMNS)), None)
    return ColumnMap(found, cap, k)


def _value(lay: Layout, value: Any, column: str, text: bool) -> str | None:
    if lay.kind == "jsonl":
        v = value.get(column)
        if v is None or (text and not isinstance(v, str)):
            return None
        v = v if isinstance(v, str) else json.dumps(v, sort_keys=True)
    else:
        if len(value) != lay.fields:
            return None
        v = value[lay.columns.index(column)]
    try:
        v.encode("utf-8")  # JSON escapes can spell lone surrogates, which are no text
    except UnicodeEncodeError:
        return None
    return str(v)


def iter_values(path: str, column: str, text: bool = False) -> Iterator[pa.Array]:
    """One column, row by row in batches; a row that does not parse gives None."""
    lay = layout(path)
    if lay.columns or lay.kind == "jsonl":  # without any column every row is one that does not parse
        column = _resolve(lay, column, path) if lay.kind != "jsonl" else column
    out: list[str | None] = []
    for value in _rows(path, lay):
        out.append(None if value is None or not lay.columns else _value(lay, value, column, text))
        if len(out) >= BATCH:
            yield pa.array(out, pa.string())
            out = []
    yield pa.array(out, pa.string())


def _rows(path: str, lay: Layout) -> Iterator[Any]:
    """Parsed rows in order (None for one that does not parse), header and blank lines skipped."""
    seen_first = False
    for _, what, value in records(path, lay.kind, lay.compression):
        if what == BLANK:
            continue
        if lay.header and not seen_first:
            seen_first = True
            continue
        seen_first = True
        yield value if what == OK else None


def count_rows(path: str) -> int:
    return sum(1 for _ in _rows(path, layout(path)))
