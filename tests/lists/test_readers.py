"""List-file readers: plain, CSV and python-threatexchange formats, detection, and refusal of bad files.

Every error must name the file and line but never quote the line: a bad line in a partner list may
itself be flagged material. Each bad line below carries a distinctive neutral word that must not
appear in the message.
"""

from __future__ import annotations

import codecs
import hashlib
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from expunge.errors import ExpungeError
from expunge.lists.readers import (
    CSV_VALUE_COLUMNS,
    ListFile,
    detect_format,
    hex_digests,
    read_list,
    read_tokens,
)

MARK = "zebrafish7731"  # a distinctive neutral token placed on bad lines
WORDS = ("apple", "river", "stone", "cloud", "maple", "harbor", "lantern", "meadow")


def _hex(seed: str, algo: str = "md5") -> str:
    return hashlib.new(algo, seed.encode()).hexdigest()


def _write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def _refused(path: Path, *, fmt: str = "auto", column: str | None = None, where: str | None = None) -> str:
    """Read a list that must be refused; check the error names the file (and place), return the text."""
    with pytest.raises(ExpungeError) as info:
        read_list(path, fmt, column)
    err = info.value
    text = str(err)
    assert err.path == str(path)
    assert str(path) in text
    if where is not None:
        assert err.where == where
        assert where in text
    assert MARK not in text
    return text


def _tokens(lf: ListFile) -> list[str]:
    return [e.token for e in lf.entries]


# ------------------------------------------------------------------------------------------------
# plain text
# ------------------------------------------------------------------------------------------------


def test_plain_skips_comments_and_blank_lines_and_keeps_line_numbers(tmp_path: Path) -> None:
    a, b, c = _hex("a"), _hex("b"), _hex("c")
    text = f"# partner list, generated\n\n{a}\n   \n  {b}  \n\t# indented comment\n{c}\n\n"
    lf = read_list(_write(tmp_path, "list.txt", text))
    assert lf.format == "plain"
    assert [(e.line, e.token) for e in lf.entries] == [(3, a), (5, b), (7, c)]
    assert all(e.signal is None and e.category is None for e in lf.entries)
    assert lf.signal is None


def test_plain_with_bom_and_crlf(tmp_path: Path) -> None:
    a, b = _hex("a"), _hex("b")
    data = codecs.BOM_UTF8 + f"# comment\r\n{a}\r\n\r\n{b}\r\n".encode()
    lf = read_list(_write(tmp_path, "list.txt", data))
    assert [(e.line, e.token) for e in lf.entries] == [(2, a), (4, b)]
    assert not any("\r" in t or "\ufeff" in t for t in _tokens(lf))


def test_bom_on_first_content_line_is_not_part_of_the_value(tmp_path: Path) -> None:
    a = _hex("a")
    lf = read_list(_write(tmp_path, "list.txt", codecs.BOM_UTF8 + a.encode()))
    assert _tokens(lf) == [a]  # no trailing newline either


def test_plain_only_splits_on_newline(tmp_path: Path) -> None:
    # \x0b, \x1c and \u2028 are line breaks for str.splitlines but not for list files.
    a = _hex("a")
    lf = read_list(_write(tmp_path, "list.txt", f"{a}\nx\x0by\x1cz\u2028w\n{a}\n"))
    assert [e.line for e in lf.entries] == [1, 2, 3]
    assert lf.entries[1].token == "x\x0by\x1cz\u2028w"


def test_empty_and_comment_only_files_have_no_entries(tmp_path: Path) -> None:
    assert read_list(_write(tmp_path, "empty.txt", b"")).entries == []
    assert read_list(_write(tmp_path, "c.txt", "# only\n\n#comments\n")).entries == []
    assert read_list(_write(tmp_path, "c.csv", "\n\n  \n")).entries == []
    # CSV has no comment syntax: a '#' line is its header, which names no hash column.
    _refused(_write(tmp_path, "h.csv", "# only\n\n"), where="line 1")


