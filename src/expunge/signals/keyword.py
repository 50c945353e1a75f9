"""Keyword soft signal: caption term lists matched with Aho-Corasick over whole batches.

A term list is sensitive in itself (it names what a child-protection filter looks for), so no term
is ever printed, logged or quoted in an error: errors name the file and the line, findings store the
SHA-256 of the normalised term (``TermList.term_ids``), never the term.

Terms and captions go through the same :func:`normalise`, so spelling games on either side meet in
one form:

* NFKC (full-width letters, ligatures, superscripts → plain letters), format characters (zero-width
  space and joiners, soft hyphen, BOM) deleted, case folded (Arrow's lowercase plus the few full
  case foldings it lacks: "ß" → "ss", final sigma, old Cyrillic variants);
* diacritics stripped: NFD, then every non-spacing and enclosing mark (Mn, Me) dropped, then NFKC
  again so Hangul and other compositions are whole again (spacing marks, Mc, are kept: in Indic
  scripts they are vowels, not accents);
* controls and any run of whitespace become one space, ends trimmed;
* separators between single letters undone: a run of two or more single characters (neither
  neighbour a letter or digit), each a letter or one of the look-alikes below, separated by exactly
  one of ``. - _ * ·`` (mixed) or else by single spaces, and holding at least one letter, loses its
  separators ("t.e.a.p.o.t", "t-e.a", "t e a p o t" → "teapot"); the look-alikes in such a run
  become letters too ("t 3 a p 0 t" → "teapot"). Runs with marks go first, so in "a t.e.a.p.o.t"
  the article stays a word; with spaces alone it cannot ("a t e a" → "atea", "a 7" → "at");
* digit-for-letter swaps undone inside a token (a run of letters and digits, with "@" and "$"
  allowed between them) that holds at least one letter: 0→o 1→i 3→e 4→a 5→s 7→t @→a $→s. "2024"
  has no letter and stays; "t3ap0t" → "teapot"; "@teapot" keeps its "@" (a handle, not a swap).

Matching is by whole words: a match counts only when the characters just before and just after it
in the normalised caption are not letters or digits (``str.isalnum``), so "cat" does not match
"concatenate" nor "cats"; list plural forms as terms of their own. A multi-word term ("tea pot")
matches across the single space normalisation leaves between words. Scripts written without spaces
(CJK ideographs, kana, Thai, Lao, Khmer, Myanmar) are the exception: a term that begins or ends in
one needs no boundary on that side.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import ahocorasick_rs
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from expunge.errors import ExpungeError
from expunge.features.digest import as_binary
from expunge.features.text import utf8_invalid_mask

# ---------------------------------------------------------------------------------------------------
# Normalisation

_SWAPS = str.maketrans("013457@$", "oieastas")
# Full case foldings that Arrow's utf8_lower does not do and that survive the diacritic strip.
_FOLDS = {c: c.casefold() for c in "ßς" + "".join(chr(cp) for cp in range(0x1C80, 0x1C89))}
_FOLD_CLASS = "[" + "".join(_FOLDS) + "]"

# Python ``re`` (Unicode-aware, has look-behind) for the two rules RE2 cannot express: a letter is
# ``[^\W\d_]``, "not a letter or digit" is ``(?<![^\W_])`` / ``(?![^\W_])``.
_LOOKALIKE = r"(?:[^\W\d_]|[013457@$])"
# Runs with marks between letters first, then runs with spaces: "a t.e.a.p.o.t" is "a teapot".
_RUNS = tuple(
    re.compile(rf"(?<![^\W_]){_LOOKALIKE}(?:{sep}{_LOOKALIKE})+(?![^\W_])") for sep in (r"[.\-_*·]", " ")
)
# A token (letters and digits, "@" and "$" only between them) that holds a look-alike; the
# look-ahead keeps the callback off the many tokens without one.
_TOKEN = re.compile(r"(?<![^\W_])(?=[^\W_]*(?:[013457]|[@$]+[^\W_]))[^\W_](?:[@$]*[^\W_])*")
_SWAPPABLE = re.compile(r"[013457@$]")

# RE2 (Arrow) pre-filters: every row the Python rules would change matches these (they over-match).
_NEEDS_SPACES = r"[\p{Cc}\p{Zl}\p{Zp}]|[^\P{Zs} ]|  |^ | $"
_NEEDS_SPACES_ASCII = r"[\x00-\x1f\x7f]|  |^ | $"
_NEEDS_PYTHON = (
    r"(?:^|[^\pL\pN])[\pL\pN@$][.\-_ *·][\pL\pN@$](?:[^\pL\pN]|$)"  # two single characters
    r"|\pL[\pL\pN@$]*[013457]|[013457][\pL\pN@$]*\pL"  # a digit look-alike in a token with letters
    r"|[\pL\pN][\pL\pN@$]*[@$][\pL\pN@$]*[\pL\pN]"  # "@" or "$" inside a token
)


# RE2 compiles _NEEDS_PYTHON on every call (about 15 ms: the letter classes are large); below this
# many rows, running the Python rules on every row costs less than the filter that would spare them.
_PREFILTER_FROM = 1024


def _as_text(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """String view of ``values`` (string, large_string, binary or null type); non-UTF-8 rows → null."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    raw = as_binary(values)
    if not (pa.types.is_binary(raw.type) or pa.types.is_large_binary(raw.type)):
        raise ExpungeError(f"caption column holds {raw.type}, not text")
    bad = utf8_invalid_mask(raw)
    if bad.any():
        raw = pc.if_else(pa.array(bad), pa.scalar(None, raw.type), raw)
    return raw.cast(pa.large_string() if pa.types.is_large_binary(raw.type) else pa.string())


