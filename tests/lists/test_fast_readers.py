"""The columnar list reader's fast paths agree byte for byte with the simple code they replaced.

``read_tokens`` once split the decoded text into one Python string per line and ``hex_digests`` checked
every token with a regex; both are kept here as references. On random files (CRLF, blank lines,
comments, odd whitespace, non-ASCII, a BOM, bad hex, invalid UTF-8, a read from an offset) the new code
gives the same tokens and line numbers, the same digests, or the same error on the same line.
"""

from __future__ import annotations

import codecs
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from expunge.errors import ExpungeError
from expunge.lists import readers
from expunge.lists.bank import sorted_unique
from expunge.lists.readers import Tokens, hex_digests, parse_hex, read_tokens

# --------------------------------------------------------------------------------------------------
# references: the code before the fast paths


def _reference_text(path: Path, start: int, first_line: int) -> str:
    raw = path.read_bytes()[start:]
    if start == 0 and raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8) :]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + first_line
        raise ExpungeError("not valid UTF-8", path, f"line {line}") from None


def _reference_contents(text: str, first_line: int) -> tuple[list[int], list[str]]:
    lines = pc.utf8_rtrim(pa.array(text.split("\n"), pa.string()), characters="\r")
    stripped = pc.utf8_trim_whitespace(lines)
    keep = pc.and_(pc.greater(pc.utf8_length(stripped), 0), pc.invert(pc.starts_with(stripped, "#")))
    numbers = np.flatnonzero(keep.to_numpy(zero_copy_only=False)) + first_line
    return numbers.tolist(), stripped.filter(keep).to_pylist()


def _reference_digests(tokens: list[str], lines: list[int], path: Path, width: int) -> list[bytes]:
    out = []
    for line, token in zip(lines, tokens, strict=True):
        try:
            out.append(parse_hex(token, width, "url_md5"))
        except ValueError as exc:
            raise ExpungeError(str(exc), path, f"line {line}") from None
    return out


# --------------------------------------------------------------------------------------------------
# random list files

_HEX16 = st.binary(min_size=16, max_size=16).map(lambda b: b.hex())
_PAD = st.sampled_from(["", "", "", " ", "\t", "  \t", "\x0b", "\x0c", "\x1c", "\x85", "\xa0", "\u3000"])
_BODY = st.one_of(
    _HEX16,
    _HEX16.map(str.upper),
    _HEX16.map(lambda h: h[:31]),  # a digit short
    _HEX16.map(lambda h: h + "0"),  # a digit long
    _HEX16.map(lambda h: "g" + h[1:]),  # not hex
    _HEX16.map(lambda h: "\uff10" + h[1:]),  # a full-width zero: a digit to Python, not hex here
    _HEX16.map(lambda h: "é" + h[2:]),  # two bytes, one character: 32 bytes, 31 characters
    st.sampled_from(["#", "# comment", "#" + "a" * 32, "url_md5 " + "b" * 32, "x\ry", "a b", "\r"]),
    st.text(max_size=6).map(lambda t: t.replace("\n", "")),
)
_LINE = st.one_of(
    st.just(""),
    st.tuples(_PAD, _BODY, _PAD).map("".join),
    st.tuples(_BODY, st.sampled_from(["\r", "\r\r", " \r"])).map("".join),
)


@st.composite
def _file(draw: st.DrawFn) -> tuple[bytes, int, int]:
    """(file bytes, start offset at a line start, that line's number)."""
    lines = draw(st.lists(_LINE, max_size=25))
    eols = draw(st.lists(st.sampled_from(["\n", "\r\n"]), min_size=len(lines), max_size=len(lines)))
    parts = [(line + eol).encode() for line, eol in zip(lines, eols, strict=True)]
    if parts and draw(st.booleans()):
        parts[-1] = lines[-1].encode()  # no line end after the last line
    if parts and draw(st.integers(0, 9)) == 0:
        i = draw(st.integers(0, len(parts) - 1))
        parts[i] = draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80"])) + parts[i]  # not UTF-8
    bom = codecs.BOM_UTF8 if draw(st.booleans()) else b""
    data = bom + b"".join(parts)
    k = draw(st.integers(0, len(parts)))
    start = len(bom) + sum(len(p) for p in parts[:k]) if k else 0
    return data, start, k + 1


