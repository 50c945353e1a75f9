"""Readers for partner hash-list files, one small reader per format behind a registry.

A reader turns a file into ``(line_number, signal_or_None, token)`` entries and nothing more; what a
token means (hex digest, plaintext URL, domain) is the signal type's business. Any malformed line
refuses the whole file: running silently on part of a partner list is worse than not running.
Error messages name the file and line but never quote the line, which may be a flagged URL.
"""

from __future__ import annotations

import binascii
import codecs
import csv
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from expunge.errors import ExpungeError

# python-threatexchange signal-type names that map onto ours.
PYTX_SIGNAL_NAMES = {
    "url": "url",
    "url_md5": "url_md5",
    "url_sha1": "url_sha1",
    "url_sha256": "url_sha256",
    "domain": "domain",
    "url_expression_sha256": "url_expression_sha256",
    "pdq": "pdq",
    "photo_md5": "image_md5",
    "image_md5": "image_md5",
    "image_sha1": "image_sha1",
    "image_sha256": "image_sha256",
}

CSV_VALUE_COLUMNS = (
    "hash",
    "md5",
    "sha1",
    "sha256",
    "digest",
    "value",
    "signal",
    "url",
    "domain",
    "expression",
)


@dataclass(frozen=True)
class Entry:
    line: int
    signal: str | None  # named by the file itself (pytx format), else None
    token: str
    category: str | None = None


@dataclass(frozen=True)
class ListFile:
    path: Path
    format: str
    entries: list[Entry]

    @property
    def signal(self) -> str | None:
        """The single signal type the file names, if it names one (pytx format)."""
        names = {e.signal for e in self.entries if e.signal is not None}
        return names.pop() if len(names) == 1 else None


def _decoded_bytes(path: Path, start: int = 0, first_line: int = 1) -> bytes:
    """The file's bytes from ``start`` (a leading BOM dropped), checked to be UTF-8 but not decoded."""
    try:
        with open(path, "rb") as fh:
            fh.seek(start)
            raw = fh.read()
    except OSError as exc:
        raise ExpungeError(f"cannot read list file ({exc.strerror})", path) from None
    if start == 0 and raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8) :]
    if not raw.isascii():  # ASCII (hex lists) is UTF-8; the check is 5x cheaper than a decode
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + first_line
            raise ExpungeError("not valid UTF-8", path, f"line {line}") from None
    return raw


def _decoded_text(path: Path, start: int = 0, first_line: int = 1) -> str:
    return _decoded_bytes(path, start, first_line).decode("utf-8")


def _text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Decode strictly (UTF-8, optional BOM) and yield numbered lines without their line endings."""
    text = _decoded_text(path)
    # Split on \n only (then drop a trailing \r), so stray \x0b or \x1c never split a line.
    for n, line_text in enumerate(text.split("\n"), start=1):
        yield n, line_text.removesuffix("\r")


def _content(line: str) -> str | None:
    stripped = line.strip()
    if not stripped or stripped.startswith("#"):
        return None
    return stripped


def read_plain(path: Path, column: str | None = None) -> ListFile:
    """One value per line; ``#`` comment lines and blank lines are skipped (no value starts with ``#``)."""
    entries = [Entry(n, None, c) for n, raw in _text_lines(path) if (c := _content(raw)) is not None]
    return ListFile(path, "plain", entries)


def read_pytx(path: Path, column: str | None = None) -> ListFile:
    """python-threatexchange's ``<signal_type> <value>`` lines; anything after the value is ignored.

    python-threatexchange itself writes no comments, but whole-line ``#`` comments are skipped as in
    plain text (expunge's synthetic lists carry one): no signal type starts with ``#``, so a skipped
    line can never be a listed value.
    """
    entries: list[Entry] = []
    seen: str | None = None
    for n, raw in _text_lines(path):
        c = _content(raw)
        if c is None:
            continue
        parts = c.split(None, 2)
        if len(parts) < 2:
            raise ExpungeError("expected '<signal_type> <value>'", path, f"line {n}")
        name = PYTX_SIGNAL_NAMES.get(parts[0].lower())
        if name is None:
            raise ExpungeError("unknown signal type in threatexchange-format line", path, f"line {n}")
        if seen is not None and name != seen:
            raise ExpungeError(
                f"mixed signal types in one list ({seen} then {name}); split the file", path, f"line {n}"
            )
        seen = name
        entries.append(Entry(n, name, parts[1]))
    return ListFile(path, "pytx", entries)