def test_invalid_utf8_names_the_line_without_quoting_it(tmp_path: Path) -> None:
    a = _hex("a")
    data = (
        codecs.BOM_UTF8 + f"{a}\r\n# note\r\n".encode() + MARK.encode() + b"\xff\xfe" + b"\r\n" + a.encode()
    )
    text = _refused(_write(tmp_path, "list.txt", data), where="line 3")
    assert "UTF-8" in text


@pytest.mark.parametrize("fmt", ["plain", "csv", "pytx", "auto"])
def test_invalid_utf8_is_refused_by_every_reader(tmp_path: Path, fmt: str) -> None:
    data = b"md5\n" + _hex("a").encode() + b"\n" + MARK.encode() + b"\xc3\x28\n"
    _refused(_write(tmp_path, "list.csv" if fmt == "csv" else "list.txt", data), fmt=fmt, where="line 3")


def test_missing_file_and_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(ExpungeError, match="not found"):
        read_list(tmp_path / "absent.txt")
    path = _write(tmp_path, "list.txt", _hex("a"))
    with pytest.raises(ExpungeError, match="unknown list format") as info:
        read_list(path, "yaml")
    assert info.value.path == str(path)


# ------------------------------------------------------------------------------------------------
# CSV
# ------------------------------------------------------------------------------------------------


def test_csv_detects_value_column_and_reads_category(tmp_path: Path) -> None:
    a, b = _hex("a", "sha1"), _hex("b", "sha1")
    text = f"\nid,SHA1,category\n1,{a},alpha\n\n2, {b} ,\n"
    lf = read_list(_write(tmp_path, "list.csv", text))
    assert lf.format == "csv"
    assert [(e.line, e.token, e.category) for e in lf.entries] == [(3, a, "alpha"), (5, b, None)]


def test_csv_detection_prefers_the_listed_order(tmp_path: Path) -> None:
    a = _hex("a")
    # "hash" comes before "url" in CSV_VALUE_COLUMNS, whatever the header order.
    lf = read_list(_write(tmp_path, "list.csv", f"url,hash\nhttp://a.example/,{a}\n"))
    assert _tokens(lf) == [a]
    assert CSV_VALUE_COLUMNS.index("hash") < CSV_VALUE_COLUMNS.index("url")


def test_csv_named_column(tmp_path: Path) -> None:
    a, b = _hex("a"), _hex("b")
    path = _write(tmp_path, "list.csv", f"md5,checksum\n{a},{b}\n")
    assert _tokens(read_list(path)) == [a]
    assert _tokens(read_list(path, column="checksum")) == [b]
    assert _tokens(read_list(path, column="CHECKSUM")) == [b]  # case-insensitive fallback


def test_csv_quoted_fields_and_crlf_and_bom(tmp_path: Path) -> None:
    a = _hex("a")
    data = codecs.BOM_UTF8 + f'"md5","category"\r\n"{a}","river, stone"\r\n'.encode()
    lf = read_list(_write(tmp_path, "list.csv", data))
    assert [(e.token, e.category) for e in lf.entries] == [(a, "river, stone")]


def test_csv_wrong_field_count_names_line(tmp_path: Path) -> None:
    a = _hex("a")
    path = _write(tmp_path, "list.csv", f"md5,category\n{a},alpha\n\n{a}{MARK},alpha,extra\n")
    text = _refused(path, where="line 4")
    assert "expected 2 CSV fields, found 3" in text


def test_csv_too_few_fields(tmp_path: Path) -> None:
    path = _write(tmp_path, "list.csv", f"md5,category\n{MARK}\n")
    _refused(path, where="line 2")


def test_csv_empty_value_names_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "list.csv", f"md5,category\n ,{MARK}\n")
    _refused(path, where="line 2")


def test_csv_without_a_value_column(tmp_path: Path) -> None:
    path = _write(tmp_path, "list.csv", f"\nid,{MARK}\n1,2\n")
    text = _refused(path, where="line 2")
    assert "--column" in text


def test_csv_named_column_missing(tmp_path: Path) -> None:
    path = _write(tmp_path, "list.csv", f"md5\n{_hex('a')}\n")
    text = _refused(path, column="checksum", where="line 1")
    assert "checksum" in text