def _mask(values: pa.Array, pattern: str) -> pa.Array:
    """Rows matching the RE2 ``pattern``; null rows count as not matching."""
    return pc.fill_null(pc.match_substring_regex(values, pattern), False)


def _on_rows(values: pa.Array, rows: pa.Array, step: Callable[[pa.Array], pa.Array]) -> pa.Array:
    """Apply ``step`` (array → array) only to the rows where ``rows`` is true."""
    count = pc.sum(rows).as_py() or 0
    if count == 0:
        return values
    if count == len(values):
        return step(values)
    return pc.replace_with_mask(values, rows, step(values.filter(rows)))


def _spaces(values: pa.Array) -> pa.Array:
    return pc.utf8_trim(pc.replace_substring_regex(values, r"[\p{Cc}\p{Z}]+", " "), " ")


def _unicode_steps(values: pa.Array) -> pa.Array:
    """NFKC, format characters out, case fold, diacritics out: whole-array Arrow kernels only."""
    values = pc.utf8_normalize(values, "NFKC")
    values = pc.replace_substring_regex(values, r"\p{Cf}+", "")
    values = pc.utf8_lower(values)
    if pc.any(_mask(values, _FOLD_CLASS)).as_py():
        for char, folded in _FOLDS.items():
            values = pc.replace_substring(values, char, folded)
    values = pc.utf8_normalize(values, "NFD")
    values = pc.replace_substring_regex(values, r"[\p{Mn}\p{Me}]+", "")
    values = pc.utf8_normalize(values, "NFKC")
    return _on_rows(values, _mask(values, _NEEDS_SPACES), _spaces)


def _ascii_steps(values: pa.Array) -> pa.Array:
    """The same steps for ASCII rows, where NFKC, NFD and the mark strip change nothing."""
    values = pc.ascii_lower(values)
    return _on_rows(values, _mask(values, _NEEDS_SPACES_ASCII), _spaces)


def _collapse(match: re.Match[str]) -> str:
    run = match.group()
    if not any(c.isalpha() for c in run):
        return run  # "1.5", "3 4": numbers, not a spelled-out word
    return run[::2].translate(_SWAPS)  # one character, one separator, one character, ...


def _unswap(match: re.Match[str]) -> str:
    token = match.group()
    return token.translate(_SWAPS) if any(c.isalpha() for c in token) else token


def _python_rules(text: str) -> str:
    for run in _RUNS:
        text = run.sub(_collapse, text)
    if _SWAPPABLE.search(text):
        text = _TOKEN.sub(_unswap, text)
    return text


def _python_steps(values: pa.Array) -> pa.Array:
    # Per row in Python: RE2 has no look-behind and cannot drop a variable number of separators from
    # a run or swap characters only in tokens that hold a letter. Only the rows the RE2 pre-filter
    # picks come here (about 5 % of the benchmark's captions). NFKC again afterwards: dropping separators
    # can put Hangul jamo side by side, which compose.
    done = pa.array([None if s is None else _python_rules(s) for s in values.to_pylist()], values.type)
    return pc.utf8_normalize(done, "NFKC")


def normalise(captions: pa.Array) -> pa.Array:
    """The one normal form terms and captions are compared in (see the module docstring).

    String or binary in; ``string`` out (``large_string`` for large input); null and non-UTF-8 rows
    are null out. Idempotent. Only the rows that need it take the Unicode kernels (non-ASCII rows) or
    the per-row Python rules.
    """
    text = _as_text(captions)
    if len(text) == 0:
        return text
    non_ascii = pc.invert(pc.fill_null(pc.string_is_ascii(text), True))
    text = _ascii_steps(text) if not pc.all(non_ascii).as_py() else text
    text = _on_rows(text, non_ascii, _unicode_steps)
    if len(text) < _PREFILTER_FROM:
        return _python_steps(text)
    return _on_rows(text, _mask(text, _NEEDS_PYTHON), _python_steps)