def _csv_header(
    path: Path, header_line: int, header_text: str, column: str | None
) -> tuple[list[str], int, int | None]:
    """The header's fields, the value column's index and the category column's (if any)."""
    try:
        header = [h.strip() for h in next(csv.reader([header_text]))]
    except csv.Error:
        raise ExpungeError("malformed CSV header", path, f"line {header_line}") from None
    lower = [h.lower() for h in header]
    if column is not None:
        if column not in header and column.lower() not in lower:
            raise ExpungeError(f"no column named {column!r} in the CSV header", path, f"line {header_line}")
        idx = header.index(column) if column in header else lower.index(column.lower())
    else:
        found = [lower.index(c) for c in CSV_VALUE_COLUMNS if c in lower]
        if not found:
            raise ExpungeError(
                "CSV header has no hash column (looked for "
                + ", ".join(CSV_VALUE_COLUMNS)
                + "; use --column)",
                path,
                f"line {header_line}",
            )
        idx = found[0]
    if lower.count(lower[idx]) > 1:
        # Which of two columns of one name holds the list is a guess; the other's values would be lost.
        raise ExpungeError(
            f"the CSV header names the value column {header[idx]!r} more than once",
            path,
            f"line {header_line}",
        )
    cat_idx = lower.index("category") if "category" in lower else None
    return header, idx, cat_idx


def read_csv(path: Path, column: str | None = None) -> ListFile:
    """CSV with a header: a value column (named, or detected) plus optional id/category columns.

    CSV has no comment syntax: a row whose first field starts with ``#`` is a data row like any other
    (skipping it could drop a listed value). Only blank lines, which hold no field, are skipped.
    """
    lines = list(_text_lines(path))
    body = [(n, t) for n, t in lines if t.strip()]
    if not body:
        return ListFile(path, "csv", [])
    header_line, header_text = body[0]
    header, idx, cat_idx = _csv_header(path, header_line, header_text, column)
    entries: list[Entry] = []
    for n, text in body[1:]:
        if text.count('"') % 2:
            # A quoted field that runs over lines would be cut at the line end: refuse, don't truncate.
            raise ExpungeError(
                "unterminated quote (multi-line CSV fields are not supported)", path, f"line {n}"
            )
        try:
            row = next(csv.reader(io.StringIO(text)))
        except csv.Error:
            raise ExpungeError("malformed CSV line", path, f"line {n}") from None
        if len(row) != len(header):
            raise ExpungeError(f"expected {len(header)} CSV fields, found {len(row)}", path, f"line {n}")
        token = row[idx].strip()
        if not token:
            raise ExpungeError("empty value in the hash column", path, f"line {n}")
        category = row[cat_idx].strip() if cat_idx is not None else None
        entries.append(Entry(n, None, token, category or None))
    return ListFile(path, "csv", entries)


Reader = Callable[[Path, str | None], ListFile]

READERS: dict[str, Reader] = {"plain": read_plain, "csv": read_csv, "pytx": read_pytx}


def detect_format(path: Path) -> str:
    """Guess the format from the extension and the first content line."""
    if path.suffix.lower() == ".csv":
        return "csv"
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    text = head.removeprefix(codecs.BOM_UTF8).decode("utf-8", "replace")
    for raw in text.split("\n")[:-1] if len(head) == 1 << 16 else text.split("\n"):
        c = _content(raw)
        if c is None:
            continue
        first = c.split(None, 1)
        if len(first) == 2 and first[0].lower() in PYTX_SIGNAL_NAMES:
            return "pytx"
        if _looks_like_csv_header(c):
            # A CSV saved as .txt: read as plain text, "url,category" and "http://x/y,cat" would be
            # hashed as URLs and the listed URL never be in the bank. CSV reading is strict (field
            # counts, quotes), so a plain list misread this way is refused, not half-read.
            return "csv"
        return "plain"
    return "plain"