def test_csv_malformed_line(tmp_path: Path) -> None:
    # A carriage return inside an unquoted field is a csv.Error; it must become an ExpungeError.
    path = _write(tmp_path, "list.csv", f"md5\n{MARK}\r{MARK}\n")
    _refused(path, where="line 2")


def test_csv_malformed_header(tmp_path: Path) -> None:
    path = _write(tmp_path, "list.csv", f"\n\nmd5\r{MARK},category\n{_hex('a')},alpha\n")
    _refused(path, where="line 3")


def test_csv_oversized_field(tmp_path: Path) -> None:
    big = MARK + "a" * 200_000  # beyond the csv module's field size limit
    _refused(_write(tmp_path, "list.csv", f"md5\n{big}\n"), where="line 2")
    _refused(_write(tmp_path, "head.csv", f"md5,{big}\n1,2\n"), where="line 1")


# ------------------------------------------------------------------------------------------------
# python-threatexchange format
# ------------------------------------------------------------------------------------------------


def test_pytx_lines(tmp_path: Path) -> None:
    a, b = _hex("a"), _hex("b")
    text = f"# pytx export\nurl_md5 {a}\n\nURL_MD5\t{b} extra fields ignored\n"
    lf = read_list(_write(tmp_path, "export.txt", text))
    assert lf.format == "pytx"
    assert [(e.line, e.signal, e.token) for e in lf.entries] == [(2, "url_md5", a), (4, "url_md5", b)]
    assert lf.signal == "url_md5"


def test_pytx_signal_aliases(tmp_path: Path) -> None:
    lf = read_list(_write(tmp_path, "x.txt", f"photo_md5 {_hex('a')}\n"))
    assert lf.signal == "image_md5"


def test_pytx_mixed_signal_types_names_the_line(tmp_path: Path) -> None:
    text = f"url_md5 {_hex('a')}\n# c\nurl_sha1 {_hex('b', 'sha1')}{MARK}\n"
    text_err = _refused(_write(tmp_path, "x.txt", text), where="line 3")
    assert "mixed signal types" in text_err


def test_pytx_unknown_signal_type(tmp_path: Path) -> None:
    text = f"url_md5 {_hex('a')}\n{MARK}_type {_hex('b')}\n"
    _refused(_write(tmp_path, "x.txt", text), fmt="pytx", where="line 2")


def test_pytx_line_without_value(tmp_path: Path) -> None:
    text = f"url_md5 {_hex('a')}\n{MARK}\n"
    _refused(_write(tmp_path, "x.txt", text), where="line 2")


# ------------------------------------------------------------------------------------------------
# detection
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("a.csv", "md5\nx\n", "csv"),
        ("a.CSV", "md5\nx\n", "csv"),
        ("a.txt", "url_md5 0123\n", "pytx"),
        ("a.txt", "# header\n\n  URL_SHA256 0123\n", "pytx"),
        ("a.txt", "domain river.example\n", "pytx"),
        ("a.txt", "0123456789abcdef\n", "plain"),
        ("a.txt", "http://a.example/x y\n", "plain"),  # two words, but not a signal type
        ("a.txt", "url_md5\n", "plain"),  # a signal name alone is not a pytx line
        ("a.txt", "", "plain"),
        ("a.lst", "# nothing\n", "plain"),
    ],
)
def test_detect_format(tmp_path: Path, name: str, text: str, expected: str) -> None:
    assert detect_format(_write(tmp_path, name, text)) == expected


def test_explicit_format_overrides_detection(tmp_path: Path) -> None:
    a = _hex("a")
    path = _write(tmp_path, "a.txt", f"md5,category\n{a},alpha\n")
    assert read_list(path).format == "csv"  # a CSV header in a .txt is detected (adversary, issue 8)
    assert [e.token for e in read_list(path, "plain").entries] == ["md5,category", f"{a},alpha"]
    lf = read_list(path, "csv")
    assert [(e.token, e.category) for e in lf.entries] == [(a, "alpha")]


# ------------------------------------------------------------------------------------------------
# properties
# ------------------------------------------------------------------------------------------------