# ---------------------------------------------------------------------------------------------------
# Term lists


@dataclass(frozen=True)
class TermList:
    """A normalised term list. Never print it: ``repr`` shows sizes and the file digest only."""

    terms: tuple[str, ...]  # normalised, deduplicated, sorted
    categories: tuple[str, ...]  # category of each term ("" when the list has none), same order
    sha256: str  # of the file bytes

    def __post_init__(self) -> None:
        if len(self.terms) != len(self.categories):
            raise ValueError("terms and categories differ in length")

    def __repr__(self) -> str:
        return f"TermList({len(self.terms)} terms, sha256={self.sha256})"

    @cached_property
    def term_ids(self) -> np.ndarray:
        """SHA-256 of each normalised term's UTF-8 (what findings store as ``value``), ``S32``."""
        ids = np.array([hashlib.sha256(t.encode()).digest() for t in self.terms], dtype="S32")
        ids.flags.writeable = False
        return ids


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _has_control(text: str) -> bool:
    return any(unicodedata.category(c) == "Cc" and c != "\t" for c in text)


def _read_plain(text: str, path: Path) -> list[tuple[int, str, str]]:
    entries = []
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if _has_control(line):
            raise ExpungeError("control character in term list", path, f"line {number}")
        if line.strip():
            entries.append((number, line, ""))
    return entries


def _read_csv(text: str, path: Path) -> list[tuple[int, str, str]]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    entries: list[tuple[int, str, str]] = []
    header: list[str] | None = None
    term_col = category_col = -1
    try:
        for row in reader:
            number = reader.line_num
            if any(_has_control(field) for field in row):
                raise ExpungeError("control character in term list", path, f"line {number}")
            if not row:
                continue
            if header is None:
                header = [name.strip().lower() for name in row]
                if "term" not in header:
                    raise ExpungeError("CSV header has no 'term' column", path, f"line {number}")
                term_col = header.index("term")
                category_col = header.index("category") if "category" in header else -1
                continue
            if len(row) != len(header):
                message = f"CSV row has {len(row)} fields, the header has {len(header)}"
                raise ExpungeError(message, path, f"line {number}")
            category = row[category_col].strip() if category_col >= 0 else ""
            entries.append((number, row[term_col], category))
    except csv.Error:
        # csv's messages can quote the text it choked on: say where only.
        raise ExpungeError("malformed CSV", path, f"line {reader.line_num}") from None
    if header is None:
        raise ExpungeError("list has no terms", path)
    return entries


def read_terms(path: Path) -> TermList:
    """Read a term list: plain text, one term per line (blank lines skipped), or ``*.csv`` with a
    header naming a ``term`` column and optionally a ``category`` column.

    Terms are normalised, deduplicated (categories of duplicates are merged, sorted, joined with
    ``|``) and sorted. Any bad line refuses the whole list with an ExpungeError that names the file
    and the line and never quotes it.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ExpungeError(f"cannot read term list ({exc.strerror or type(exc).__name__})", path) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ExpungeError("term list is not UTF-8", path, f"line {_line_of(data, exc.start)}") from None
    text = text.removeprefix("\ufeff")
    entries = _read_csv(text, path) if path.suffix.lower() == ".csv" else _read_plain(text, path)
    if not entries:
        raise ExpungeError("list has no terms", path)
    normal = normalise(pa.array([term for _, term, _ in entries], pa.string())).to_pylist()
    merged: dict[str, set[str]] = {}
    for (number, _, category), term in zip(entries, normal, strict=True):
        if not term:
            raise ExpungeError("term is empty after normalisation", path, f"line {number}")
        merged.setdefault(term, set()).add(category)
    terms = tuple(sorted(merged))
    categories = tuple("|".join(sorted(c for c in merged[t] if c)) for t in terms)
    return TermList(terms, categories, hashlib.sha256(data).hexdigest())


# ---------------------------------------------------------------------------------------------------
# Matching

_EMPTY = (np.zeros(0, np.int64), np.zeros(0, np.int32))
# Scripts written without spaces between words (Thai, Lao, Myanmar, Khmer, kana, CJK ideographs): a
# term that begins (ends) with one of their characters needs no boundary on that side, or it could
# never match inside running text.
_UNSPACED = (
    (0x0E00, 0x0EFF),
    (0x1000, 0x109F),
    (0x1780, 0x17FF),
    (0x3040, 0x30FF),
    (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF),
    (0xF900, 0xFAFF),
    (0x20000, 0x3FFFF),
)


def _unspaced(char: str) -> bool:
    return any(lo <= ord(char) <= hi for lo, hi in _UNSPACED)


_ASCII_WORD = np.array([chr(i).isalnum() for i in range(128)], dtype=bool)


def _code_points(buf: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Code point of the UTF-8 sequence starting at each ``pos`` (a lead byte) of valid UTF-8."""
    last = len(buf) - 1
    b = [buf[np.minimum(pos + i, last)].astype(np.int64) for i in range(4)]
    c = b[1:]
    two = ((b[0] & 0x1F) << 6) | (c[0] & 0x3F)
    three = ((b[0] & 0x0F) << 12) | ((c[0] & 0x3F) << 6) | (c[1] & 0x3F)
    four = ((b[0] & 0x07) << 18) | ((c[0] & 0x3F) << 12) | ((c[1] & 0x3F) << 6) | (c[2] & 0x3F)
    lead = b[0]
    points: np.ndarray = np.where(
        lead < 0x80, lead, np.where(lead < 0xE0, two, np.where(lead < 0xF0, three, four))
    )
    return points