_HEADER_FIELD = re.compile(r"[a-z_][a-z0-9_ -]*")
_HEX = re.compile(r"[0-9a-fA-F]*")


def _looks_like_csv_header(line: str) -> bool:
    fields = [f.strip().strip('"').strip().lower() for f in line.split(",")]
    return all(_HEADER_FIELD.fullmatch(f) for f in fields) and any(f in CSV_VALUE_COLUMNS for f in fields)


def read_list(path: Path, fmt: str = "auto", column: str | None = None) -> ListFile:
    if not path.is_file():
        raise ExpungeError("list file not found", path)
    if fmt == "auto":
        fmt = detect_format(path)
    reader = READERS.get(fmt)
    if reader is None:
        raise ExpungeError(f"unknown list format {fmt!r} (known: {', '.join(READERS)})", path)
    return reader(path, column)


# ---------------------------------------------------------------------------------------------------
# Columnar reading: the same formats, for lists of millions of lines (Re-LAION's partners sent ~16.2M
# hashes). One Python object per line would dominate an import; here lines are split by ``str.split``
# and filtered and validated by Arrow kernels. ``read_list`` stays the reference the tests compare with.


@dataclass(frozen=True)
class Tokens:
    path: Path
    format: str
    lines: np.ndarray  # 1-based line number of each token
    tokens: pa.Array  # string
    signal: str | None  # the single signal type the file names (pytx), if any
    categories: dict[str, int]


def read_tokens(
    path: Path, fmt: str = "auto", column: str | None = None, *, start: int = 0, first_line: int = 1
) -> Tokens:
    """Tokens of a list file as columns; same rules and errors as :func:`read_list`. ``start`` (a byte
    offset at a line start, plain and threatexchange files only) reads just the lines from there on,
    numbered from ``first_line``: a re-import of a file that only grew parses only what it gained."""
    if not path.is_file():
        raise ExpungeError("list file not found", path)
    if fmt == "auto":
        fmt = detect_format(path)
    if start and fmt not in ("plain", "pytx"):
        raise ValueError("only plain and threatexchange lists are read from an offset")
    if fmt == "csv":
        fast = _csv_tokens(path, column)
        if fast is not None:
            return fast
    if fmt not in ("plain", "pytx"):
        parsed = read_list(path, fmt, column)
        cats: dict[str, int] = {}
        for e in parsed.entries:
            if e.category:
                cats[e.category] = cats.get(e.category, 0) + 1
        return Tokens(
            path,
            parsed.format,
            np.array([e.line for e in parsed.entries], dtype=np.int64),
            pa.array([e.token for e in parsed.entries], pa.string()),
            parsed.signal,
            cats,
        )
    numbers, content = _line_contents(_decoded_bytes(path, start, first_line), first_line)
    if fmt == "plain":
        return Tokens(path, "plain", numbers, content, None, {})
    parts = _pytx_split(content)
    lengths = pc.list_value_length(parts).to_numpy(zero_copy_only=False)
    short = np.flatnonzero(lengths < 2)
    if len(short):
        raise ExpungeError("expected '<signal_type> <value>'", path, f"line {numbers[short[0]]}")
    names = pc.utf8_lower(pc.list_element(parts, 0))
    known = pc.is_in(names, pa.array(list(PYTX_SIGNAL_NAMES))).to_numpy(zero_copy_only=False)
    if not known.all():
        bad = int(np.flatnonzero(~known)[0])
        raise ExpungeError("unknown signal type in threatexchange-format line", path, f"line {numbers[bad]}")
    mapped = [PYTX_SIGNAL_NAMES[n] for n in pc.unique(names).to_pylist()]
    if len(set(mapped)) > 1:  # the error path may be slow: find the first line that switches type
        per_line = [PYTX_SIGNAL_NAMES[n] for n in names.to_pylist()]
        first = per_line[0]
        bad = next(i for i, m in enumerate(per_line) if m != first)
        second = per_line[bad]
        raise ExpungeError(
            f"mixed signal types in one list ({first} then {second}); split the file",
            path,
            f"line {numbers[bad]}",
        )
    signal = mapped[0] if mapped else None
    return Tokens(path, "pytx", numbers, pc.list_element(parts, 1), signal, {})