_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(case=_file())
def test_plain_tokens_equal_the_line_split_reference(case: tuple[bytes, int, int]) -> None:
    data, start, first_line = case
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "l.txt"
        path.write_bytes(data)
        try:
            want = _reference_contents(_reference_text(path, start, first_line), first_line)
        except ExpungeError as exc:
            with pytest.raises(ExpungeError) as got_exc:
                read_tokens(path, "plain", start=start, first_line=first_line)
            assert str(got_exc.value) == str(exc)
            return
        got = read_tokens(path, "plain", start=start, first_line=first_line)
        assert (got.lines.tolist(), got.tokens.to_pylist()) == want
        assert got.tokens.type == pa.string()
        got.tokens.validate(full=True)
        # Digests, or the same error on the same line.
        try:
            ref = _reference_digests(want[1], want[0], path, 16)
        except ExpungeError as exc:
            with pytest.raises(ExpungeError) as got_exc:
                hex_digests(got, 16, "url_md5")
            assert str(got_exc.value) == str(exc)
            return
        digests = hex_digests(got, 16, "url_md5")
        assert digests.dtype == np.dtype("S16") and digests.flags.writeable
        assert digests.tobytes() == b"".join(ref)


@_SETTINGS
@given(
    lines=st.lists(
        st.tuples(st.sampled_from(["", " ", "\t"]), _BODY, st.sampled_from(["", " 0.9", " \r", "\r"])),
        max_size=20,
    ),
    crlf=st.booleans(),
)
def test_pytx_tokens_equal_the_line_split_reference(lines: list[tuple[str, str, str]], crlf: bool) -> None:
    """The threatexchange reader splits the same stripped lines as before (its own rules follow)."""
    text = ("\r\n" if crlf else "\n").join(f"{pad}url_md5 {body}{tail}" for pad, body, tail in lines)
    raw = text.encode()
    numbers, content = readers._line_contents(raw, 1)
    assert (numbers.tolist(), content.to_pylist()) == _reference_contents(text, 1)


_PERTURB = st.sampled_from(
    [
        b"",  # none: the regular path reads the file
        b"\n",  # a blank line among the values
        b"\r\n",
        b"#c\n",  # a comment among the values
        b" ",  # a padded value (prefix of a value line)
        b"\t",
        b"\xc3\xa9",  # non-ASCII at an edge
        b"x",  # a value a byte longer
        b"\r",  # a stray \r
    ]
)


@st.composite
def _regular_file(draw: st.DrawFn) -> tuple[bytes, bool]:
    """(file bytes, untouched): header lines, then values of one length and one line end, and maybe one
    perturbation that makes the file irregular."""
    header = draw(st.lists(st.sampled_from([b"", b"\r", b"# list", b"#", b"#\r"]), max_size=3))
    width = draw(st.integers(1, 6))
    odd = [b"#", b" ", b"\r", b"\xc3", b"\x7f"]  # bytes that make a value need trimming, or not UTF-8
    alphabet = st.sampled_from([b"a", b"F", b"0", b"~", *(odd if draw(st.booleans()) else [])])
    value = st.lists(alphabet, min_size=width, max_size=width).map(b"".join)
    values = draw(st.lists(value, min_size=1, max_size=12))
    eol = draw(st.sampled_from([b"\n", b"\r\n"]))
    lines = [*header, *values]
    perturb = draw(_PERTURB)
    if perturb:
        i = draw(st.integers(len(header), len(lines) - 1))
        lines[i] = perturb + lines[i] if draw(st.booleans()) else lines[i] + perturb
    data = b"".join(line + (b"\n" if line in header else eol) for line in lines)
    if draw(st.booleans()):
        data = data[: -len(eol)] + draw(st.sampled_from([b"", b"\r"]))  # the last line without its end
    return data, not perturb


@_SETTINGS
@given(case=_regular_file(), first_line=st.integers(1, 5))
def test_regular_files_equal_the_line_split_reference(case: tuple[bytes, bool], first_line: int) -> None:
    data, _ = case
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return
    numbers, content = readers._line_contents(data, first_line)
    assert (numbers.tolist(), content.to_pylist()) == _reference_contents(text, first_line)
    content.validate(full=True)


