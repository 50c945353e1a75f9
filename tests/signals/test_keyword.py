"""Keyword signal: normalisation rules, whole-word Aho-Corasick matching, term list reading.

Neutral words only. Term lists are sensitive, so every error test also checks that the message does not
quote the term it is about.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from expunge.errors import ExpungeError
from expunge.signals.keyword import KeywordMatcher, TermList, normalise, read_terms

FULLWIDTH = {c: chr(ord(c) + 0xFEE0) for c in "TEAPOTVILN"}  # U+FF34 for T


def wide(text: str) -> str:
    return "".join(FULLWIDTH[c] for c in text)


def norm(*texts: str | None) -> list[str | None]:
    return normalise(pa.array(list(texts), pa.string())).to_pylist()


def one(text: str) -> str | None:
    return norm(text)[0]


def term_list(*terms: str) -> TermList:
    normal = sorted(set(n for n in norm(*terms) if n))
    return TermList(tuple(normal), ("",) * len(normal), "test")


def found(matcher: KeywordMatcher, captions: Sequence[str | None]) -> list[tuple[int, str]]:
    rows, idx = matcher.match(pa.array(captions, pa.string()))
    return [(int(r), matcher.terms.terms[i]) for r, i in zip(rows, idx, strict=True)]


# ---------------------------------------------------------------------------------------------------
# Normalisation, rule by rule


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        # NFKC: full-width letters, ligatures, superscripts
        (wide("TEAPOT"), "teapot"),
        ("\ufb01ddle", "fiddle"),
        ("violin\u00b2", "violin2"),
        # case folding, including the full foldings Arrow's lowercase lacks
        ("TeaPot", "teapot"),
        ("Straße", "strasse"),
        ("STRASSE", "strasse"),
        ("ΣΟΦΟΣ", "σοφοσ"),
        ("σοφος", "σοφοσ"),
        # diacritics, precomposed and decomposed
        ("Téàpöt", "teapot"),
        ("te\u0301apo\u0308t", "teapot"),
        ("violín", "violin"),
        # format characters are deleted
        ("tea\u200bpot", "teapot"),
        ("tea\u00adpot", "teapot"),
        ("\ufeffteapot", "teapot"),
        # whitespace and controls: one space, ends trimmed
        ("  tea \t\n pot  ", "tea pot"),
        ("tea\u00a0pot", "tea pot"),
        ("tea\u3000pot", "tea pot"),
        ("tea\x00pot", "tea pot"),
        # separators between single letters
        ("t.e.a.p.o.t", "teapot"),
        ("t-e-a-p-o-t", "teapot"),
        ("t_e_a_p_o_t", "teapot"),
        ("t e a p o t", "teapot"),
        ("t*e*a*p*o*t", "teapot"),
        ("t·e·a·p·o·t", "teapot"),
        ("T.E-A_P*O·T", "teapot"),
        ("a t.e.a.p.o.t here", "a teapot here"),  # marks first, so the article stays a word
        ("my t.e.a.p.o.t.", "my teapot."),
        ("t..e..a", "t..e..a"),  # one separator between letters, not two
        ("tea. pot", "tea. pot"),
        ("1.5 kg", "1.5 kg"),  # numbers are not spelled-out words
        ("3 4 5", "3 4 5"),
        # digit-for-letter swaps inside tokens that hold a letter
        ("t3ap0t", "teapot"),
        ("V10L1N", "violin"),
        ("l1ghth0u5e", "lighthouse"),
        ("te@pot", "teapot"),
        ("ca$h", "cash"),
        ("2024", "2024"),
        ("in 2024, 7 days", "in 2024, 7 days"),
        ("a 7", "at"),  # single characters with a letter among them are a spelled-out word
        ("@teapot", "@teapot"),  # a handle: the "@" is not inside the token
        ("teapot$", "teapot$"),
        ("teapot-2024", "teapot-2024"),
        # both together
        ("T.3.A.P.0.T", "teapot"),
        ("t 3 a p 0 t", "teapot"),
        # recomposition after the mark strip
        ("가", "가"),
        ("\u1100.\u1161", "가"),
    ],
)
def test_normalisation_rules(raw: str, want: str) -> None:
    assert one(raw) == want


def test_nulls_and_non_utf8_become_null() -> None:
    raw = pa.array([b"Teapot", None, b"\xff\xfeviolin", b""], pa.binary())
    out = normalise(raw)
    assert out.type == pa.string()
    assert out.to_pylist() == ["teapot", None, None, ""]


def test_types_kept_and_empty_and_chunked() -> None:
    large = normalise(pa.array(["A B"], pa.large_string()))
    assert large.type == pa.large_string()
    assert large.to_pylist() == ["ab"]
    assert len(normalise(pa.array([], pa.string()))) == 0
    chunked = pa.chunked_array([pa.array(["Teapot"]), pa.array(["VIOLIN", None])])
    assert normalise(chunked).to_pylist() == ["teapot", "violin", None]
    assert normalise(pa.nulls(2)).to_pylist() == [None, None]


def test_ascii_and_non_ascii_rows_mixed_keep_their_order() -> None:
    raw = ["Teapot", "Téàpöt", None, "VIOLIN", wide("VIOLIN"), "t.e.a"]
    assert norm(*raw) == ["teapot", "teapot", None, "violin", "violin", "tea"]


# ---------------------------------------------------------------------------------------------------
# Properties

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TERMS = ("lighthouse", "teapot", "violin", "garden", "harbour")
NEUTRAL = ("morning", "river", "yellow", "bicycle", "window", "cloud", "wooden", "sunny", "old", "blue")
SWAP_BACK = {"o": "0", "i": "1", "e": "3", "a": "4", "s": "5", "t": "7"}
MARKS = ("\u0301", "\u0300", "\u0308", "\u0302", "\u0327", "")


@FAST
@given(st.lists(st.one_of(st.none(), st.text(max_size=30)), max_size=25))
def test_normalise_is_idempotent(texts: list[str | None]) -> None:
    once = normalise(pa.array(texts, pa.string()))
    assert normalise(once).to_pylist() == once.to_pylist()
    assert [t is None for t in once.to_pylist()] == [t is None for t in texts]


@FAST
@given(
    st.lists(
        st.text(alphabet="teapotviolnghus.-_ *·0134578@$ÉéÀàÖö\u0301\u200b ", max_size=20),
        max_size=25,
    )
)
def test_normalise_is_idempotent_on_spelling_games(texts: list[str]) -> None:
    once = normalise(pa.array(texts, pa.string()))
    assert normalise(once).to_pylist() == once.to_pylist()


@st.composite
def disguised(draw: st.DrawFn, term: str) -> str:
    chars = []
    for char in term:
        if char in SWAP_BACK and draw(st.booleans()):
            chars.append(SWAP_BACK[char])
            continue
        char = char.upper() if draw(st.booleans()) else char
        chars.append(
            unicodedata.normalize(draw(st.sampled_from(["NFC", "NFD"])), char + draw(st.sampled_from(MARKS)))
        )
    if all(c in "0134578" for c in chars):
        chars[0] = term[0]  # a token of digits only is a number, not a spelled-out word
    separator = draw(st.sampled_from(["", "", ".", "-", "_", " ", "*", "·"]))
    return separator.join(chars)


@st.composite
def caption_with_term(draw: st.DrawFn) -> tuple[str, str]:
    term = draw(st.sampled_from(TERMS))
    before = draw(st.lists(st.sampled_from(NEUTRAL), max_size=4))
    after = draw(st.lists(st.sampled_from(NEUTRAL), max_size=4))
    left = draw(st.sampled_from([" ", ", ", " (", " - ", "\n"]))
    right = draw(st.sampled_from([" ", ", ", ") ", "! ", "\t"]))
    text = " ".join(before) + left + draw(disguised(term)) + right + " ".join(after)
    return text, term


@FAST
@given(st.lists(caption_with_term(), min_size=1, max_size=10))
def test_a_disguised_term_is_found(cases: list[tuple[str, str]]) -> None:
    matcher = KeywordMatcher(term_list(*TERMS))
    got = set(found(matcher, [text for text, _ in cases]))
    for row, (_, term) in enumerate(cases):
        assert (row, term) in got


@FAST
@given(
    st.lists(
        st.tuples(
            st.sampled_from(TERMS),
            st.text(alphabet="abcdxyz09", max_size=4),
            st.text(alphabet="abcdxyz09", max_size=4),
            st.booleans(),
        ).filter(lambda t: bool(t[1] or t[2])),
        min_size=1,
        max_size=10,
    )
)
def test_a_term_inside_a_longer_word_is_not_found(cases: list[tuple[str, str, str, bool]]) -> None:
    matcher = KeywordMatcher(term_list(*TERMS))
    captions = [f"old {pre}{term.upper() if upper else term}{post} river" for term, pre, post, upper in cases]
    assert found(matcher, captions) == []


@FAST
@given(st.lists(st.one_of(st.none(), st.sampled_from(TERMS), st.sampled_from(NEUTRAL), st.text(max_size=12))))
def test_nulls_never_match_and_batches_equal_rows_alone(captions: list[str | None]) -> None:
    matcher = KeywordMatcher(term_list(*TERMS))
    batch = found(matcher, captions)
    alone = [(row, term) for row, text in enumerate(captions) for _, term in found(matcher, [text])]
    assert batch == alone
    assert all(captions[row] is not None for row, _ in batch)


# ---------------------------------------------------------------------------------------------------
# Matching


def test_whole_words_only() -> None:
    matcher = KeywordMatcher(term_list("teapot"))
    captions = ["teapots", "minteapot", "teapotting", "teapot2", "éteapot", "ξteapot", "teapotè", "a teapot"]
    assert found(matcher, captions) == [(7, "teapot")]
    hits = ["teapot!", "(teapot)", "teapot-shaped", "teapot_x", "teapot—", "«teapot»", "teapot😀", "TEAPOT"]
    assert found(matcher, hits) == [(i, "teapot") for i in range(len(hits))]


def test_multi_word_and_overlapping_terms_and_one_pair_per_row() -> None:
    matcher = KeywordMatcher(term_list("tea pot", "pot", "violin"))
    got = found(matcher, ["a tea   pot", "tea\npot and pot", "violin violin VIOLIN", "teapot"])
    assert got == [(0, "pot"), (0, "tea pot"), (1, "pot"), (1, "tea pot"), (2, "violin")]


def test_result_types_and_order() -> None:
    matcher = KeywordMatcher(term_list("violin", "teapot"))
    rows, idx = matcher.match(pa.array(["violin teapot", "", "teapot", None, "violin"]))
    assert rows.dtype == np.int64
    assert idx.dtype == np.int32
    assert rows.tolist() == [0, 0, 2, 4]
    assert [matcher.terms.terms[i] for i in idx] == ["teapot", "violin", "teapot", "violin"]


def test_no_match_across_rows() -> None:
    matcher = KeywordMatcher(term_list("teapot", "tea pot"))
    assert found(matcher, ["old tea", "pot", "tea", " pot", "x tea", "potx"]) == []


def test_nulls_non_utf8_sliced_and_large_input() -> None:
    matcher = KeywordMatcher(term_list("violin"))
    raw = pa.array([b"violin", None, b"\xffviolin", b"a violin"], pa.binary())
    rows, _ = matcher.match(raw)
    assert rows.tolist() == [0, 3]
    rows, _ = matcher.match(raw.slice(1))
    assert rows.tolist() == [2]
    rows, _ = matcher.match(pa.array(["VIOLIN", "x"], pa.large_string()))
    assert rows.tolist() == [0]
    rows, _ = matcher.match(pa.array([None, None], pa.string()))
    assert rows.tolist() == []
    rows, _ = matcher.match(pa.array([], pa.string()))
    assert rows.tolist() == []


def test_scripts_without_spaces_need_no_boundary() -> None:
    matcher = KeywordMatcher(term_list("茶壶", "teapot"))
    assert found(matcher, ["我的茶壶很好", "我的teapot很好"]) == [(0, "茶壶")]


def test_empty_term_list_matches_nothing() -> None:
    matcher = KeywordMatcher(TermList((), (), "none"))
    rows, idx = matcher.match(pa.array(["teapot"]))
    assert rows.tolist() == [] and idx.tolist() == []


# ---------------------------------------------------------------------------------------------------
# Term lists


def write(tmp_path: Path, name: str, data: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def test_plain_list_normalised_deduplicated_sorted(tmp_path: Path) -> None:
    data = "\ufeffViolin\r\nTeapot\n\n   \nTÉAPOT\nt.e.a.p.o.t\nlighthouse\n"
    path = write(tmp_path, "terms.txt", data)
    terms = read_terms(path)
    assert terms.terms == ("lighthouse", "teapot", "violin")
    assert terms.categories == ("", "", "")
    assert terms.sha256 == hashlib.sha256(data.encode()).hexdigest()
    assert terms.term_ids.dtype == np.dtype("S32")
    assert terms.term_ids.tolist() == [hashlib.sha256(t.encode()).digest() for t in terms.terms]
    assert "teapot" not in repr(terms) and "violin" not in repr(terms)


def test_csv_with_category(tmp_path: Path) -> None:
    data = 'id,Category,term\n1,kitchen,Teapot\n2,music,"violin"\n3,music,TEAPOT\n4,,lighthouse\n'
    terms = read_terms(write(tmp_path, "terms.csv", data))
    assert terms.terms == ("lighthouse", "teapot", "violin")
    assert terms.categories == ("", "kitchen|music", "music")


def test_csv_without_category(tmp_path: Path) -> None:
    terms = read_terms(write(tmp_path, "terms.CSV", "term\nviolin\n\nteapot\n"))
    assert terms.terms == ("teapot", "violin")
    assert terms.categories == ("", "")


@pytest.mark.parametrize(
    ("name", "data", "line", "message"),
    [
        ("t.txt", b"violin\nteapot\nlighthouse\xff\n", 3, "not UTF-8"),
        ("t.txt", "violin\nlighthouse\x01\n", 2, "control character"),
        ("t.txt", "violin\nteapot\n\nlighthouse\u200b\u200b\n\u200b\n", 5, "empty after normalisation"),
        ("t.txt", "violin\n\u0301\u0301\n", 2, "empty after normalisation"),
        ("t.csv", "word,category\nlighthouse,x\n", 1, "no 'term' column"),
        ("t.csv", "term,category\nviolin,a\nlighthouse,b,c\n", 3, "fields"),
        ("t.csv", 'term\nviolin\n"lighthouse\n', 3, "malformed CSV"),
        ("t.csv", 'term\nviolin\n"light"house"\n', 3, "malformed CSV"),
        ("t.csv", "term,category\nviolin,a\n,lighthouse\n", 3, "empty after normalisation"),
        ("t.csv", 'term\nviolin\n"light\nhouse"\n', 4, "control character"),
    ],
)
def test_bad_lines_are_refused_by_file_and_line_only(
    tmp_path: Path, name: str, data: str | bytes, line: int, message: str
) -> None:
    path = write(tmp_path, name, data)
    with pytest.raises(ExpungeError) as caught:
        read_terms(path)
    err = caught.value
    assert err.path == str(path)
    assert err.where == f"line {line}"
    assert message in err.message
    text = str(err)
    for word in ("lighthouse", "light", "house", "violin"):
        assert word not in text.replace(str(tmp_path), "")


@pytest.mark.parametrize(
    ("name", "data"), [("t.txt", ""), ("t.txt", "\n  \n\r\n"), ("t.csv", ""), ("t.csv", "term\n\n")]
)
def test_a_list_with_no_terms_is_refused(tmp_path: Path, name: str, data: str) -> None:
    path = write(tmp_path, name, data)
    with pytest.raises(ExpungeError, match="list has no terms") as caught:
        read_terms(path)
    assert caught.value.path == str(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ExpungeError, match="cannot read term list"):
        read_terms(tmp_path / "absent.txt")


def test_read_terms_then_match(tmp_path: Path) -> None:
    terms = read_terms(write(tmp_path, "terms.csv", "term,category\nTea Pot,kitchen\nviolin,music\n"))
    matcher = KeywordMatcher(terms)
    rows, idx = matcher.match(pa.array(["my T.E.A pot", "v1ol1n case", "teapot"]))
    assert rows.tolist() == [0, 1]
    assert [terms.categories[i] for i in idx] == ["kitchen", "music"]


def test_large_batches_take_the_prefilter_and_agree_with_small_ones() -> None:
    # Batches of 1,024 rows or more send only the rows RE2 picks to the Python rules; smaller ones send
    # every row. The pick must never miss a row the rules change.
    base = [
        "T.E.A.P.O.T",
        "a t3ap0t",
        "1.5 kg",
        "v i o l i n",
        "@teapot te@pot",
        "Téàpöt",
        None,
        "2024 1950s",
    ]
    base += [
        wide("VIOLIN"),
        "t 3 a",
        "x-y-z",
        "garden",
        "\u1100.\u1161",
        "ca$h $5",
        "e.g. this",
        "tea\u200bpot",
    ]
    big = base * 80
    assert len(big) >= 1024
    assert normalise(pa.array(big)).to_pylist() == norm(*base) * 80


@FAST
@given(
    st.lists(
        st.one_of(
            st.text(alphabet="teapotviolnghusжЖ茶가.-_ *·0134578@$ÉéÀàÖö\u0301\u200b\u00a0\t", max_size=16),
            st.text(max_size=16),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_the_prefilter_never_misses_a_row(texts: list[str]) -> None:
    padded = texts + ["garden"] * 1024  # large enough for the prefiltered path
    assert normalise(pa.array(padded)).to_pylist()[: len(texts)] == norm(*texts)


def test_bytes_under_null_slots_are_never_searched() -> None:
    # Arrow does not promise what a null slot's bytes hold; here they spell a term.
    validity = pa.py_buffer(np.packbits(np.array([0, 1, 0, 1], dtype=bool), bitorder="little").tobytes())
    offsets = pa.py_buffer(np.array([0, 6, 12, 18, 24], dtype=np.int32).tobytes())
    data = pa.py_buffer(b"teapotgardenteapotviolin")
    captions = pa.Array.from_buffers(pa.string(), 4, [validity, offsets, data])
    rows, _ = KeywordMatcher(term_list("teapot", "violin")).match(captions)
    assert rows.tolist() == [3]


def test_nul_byte_in_a_csv_list(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", b"term\nviolin\nlight\x00house\n")
    with pytest.raises(ExpungeError) as caught:
        read_terms(path)
    assert caught.value.where == "line 3"
    assert "light" not in caught.value.message


def test_a_caption_column_that_is_not_text_is_refused() -> None:
    with pytest.raises(ExpungeError, match="not text"):
        normalise(pa.array([1, 2]))