def _pytx_split(content: pa.Array) -> pa.Array:
    """``split_pattern_regex(content, r"\\s+", max_splits=2)``, by a plain split on one space where that is
    the same split (seven times faster): RE2's ``\\s`` is ``[\\t\\n\\f\\r ]``, the lines are trimmed, so
    without those four bytes and without two spaces in a row, every run of ``\\s`` is one space."""
    if len(content) and content.null_count == 0:
        wide = pa.types.is_large_string(content.type)
        offsets = np.frombuffer(content.buffers()[1], dtype=np.int64 if wide else np.int32)
        lo, hi = int(offsets[content.offset]), int(offsets[content.offset + len(content)])
        data = memoryview(content.buffers()[2])[lo:hi].tobytes() if hi > lo else b""
        if not any(ws in data for ws in (b"\t", b"\n", b"\x0c", b"\r", b"  ")):
            return pc.split_pattern(content, " ", max_splits=2)
    return pc.split_pattern_regex(content, r"\s+", max_splits=2)


def _string_array(offsets: np.ndarray, data: np.ndarray) -> pa.Array:
    """A string array over ``data`` (valid UTF-8, split at ``offsets``) without a copy."""
    n = len(offsets) - 1
    if n and offsets[-1] >= 1 << 31:
        buffers = [None, pa.py_buffer(offsets.astype(np.int64)), pa.py_buffer(data)]
        return pa.Array.from_buffers(pa.large_string(), n, buffers)
    buffers = [None, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data)]
    return pa.Array.from_buffers(pa.string(), n, buffers)


def _printable(b: np.ndarray) -> np.ndarray:
    return (b > 0x20) & (b < 0x7F)


def _line_contents(raw: bytes, first_line: int) -> tuple[np.ndarray, pa.Array]:
    """The numbers and stripped text of the lines that are neither blank nor ``#`` comments.

    Lines are split on ``\\n`` only, then lose trailing ``\\r`` and surrounding whitespace. A list of a
    million lines would be a million Python strings; here the line ends are found with numpy, and a line
    whose first and last bytes (before one ``\\r``) are printable ASCII needs no trimming at all: its
    bytes are the token. Any other line (whitespace or non-ASCII at an edge) sends the whole file
    through Arrow's trimming kernels, which decide exactly as before.
    """
    buf = np.frombuffer(raw, dtype=np.uint8)
    if not len(buf):
        return np.empty(0, dtype=np.int64), pa.array([], pa.string())
    regular = _regular_contents(raw, buf, first_line)
    if regular is not None:
        return regular
    breaks = np.flatnonzero(buf == 0x0A)
    starts = np.concatenate(([0], breaks + 1))
    ends = np.concatenate((breaks, [len(buf)]))
    last = buf[np.maximum(ends - 1, 0)]
    cr = (ends > starts) & (last == 0x0D)
    ends_cr = ends - cr  # one trailing \r dropped
    filled = ends_cr > starts
    first = buf[np.minimum(starts, len(buf) - 1)]
    comment = filled & (first == 0x23)
    keep = filled & ~comment & _printable(first) & _printable(buf[np.maximum(ends_cr - 1, 0)])
    if (filled & ~comment & ~keep).any():
        return _trimmed_contents(buf, starts, first_line)
    numbers = np.flatnonzero(keep) + first_line
    # Every byte not in a kept line's token is cut: line breaks, the \r of every line (a blank line may
    # be just that), and comment lines.
    cut = np.zeros(len(buf), dtype=bool)
    cut[breaks] = True
    cut[ends[cr] - 1] = True
    dropped = np.flatnonzero(comment)
    if len(dropped) > 64:
        delta = np.zeros(len(buf) + 1, dtype=np.int32)
        delta[starts[dropped]] += 1
        delta[ends[dropped]] -= 1
        cut |= np.cumsum(delta[:-1]) > 0
    else:
        for i in dropped:
            cut[starts[i] : ends[i]] = True
    lengths = (ends_cr - starts)[keep]
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return numbers, _string_array(offsets, buf[~cut])