def test_a_hash_list_takes_the_regular_path() -> None:
    hexes = [f"{i:032x}" for i in range(50)]
    for data in (
        "\n".join(hexes),
        "\n".join(hexes) + "\n",
        "# SYNTHETIC\n\n" + "\r\n".join(hexes) + "\r\n",
        "#\r\n" + "\r\n".join(hexes) + "\r",
    ):
        raw = data.encode()
        buf = np.frombuffer(raw, dtype=np.uint8)
        got = readers._regular_contents(raw, buf, 1)
        assert got is not None
        assert (got[0].tolist(), got[1].to_pylist()) == _reference_contents(data, 1)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\n",
        b"\r\n",
        b"\r",
        b"#\n",
        b"# c\r\n# d",
        b"a" * 32,
        b"a" * 32 + b"\r",
        b"\r\n" + b"0" * 32 + b"\r\n",  # a blank CRLF line before a value: its \r is not the value's
        # More comment lines than the loop handles one by one.
        b"#x\r\n" * 100 + b"f" * 32 + b"\n",
        b"#x\n" * 100 + b"f" * 32 + b"\n#",
        b"".join(b"#%d\n%032x\r\n" % (i, i) for i in range(100)),
        b"\n\n" + b"c" * 32 + b"\n\n",
        b"a" * 32 + b"\r\r\n",
        b" " + b"a" * 32 + b"\n" + b"b" * 32,  # one padded line sends the file through the kernels
        # Files that look regular at first sight: the regular path must refuse them.
        b"abc\na\nb\n",  # two short lines fill one row of the grid
        b"abc\na\nb",  # ... or the tail
        b"ab\r\nabc\n",  # the first line ends in \r, the next does not
        b"ab\r\nabx",  # a tail whose last byte is not the \r
        b"ab\n#c\n",  # a comment among the values
        b"\rx\nab\n",  # a line that starts with \r is no blank header line
        b"#h\n\r\n\nab\ncd",  # blank and comment header lines, then values
    ],
)
def test_edge_files(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "l.txt"
    path.write_bytes(data)
    want = _reference_contents(_reference_text(path, 0, 1), 1)
    got = read_tokens(path, "plain")
    assert (got.lines.tolist(), got.tokens.to_pylist()) == want


def test_a_sliced_token_array_decodes_from_its_offset(tmp_path: Path) -> None:
    """Tokens that are a slice of a larger array (an offset into shared buffers) decode correctly."""
    path = tmp_path / "l.txt"
    hexes = [f"{i:032x}" for i in range(10)]
    path.write_text("\n".join(hexes))
    tok = read_tokens(path, "plain")
    part = Tokens(path, "plain", tok.lines[3:7], tok.tokens.slice(3, 4), None, {})
    assert hex_digests(part, 16, "url_md5").tolist() == [bytes.fromhex(h).rstrip(b"\0") for h in hexes[3:7]]


# --------------------------------------------------------------------------------------------------
# sorted_unique: the same bytes as numpy's sort of the byte strings

_PREFIXES = st.sampled_from([b"\x00" * 8, b"\xff" * 8, b"\x7f" + b"\x00" * 7, b"\x80" + b"\x00" * 7])


@settings(max_examples=200, deadline=None)
@given(data=st.data(), width=st.sampled_from([4, 8, 9, 16, 20, 32]))
def test_sorted_unique_equals_numpy_sort(data: st.DataObject, width: int) -> None:
    value = st.one_of(
        st.binary(min_size=width, max_size=width),
        st.tuples(_PREFIXES, st.binary(min_size=width, max_size=width)).map(lambda t: (t[0] + t[1])[:width]),
        st.sampled_from([b"\x00" * width, b"\xff" * width, b"\x01" + b"\x00" * (width - 1)]),
    )
    values = data.draw(st.lists(value, max_size=40))
    values += data.draw(st.lists(st.sampled_from(values), max_size=10)) if values else []
    raw = np.frombuffer(b"".join(values), dtype=f"S{width}") if values else np.empty(0, f"S{width}")
    want = np.sort(raw)
    if len(want) > 1:
        want = want[np.concatenate(([True], want[1:] != want[:-1]))]
    got = sorted_unique(raw.copy())
    assert got.dtype == want.dtype
    assert got.tobytes() == want.tobytes()


_WORD = st.lists(
    st.sampled_from(["url_md5", "a", "0f", " ", "  ", "\t", "\x0b", "\x0c", "\r", "\u3000", "é"]), max_size=8
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_WORD.map("".join), max_size=12), st.booleans())
def test_pytx_split_equals_the_regex_split(texts: list[str], sliced: bool) -> None:
    """The threatexchange split on one space is the regex split whenever it is taken; stripped lines as
    the reader hands them over (a slice too: an array with an offset)."""
    arr = pa.array([t.strip() for t in texts if t.strip()], pa.string())
    if sliced and len(arr) > 1:
        arr = arr.slice(1)
    want = pc.split_pattern_regex(arr, r"\s+", max_splits=2)
    assert readers._pytx_split(arr).to_pylist() == want.to_pylist()