def _is_word(code_points: np.ndarray) -> np.ndarray:
    """``str.isalnum`` of each code point: a table for ASCII, Python for each distinct other one."""
    out = np.zeros(len(code_points), dtype=bool)
    ascii_ = code_points < 128
    out[ascii_] = _ASCII_WORD[code_points[ascii_]]
    if not ascii_.all():
        others, inverse = np.unique(code_points[~ascii_], return_inverse=True)
        out[~ascii_] = np.array([chr(int(cp)).isalnum() for cp in others], dtype=bool)[inverse]
    return out


class KeywordMatcher:
    """One automaton for a term list, built once, run once per batch of captions.

    The batch is searched as one haystack: Arrow's value buffer of the normalised captions, as is (no
    copy, no separators). Overlapping matches are asked for, so a match that fails a word boundary
    or straddles two rows never hides one that counts; both are dropped afterwards with numpy on the
    row offsets. Measured against one automaton call per caption (benchmarks/bench_triage_keyword.py).
    """

    def __init__(self, terms: TermList) -> None:
        self.terms = terms
        self._count = len(terms.terms)
        self._left = np.array([not _unspaced(t[0]) for t in terms.terms], dtype=bool)
        self._right = np.array([not _unspaced(t[-1]) for t in terms.terms], dtype=bool)
        self._automaton = (
            ahocorasick_rs.BytesAhoCorasick([t.encode() for t in terms.terms]) if terms.terms else None
        )

    def match(self, captions: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, term_index)``: one pair per row and distinct term found in it, rows ascending."""
        if self._automaton is None or len(captions) == 0:
            return _EMPTY
        text = pc.fill_null(normalise(captions), "")
        wide = pa.types.is_large_string(text.type)
        offsets_buf, data_buf = text.buffers()[1:3]
        stored = np.frombuffer(offsets_buf, np.int64 if wide else np.int32)
        offsets: np.ndarray = stored[text.offset : text.offset + len(text) + 1].astype(np.int64)
        lo, hi = int(offsets[0]), int(offsets[-1])
        if hi == lo or data_buf is None:
            return _EMPTY
        haystack = memoryview(data_buf).cast("B")[lo:hi]  # Arrow's bytes as they are, no copy
        found = self._automaton.find_matches_as_indexes(haystack, overlapping=True)
        if not found:
            return _EMPTY
        hits = np.array(found, dtype=np.int64).reshape(-1, 3)
        term, start, end = hits[:, 0], hits[:, 1] + lo, hits[:, 2] + lo
        row = np.searchsorted(offsets, start, side="right") - 1
        row_start, row_end = offsets[row], offsets[row + 1]
        keep = end <= row_end  # no match across two rows
        buf = np.frombuffer(data_buf, np.uint8)
        inner = keep & (start > row_start) & self._left[term]
        before = start[inner] - 1
        for _ in range(3):  # back from the last byte of the previous character to its lead byte
            before = np.where((buf[before] & 0xC0) == 0x80, before - 1, before)
        keep[inner] &= ~_is_word(_code_points(buf, before))
        inner = keep & (end < row_end) & self._right[term]
        keep[inner] &= ~_is_word(_code_points(buf, end[inner]))
        if not keep.any():
            return _EMPTY
        pairs = np.unique(row[keep] * self._count + term[keep])
        return pairs // self._count, (pairs % self._count).astype(np.int32)