_FRAGMENTS = st.sampled_from(
    [
        "\n", "\r\n", "\r", ",", '"', "#", " ", "\t", "url_md5 ", "url_sha1 ", "domain ", "md5", "hash",
        "category", "0123456789abcdef", "ff", "http://a.example/", "\ufeff", "\x00", "\x0b", "é", "\u2028",
    ]
)  # fmt: skip
_TEXTS = st.lists(st.one_of(_FRAGMENTS, st.text(max_size=8)), max_size=30).map("".join)
_BYTES = st.one_of(
    st.binary(max_size=200),
    _TEXTS.map(lambda t: t.encode("utf-8")),
    st.tuples(_TEXTS, st.binary(max_size=4), _TEXTS).map(lambda p: p[0].encode() + p[1] + p[2].encode()),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=_BYTES,
    bom=st.booleans(),
    suffix=st.sampled_from([".txt", ".csv"]),
    fmt=st.sampled_from(["auto", "plain", "csv", "pytx"]),
    column=st.sampled_from([None, "md5", "category"]),
)
def test_any_file_parses_or_is_refused_cleanly(
    data: bytes, bom: bool, suffix: str, fmt: str, column: str | None
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"list{suffix}"
        path.write_bytes((codecs.BOM_UTF8 if bom else b"") + data)
        try:
            lf = read_list(path, fmt, column)
        except ExpungeError as err:
            assert err.path == str(path)
            assert "\n" not in str(err)
            return
        assert lf.format in ("plain", "csv", "pytx")
        for e in lf.entries:
            assert e.token and e.token == e.token.strip()
            assert not (lf.format == "plain" and e.token.startswith("#"))
            assert e.line >= 1


_ALGOS = {"md5": 16, "sha1": 20, "sha256": 32}
_BLANK = st.sampled_from(["", " ", "\t", "  \t  "])
_COMMENT = st.builds(
    lambda pad, body: pad + "#" + body,
    st.sampled_from(["", " ", "\t"]),
    st.text(st.characters(blacklist_characters="\n", blacklist_categories=("Cs",)), max_size=20),
)


@st.composite
def _valid_list(draw: st.DrawFn) -> tuple[str, bytes, list[tuple[int, bytes, str | None]], str | None]:
    """(file suffix, file bytes, expected [(line, digest, category)], column override)."""
    algo = draw(st.sampled_from(sorted(_ALGOS)))
    width = _ALGOS[algo]
    fmt = draw(st.sampled_from(["plain", "pytx", "csv"]))
    digests = draw(st.lists(st.binary(min_size=width, max_size=width), max_size=25))
    lines: list[str] = []
    expected: list[tuple[int, bytes, str | None]] = []
    column: str | None = None

    def filler() -> None:
        # CSV has no comment syntax: only blank lines may pad it.
        pads = _BLANK if fmt == "csv" else st.one_of(_BLANK, _COMMENT)
        for text in draw(st.lists(pads, max_size=3)):
            lines.append(text)

    filler()
    if fmt == "csv":
        value_col = draw(st.sampled_from([algo, algo.upper(), "hash", "Digest", "checksum"]))
        if value_col == "checksum":
            column = "checksum"
        lines.append(f"id,{value_col},category")
    for i, d in enumerate(digests):
        filler()
        token = d.hex().upper() if draw(st.booleans()) else d.hex()
        pad = draw(st.sampled_from(["", " ", "\t"]))
        category = None
        if fmt == "plain":
            lines.append(pad + token + pad)
        elif fmt == "pytx":
            tail = draw(st.sampled_from(["", " 0.9", "\tfrom partner"]))
            lines.append(f"{pad}url_{algo} {token}{tail}")
        else:
            category = draw(st.sampled_from([None, *WORDS]))
            lines.append(f"{i},{pad}{token}{pad},{category or ''}")
        expected.append((len(lines), d, category))
    filler()
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    text = eol.join(lines) + (eol if draw(st.booleans()) else "")
    bom = codecs.BOM_UTF8 if draw(st.booleans()) else b""
    return (".csv" if fmt == "csv" else ".txt"), bom + text.encode("utf-8"), expected, column


@settings(max_examples=200, deadline=None)
@given(case=_valid_list())
def test_valid_lists_round_trip(
    case: tuple[str, bytes, list[tuple[int, bytes, str | None]], str | None],
) -> None:
    suffix, data, expected, column = case
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"list{suffix}"
        path.write_bytes(data)
        lf = read_list(path, column=column)
    got = [(e.line, bytes.fromhex(e.token), e.category) for e in lf.entries]
    assert got == expected


# ------------------------------------------------------------------------------------------------
# the columnar reader used for imports agrees with the reference reader, line for line
# ------------------------------------------------------------------------------------------------


_LINE = st.one_of(
    st.just(""),
    st.just("   "),
    st.text(alphabet="# abcdef0123456789", min_size=1, max_size=20).map(lambda t: "#" + t),
    st.binary(min_size=16, max_size=16).map(lambda b: b.hex()),
    st.binary(min_size=16, max_size=16).map(lambda b: "  " + b.hex().upper() + "\t"),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(_LINE, max_size=30), crlf=st.booleans(), bom=st.booleans(), pytx=st.booleans())
def test_read_tokens_agrees_with_read_list(
    tmp_path_factory: pytest.TempPathFactory, lines: list[str], crlf: bool, bom: bool, pytx: bool
) -> None:
    path = tmp_path_factory.mktemp("tok") / "l.txt"
    body = [
        f"url_md5 {line.strip()}" if pytx and line.strip() and not line.strip().startswith("#") else line
        for line in lines
    ]
    text = ("\r\n" if crlf else "\n").join(body)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    fmt = "pytx" if pytx else "plain"
    ref = read_list(path, fmt)
    got = read_tokens(path, fmt)
    assert got.lines.tolist() == [e.line for e in ref.entries]
    assert got.tokens.to_pylist() == [e.token for e in ref.entries]
    assert got.signal == ref.signal
    digests = hex_digests(got, 16, "url_md5")
    assert [bytes(d).ljust(16, b"\0") for d in digests.tolist()] == [
        bytes.fromhex(e.token) for e in ref.entries
    ]


def test_hex_digests_names_the_first_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "l.txt"
    path.write_text("a" * 32 + "\n# note zebrafish7731\n" + "b" * 31 + "\n")
    with pytest.raises(ExpungeError) as err:
        hex_digests(read_tokens(path), 16, "url_md5")
    assert "line 3" in str(err.value) and "32 hex digits" in str(err.value)


_CSV_LINE = st.one_of(
    st.just(""),
    st.just("  "),
    st.tuples(st.binary(min_size=16, max_size=16), st.integers(0, 99), st.sampled_from(["", "a", " b "])).map(
        lambda t: f"{t[0].hex()},{t[1]},{t[2]}"
    ),
    st.tuples(st.binary(min_size=16, max_size=16), st.integers(0, 99)).map(
        lambda t: f" {t[0].hex().upper()} ,{t[1]},c"
    ),
    st.just(",7,a"),  # an empty value: refused, naming the line
    st.just("ab,1"),  # a field short: refused, naming the line
    st.just("#cd,2,x"),  # CSV has no comments: a data row
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(_CSV_LINE, max_size=25), crlf=st.booleans(), bom=st.booleans())
def test_columnar_csv_agrees_with_read_list(
    tmp_path_factory: pytest.TempPathFactory, lines: list[str], crlf: bool, bom: bool
) -> None:
    """The Arrow CSV path (daily re-imports of million-line files) keeps the reference's rules: the same
    tokens, line numbers and categories, or the same error on the same line."""
    path = tmp_path_factory.mktemp("csv") / "l.csv"
    text = ("\r\n" if crlf else "\n").join(["md5,id,category", *lines])
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    try:
        ref = read_list(path, "csv")
    except ExpungeError as exc:
        with pytest.raises(ExpungeError) as got_exc:
            read_tokens(path, "csv")
        assert str(got_exc.value) == str(exc)
        return
    got = read_tokens(path, "csv")
    assert got.lines.tolist() == [e.line for e in ref.entries]
    assert got.tokens.to_pylist() == [e.token for e in ref.entries]
    cats: dict[str, int] = {}
    for e in ref.entries:
        if e.category:
            cats[e.category] = cats.get(e.category, 0) + 1
    assert got.categories == cats