_HEADER_LINES = 1000  # comment and blank lines a regular file may start with


def _regular_contents(raw: bytes, buf: np.ndarray, first_line: int) -> tuple[np.ndarray, pa.Array] | None:
    """:func:`_line_contents` of a file that is a few comment or blank lines, then lines of one length
    with one line end (a hash list, nearly always); None for any other file. Its lines are the rows of
    a 2-D view of the bytes and its tokens one column block: no line end is searched for."""
    pos, skipped = 0, 0
    while True:  # the header: lines that are dropped whatever follows
        nl = raw.find(b"\n", pos)
        if nl < 0 or skipped > _HEADER_LINES:
            return None
        length = nl - pos
        if not (length == 0 or raw[pos] == 0x23 or (length == 1 and raw[pos] == 0x0D)):
            break
        pos, skipped = nl + 1, skipped + 1
    width = nl - pos  # the first value line, without its \n
    cr = raw[nl - 1] == 0x0D
    token = width - cr
    body = buf[pos:]
    rows, rest = divmod(len(body), width + 1)
    if rest not in (0, token, width):
        return None
    grid = body[: rows * (width + 1)].reshape(rows, width + 1)
    tail = body[rows * (width + 1) :]
    if not (grid[:, width] == 0x0A).all() or np.count_nonzero(body == 0x0A) != rows:
        return None  # lines of other lengths
    if cr and not ((grid[:, token] == 0x0D).all() and tail[token:].tobytes() in (b"", b"\r")):
        return None
    first, last = grid[:, 0], grid[:, token - 1]
    if len(tail):
        first, last = np.append(first, tail[0]), np.append(last, tail[token - 1])
    if not (_printable(first) & (first != 0x23) & _printable(last)).all():
        return None  # a line to trim, or a comment among the values
    count = rows + (len(tail) > 0)
    data = np.empty(count * token, dtype=np.uint8)
    data[: rows * token].reshape(rows, token)[:] = grid[:, :token]
    data[rows * token :] = tail[:token]
    numbers = np.arange(count, dtype=np.int64) + (first_line + skipped)
    return numbers, _string_array(np.arange(count + 1, dtype=np.int64) * token, data)


def _trimmed_contents(buf: np.ndarray, starts: np.ndarray, first_line: int) -> tuple[np.ndarray, pa.Array]:
    """The general case of :func:`_line_contents`, by Arrow kernels over the lines as they are."""
    # Each line keeps its \n here (no copy); trimming \r and \n from the right is trimming \r from a
    # line without its \n, as the line holds no other \n.
    lines = _string_array(np.concatenate((starts, [len(buf)])), buf)
    lines = pc.utf8_rtrim(lines, characters="\r\n")
    stripped = pc.utf8_trim_whitespace(lines)
    keep = pc.and_(pc.greater(pc.utf8_length(stripped), 0), pc.invert(pc.starts_with(stripped, "#")))
    numbers = np.flatnonzero(keep.to_numpy(zero_copy_only=False)) + first_line
    return numbers, stripped.filter(keep)


_ODD_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _csv_tokens(path: Path, column: str | None) -> Tokens | None:
    """A CSV list read by Arrow kernels: the daily re-import of a million-line partner file is not a
    million ``csv.reader`` calls. Only files without a quote anywhere take this path (``read_csv``, the
    reference, handles quoting); it keeps the reference's rules and errors line for line."""
    text = _decoded_text(path)
    if '"' in text or not text.isascii() or _ODD_CONTROL.search(text):
        return None  # quoting, non-ASCII or odd whitespace: the reference reader decides
    lines = pc.utf8_rtrim(pa.array(text.split("\n"), pa.string()), characters="\r")
    blank = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(lines)), 0).to_numpy(zero_copy_only=False)
    numbers = np.flatnonzero(~blank) + 1
    if not len(numbers):
        return Tokens(path, "csv", np.empty(0, dtype=np.int64), pa.array([], pa.string()), None, {})
    header_line = int(numbers[0])
    header, idx, cat_idx = _csv_header(path, header_line, lines[header_line - 1].as_py(), column)
    numbers = numbers[1:]
    body = lines.take(pa.array(numbers - 1))
    parts = pc.split_pattern(body, ",")
    counts = pc.list_value_length(parts).to_numpy(zero_copy_only=False)
    wrong = np.flatnonzero(counts != len(header))
    # Rows up to the first with a wrong field count are whole: an empty value among them comes first.
    whole = parts.slice(0, int(wrong[0])) if len(wrong) else parts
    tokens = pc.utf8_trim_whitespace(pc.list_element(whole, idx)) if len(whole) else pa.array([], pa.string())
    empty = np.flatnonzero(pc.equal(pc.utf8_length(tokens), 0).to_numpy(zero_copy_only=False))
    if len(empty):
        raise ExpungeError("empty value in the hash column", path, f"line {int(numbers[empty[0]])}")
    if len(wrong):
        n = int(numbers[wrong[0]])
        raise ExpungeError(
            f"expected {len(header)} CSV fields, found {int(counts[wrong[0]])}", path, f"line {n}"
        )
    cats: dict[str, int] = {}
    if cat_idx is not None and len(body):
        category = pc.utf8_trim_whitespace(pc.list_element(parts, cat_idx))
        named = category.filter(pc.greater(pc.utf8_length(category), 0))
        for item in pc.value_counts(named).to_pylist():
            cats[str(item["values"])] = int(item["counts"])
    return Tokens(path, "csv", numbers.astype(np.int64), tokens, None, cats)


_NIBBLE = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _NIBBLE[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _NIBBLE[_c] = 10 + _i


def parse_hex(token: str, width: int, name: str) -> bytes:
    """One hex list value as ``width`` bytes; the ValueError names the signal, never the value."""
    if not _HEX.fullmatch(token):
        raise ValueError(f"invalid hex digit in {name} value")
    if len(token) != 2 * width:
        raise ValueError(f"expected {2 * width} hex digits for {name}, found {len(token)}")
    return bytes.fromhex(token)


def hex_digests(tokens: Tokens, width: int, name: str) -> np.ndarray:
    """Every token as a ``width``-byte digest (``S{width}``); else one error naming the first bad line."""
    n = len(tokens.tokens)
    if n == 0:
        return np.empty(0, dtype=f"S{width}")
    arr = tokens.tokens
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    # Every token is exactly 2*width bytes, stored back to back: decode them all at once. binascii
    # refuses any byte that is not a hex digit, so this succeeds exactly when the regex below passes.
    offset_type = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    offsets = np.frombuffer(arr.buffers()[1], dtype=offset_type)[arr.offset : arr.offset + n + 1]
    if arr.null_count == 0 and (np.diff(offsets) == 2 * width).all():
        chars = np.frombuffer(arr.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
        try:
            # A copy, so the digests are writable like any other array (16 bytes a line: cheap).
            return np.frombuffer(binascii.unhexlify(chars.data), dtype=f"S{width}").copy()
        except binascii.Error:
            pass  # the regex finds the line and the message
    ok = pc.match_substring_regex(arr, f"^[0-9a-fA-F]{{{2 * width}}}$").to_numpy(zero_copy_only=False)
    if not ok.all():
        bad = int(np.flatnonzero(~ok)[0])
        try:
            parse_hex(arr[bad].as_py(), width, name)
        except ValueError as exc:
            raise ExpungeError(str(exc), tokens.path, f"line {tokens.lines[bad]}") from None
        raise ExpungeError(
            f"invalid {name} value", tokens.path, f"line {tokens.lines[bad]}"
        )  # pragma: no cover
    chars = np.frombuffer(arr.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
    nib = _NIBBLE[chars].reshape(n, 2 * width)
    out = (nib[:, 0::2] << 4) | nib[:, 1::2]
    return np.ascontiguousarray(out).view(f"S{width}").ravel()
