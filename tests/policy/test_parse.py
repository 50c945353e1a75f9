"""The `when` grammar and the policy file: precedence, names, numbers, every refusal and where it points."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from expunge.errors import ExpungeError
from expunge.policy import (
    PRESETS,
    And,
    Compare,
    Expr,
    ExprError,
    Flag,
    NeighbourSpec,
    Not,
    Or,
    format_expr,
    load_policy,
    parse_expr,
)
from expunge.policy.parse import MAX_DEPTH

KW = Flag("keyword", None)
BANK = Flag("bank", None)


def cmp(ref: str, value: float, op: str = ">") -> Compare:
    return Compare(ref, op, value)


# ---------------------------------------------------------------------------------------------------
# Expressions


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        ("keyword", KW),
        ("bank", BANK),
        ("keyword.list1", Flag("keyword", "list1")),
        ("bank.partner.v2", Flag("bank", "partner.v2")),
        ("bank.a-b_c.D.9", Flag("bank", "a-b_c.D.9")),
        ("bank.and", Flag("bank", "and")),
        ("score.punsafe > 0.95", cmp("score.punsafe", 0.95)),
        ("score.0col >= -1", cmp("score.0col", -1.0, ">=")),
        ("neighbour>=.9", cmp("neighbour", 0.9, ">=")),
        ("nsfw > 0", cmp("nsfw", 0.0)),
        ("score.x > +2.", cmp("score.x", 2.0)),
        # `and` binds tighter than `or`, `not` tighter than `and`
        ("keyword or bank and nsfw > 0.5", Or((KW, And((BANK, cmp("nsfw", 0.5)))))),
        ("keyword and bank or nsfw > 0.5", Or((And((KW, BANK)), cmp("nsfw", 0.5)))),
        ("not keyword and bank", And((Not(KW), BANK))),
        ("not not keyword", Not(Not(KW))),
        ("not score.x > 1", Not(cmp("score.x", 1.0))),
        ("(keyword or bank) and nsfw > 0.5", And((Or((KW, BANK)), cmp("nsfw", 0.5)))),
        ("not (keyword or bank)", Not(Or((KW, BANK)))),
        # chains are n-ary; explicit parentheses keep their own node
        ("keyword and bank and nsfw > 0.1", And((KW, BANK, cmp("nsfw", 0.1)))),
        ("(keyword and bank) and nsfw > 0.1", And((And((KW, BANK)), cmp("nsfw", 0.1)))),
        ("((keyword))", KW),
        ("keyword AND bank Or NOT nsfw > 0.2", Or((And((KW, BANK)), Not(cmp("nsfw", 0.2))))),
        ("  keyword\tand\nbank  ", And((KW, BANK))),
    ],
)
def test_parse(text: str, tree: Expr) -> None:
    assert parse_expr(text) == tree
    assert parse_expr(format_expr(tree)) == tree


@pytest.mark.parametrize(
    ("text", "column", "fragment"),
    [
        ("", 1, "empty"),
        ("   ", 1, "empty"),
        ("score.x < 0.5", 9, "cannot be evaluated"),
        ("score.x <= 0.5", 9, "cannot be evaluated"),
        ("score.x == 0.5", 9, "only `>` and `>=`"),
        ("score.x != 0.5", 9, "only `>` and `>=`"),
        ("score.x = 0.5", 9, "only `>` and `>=`"),
        ("score.x => 0.5", 9, "write `>=`"),
        ("score.x > 1e5", 11, "plain decimal"),
        ("score.x > 0.5.1", 11, "plain decimal"),
        ("score.x > 1x", 11, "plain decimal"),
        ("score.x > nan", 11, "finite"),
        ("score.x > inf", 11, "finite"),
        ("score.x > " + "9" * 400, 11, "finite"),
        ("score.x >", 10, "expected a number"),
        ("score.x > keyword", 11, "expected a number"),
        ("score.x", 8, "must be compared"),
        ("neighbour and keyword", 11, "must be compared"),
        ("nsfw", 5, "must be compared"),
        ("neighbour > 1.5", 13, "[-1, 1]"),
        ("neighbour > -1.01", 13, "[-1, 1]"),
        ("nsfw >= -0.1", 9, "[0, 1]"),
        ("keyword > 0.5", 9, "yes/no flag"),
        ("bank.x >= 1", 8, "yes/no flag"),
        ("0.5 < score.x", 1, "starts with the signal"),
        ("score > 0.5", 1, "needs a column"),
        ("score.a-b > 0.5", 1, "score column names"),
        ("score. > 0.5", 1, "score column names"),
        ("keyword.", 1, "needs a bank name"),
        ("bank. or keyword", 1, "needs a bank name"),
        ("neighbor > 0.9", 1, "spelling is `neighbour`"),
        ("Keyword", 1, "unknown signal"),
        ("punsafe > 0.9", 1, "unknown signal"),
        ("keyword bank", 9, "expected `and`, `or`"),
        ("keyword and", 12, "ends where a signal"),
        ("keyword or or bank", 12, "found an operator"),
        ("and keyword", 1, "found an operator"),
        ("not", 4, "ends where a signal"),
        ("(keyword", 1, "never closed"),
        ("((keyword) and bank", 1, "never closed"),
        ("keyword)", 8, "without a matching"),
        ("()", 2, "expected a signal"),
        ("keyword && bank", 9, "unexpected character"),
        ("keyword | bank", 9, "unexpected character"),
        ("!keyword", 1, "write `not`"),
        ("> 0.5", 1, "expected a signal"),
        ("keyword, bank", 8, "unexpected character"),
        ("score.x > 'a'", 11, "unexpected character"),
    ],
)
def test_parse_errors(text: str, column: int, fragment: str) -> None:
    with pytest.raises(ExprError) as info:
        parse_expr(text)
    assert info.value.column == column
    assert fragment in str(info.value)
    assert f"at column {column}" in str(info.value)


def test_errors_never_quote_the_text() -> None:
    mark = "zebrafish7731"
    for text in (mark, f"keyword and {mark}", f"score.{mark}-x > 1", f"bank.{mark}!", f"score.x > 0.5{mark}"):
        with pytest.raises(ExprError) as info:
            parse_expr(text)
        assert mark not in str(info.value)


def test_nesting_is_bounded() -> None:
    deep = "(" * (MAX_DEPTH + 1) + "keyword" + ")" * (MAX_DEPTH + 1)
    with pytest.raises(ExprError, match="nested"):
        parse_expr(deep)
    with pytest.raises(ExprError, match="nested"):
        parse_expr("not " * 2000 + "keyword")
    ok = "(" * MAX_DEPTH + "keyword" + ")" * MAX_DEPTH
    assert parse_expr(ok) == KW
    with pytest.raises(ExprError, match="longer than"):
        parse_expr("keyword or " * 2000 + "bank")


def test_numbers_round_trip_in_decimal_form() -> None:
    for value in (0.95, 0.45, 1e-5, 1e16, 123456789.125, -0.0, 5e-324, 1.7976931348623157e308):
        text = format_expr(cmp("score.x", value))
        assert "e" not in text.split(">")[1]
        assert parse_expr(text) == cmp("score.x", value)


# Random trees: printing then parsing gives the same tree.

_bank_names = st.from_regex(r"[A-Za-z0-9_.\-]{1,12}", fullmatch=True)
_columns = st.from_regex(r"[A-Za-z0-9_]{1,12}", fullmatch=True)
_flags = st.builds(Flag, st.sampled_from(["bank", "keyword"]), st.none() | _bank_names)
_ops = st.sampled_from([">", ">="])
_finite = st.floats(allow_nan=False, allow_infinity=False)
_compares = (
    st.builds(Compare, _columns.map(lambda c: f"score.{c}"), _ops, _finite)
    | st.builds(Compare, st.just("neighbour"), _ops, st.floats(-1, 1))
    | st.builds(Compare, st.just("nsfw"), _ops, st.floats(0, 1))
)


def _trees(leaves: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
    return st.recursive(
        leaves,
        lambda kids: (
            st.builds(Not, kids)
            | st.builds(And, st.lists(kids, min_size=2, max_size=4).map(tuple))
            | st.builds(Or, st.lists(kids, min_size=2, max_size=4).map(tuple))
        ),
        max_leaves=12,
    )


EXPRS = _trees(_flags | _compares)


@settings(max_examples=120, deadline=None)
@given(EXPRS)
def test_print_then_parse_is_identity(tree: Expr) -> None:
    text = format_expr(tree)
    assert parse_expr(text) == tree
    assert format_expr(parse_expr(text)) == text


# ---------------------------------------------------------------------------------------------------
# Policy files


def write(tmp_path: Path, text: str, name: str = "mine.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


RULE = '[[rules]]\nname = "r1"\naction = "remove"\nwhen = "score.punsafe > 0.9 and keyword"\n'


def refused(path: Path, fragment: str, where: str | None) -> ExpungeError:
    with pytest.raises(ExpungeError) as info:
        load_policy(path)
    assert fragment in info.value.message, info.value.message
    assert info.value.where == where
    assert info.value.path == str(path)
    assert "zebrafish7731" not in info.value.message
    return info.value


def test_load_file(tmp_path: Path) -> None:
    text = (
        'description = "mine"\n'
        + RULE
        + 'max_share = 0.02\n\n[[rules]]\nname = "look"\naction = "review"\nwhen = "neighbour >= 0.9"\n'
        + '[[rules]]\nname = "ok_2"\naction = "keep"\nwhen = "not keyword.a.b AND bank.x"\n'
    )
    path = write(tmp_path, text)
    pol = load_policy(path)
    assert pol.name == "mine"
    assert pol.description == "mine"
    assert [(r.name, r.action, r.max_share) for r in pol.rules] == [
        ("r1", "remove", 0.02),
        ("look", "review", None),
        ("ok_2", "keep", None),
    ]
    assert pol.rules[2].text == "not keyword.a.b and bank.x"
    assert all(parse_expr(r.text) == r.when for r in pol.rules)
    assert pol.neighbour == NeighbourSpec(100, 0.9, ("bank", "confirmed"))
    assert pol.source == str(path.resolve())
    assert pol.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert pol.score_columns() == {"punsafe": 0.9}
    assert pol.thresholds("neighbour") == 0.9
    assert pol.thresholds("nsfw") is None
    assert pol.thresholds("score.punsafe") == 0.9
    assert pol.keyword_refs() == (None, "a.b")
    assert pol.bank_refs() == ("x",)
    assert [pol.uses(k) for k in ("keyword", "neighbour", "nsfw", "score", "bank")] == [
        True,
        True,
        False,
        True,
        True,
    ]
    with pytest.raises(ValueError):
        pol.uses("url")


def test_thresholds_take_the_lowest(tmp_path: Path) -> None:
    text = "".join(
        f'[[rules]]\nname = "r{i}"\naction = "review"\nwhen = "{w}"\n'
        for i, w in enumerate(
            [
                "score.a > 0.9 or score.b >= 3",
                "score.a >= 0.2 and nsfw > 0.7",
                "not score.a > 0.5 or nsfw > 0.6",
            ]
        )
    )
    pol = load_policy(write(tmp_path, text))
    assert pol.score_columns() == {"a": 0.2, "b": 3.0}
    assert pol.thresholds("nsfw") == 0.6
    assert pol.uses("score") and pol.uses("nsfw") and not pol.uses("keyword")


def test_public_names_the_file_only(tmp_path: Path) -> None:
    nested = tmp_path / "secret-dir" / "deeper"
    nested.mkdir(parents=True)
    path = write(nested, RULE + '[[rules]]\nname = "n"\naction = "review"\nwhen = "neighbour > 0.8"\n')
    pub = load_policy(path).public()
    assert pub == {
        "name": "mine",
        "source": "mine.toml",
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "rules": [
            {"name": "r1", "action": "remove", "when": "score.punsafe > 0.9 and keyword", "max_share": None},
            {"name": "n", "action": "review", "when": "neighbour > 0.8", "max_share": None},
        ],
        "neighbour": {"k": 100, "min_cosine": 0.8, "seeds": ["bank", "confirmed"]},
    }
    assert "secret-dir" not in repr(pub) and str(tmp_path) not in repr(pub)
    for name in PRESETS:
        assert load_policy(name).public()["source"] == f"preset:{name}"


def test_presets() -> None:
    hash_only = load_policy("hash-only")
    assert hash_only.rules == () and hash_only.neighbour is None
    research = load_policy("research")
    assert [(r.name, r.action, r.text) for r in research.rules] == [
        ("unsafe-and-keyword", "remove", "score.punsafe > 0.95 and keyword")
    ]
    safe = load_policy("research-safe")
    assert [(r.name, r.action, r.text) for r in safe.rules] == [
        ("unsafe-and-keyword", "remove", "score.punsafe > 0.95 and keyword"),
        ("unsafe", "remove", "score.punsafe > 0.45"),
    ]
    assert all(r.max_share is not None for r in research.rules + safe.rules)
    for name, text in PRESETS.items():
        pol = load_policy(name)
        assert pol.name == name
        assert pol.source == f"preset:{name}"
        assert pol.sha256 == hashlib.sha256(text.encode()).hexdigest()


def test_a_str_naming_a_preset_is_the_preset_even_if_a_file_has_that_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, RULE, name="research")
    assert load_policy("research").source == "preset:research"
    assert load_policy(Path("research")).source == str((tmp_path / "research").resolve())


def test_neither_preset_nor_file(tmp_path: Path) -> None:
    for spec in ("reserch", str(tmp_path / "missing.toml"), tmp_path):
        with pytest.raises(ExpungeError, match="not a policy preset"):
            load_policy(spec)


def test_empty_rules_mean_hash_lists_only(tmp_path: Path) -> None:
    for text in ("", "rules = []\n", 'name = "x"\n'):
        pol = load_policy(write(tmp_path, text))
        assert pol.rules == () and pol.neighbour is None


def test_name_defaults_to_stem_and_must_be_valid(tmp_path: Path) -> None:
    assert load_policy(write(tmp_path, "", name="strict.v2.toml")).name == "strict.v2"
    refused(write(tmp_path, "", name="my policy.toml"), "set `name`", "name")
    refused(write(tmp_path, 'name = ""\n'), "policy names", "name")
    refused(write(tmp_path, "name = 3\n"), "policy names", "name")
    refused(write(tmp_path, "description = 3\n"), "must be a string", "description")


def test_toml_syntax_errors_name_the_line(tmp_path: Path) -> None:
    err = refused(write(tmp_path, RULE + "max_share = \n"), "TOML syntax", "line 5")
    assert "column 13" in err.message
    refused(write(tmp_path, 'name = "x"\n[[rules]\n'), "TOML syntax", "line 2")
    refused(write(tmp_path, 'name = "x"\nname = "y"\n'), "TOML syntax", "line 2")
    # errors reported "at end of document" point at the last line
    refused(write(tmp_path, 'name = "x"\ndescription = "abc'), "TOML syntax", "line 2")


def test_toml_errors_never_quote_the_file(tmp_path: Path) -> None:
    mark = "zebrafish7731"
    for text in (
        f"{mark} = = 1\n",
        f'a = "{mark}\n',
        f"[{mark}\n",
        f"a = {mark}\n",
        # tomllib itself names keys in these messages
        f"a = {{ {mark} = 1, {mark} = 2 }}\n",
        f"[{mark}]\n[{mark}]\n",
        f"[a]\n{mark}.x = 1\n[a.{mark}]\n",
    ):
        with pytest.raises(ExpungeError) as info:
            load_policy(write(tmp_path, text))
        assert mark not in str(info.value)


def test_not_utf8_and_bom(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_bytes(b'name = "x"\n\n# caf\xe9\n')
    refused(path, "not UTF-8", "line 3")
    path.write_bytes(b"\xef\xbb\xbf" + RULE.encode())
    pol = load_policy(path)
    assert len(pol.rules) == 1
    assert pol.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("text", "fragment", "where"),
    [
        ('nmae = "x"\n', "unknown key in the policy; did you mean `name`?", None),
        ("[[rule]]\nname = 'a'\n", "did you mean `rules`?", None),
        ("zebrafish7731 = 1\n", "unknown key in the policy; allowed", None),
        (RULE + 'acton = "keep"\n', "unknown key in a rule; did you mean `action`?", "rule r1"),
        (RULE + "[neighbour]\nk = 5\nmin_cos = 0.5\n", "did you mean `min_cosine`?", "[neighbour]"),
        (RULE.replace('"remove"', '"delete"'), "unknown action", "rule r1"),
        (RULE.replace('action = "remove"\n', ""), "no `action`", "rule r1"),
        (RULE.replace('when = "score.punsafe > 0.9 and keyword"\n', ""), "no `when`", "rule r1"),
        (RULE.replace('"score.punsafe > 0.9 and keyword"', "3"), "must be a string", "rule r1"),
        (RULE.replace('name = "r1"\n', ""), "no `name`", "rule 1"),
        (RULE.replace('"r1"', '"Rule1"'), "rule names", "rule 1"),
        (RULE.replace('"r1"', '"-x"'), "rule names", "rule 1"),
        (RULE.replace('"r1"', '"a b"'), "rule names", "rule 1"),
        (RULE.replace('"r1"', "1"), "rule names", "rule 1"),
        (RULE + RULE, "duplicate rule name", "rule r1"),
        (RULE.replace('"r1"', '"hash-lists"'), "reserved", "rule hash-lists"),
        (RULE.replace('"r1"', '"review-confirmed"'), "reserved", "rule review-confirmed"),
        (RULE + "max_share = 0\n", "max_share", "rule r1"),
        (RULE + "max_share = 1.5\n", "max_share", "rule r1"),
        (RULE + "max_share = nan\n", "max_share", "rule r1"),
        (RULE + "max_share = true\n", "max_share", "rule r1"),
        (RULE + 'max_share = "0.1"\n', "max_share", "rule r1"),
        ("rules = 3\n", "array of tables", "rules"),
        ("rules = [1]\n", "must be a table", "rule 1"),
        (RULE.replace("0.9 and", "0.9 and or"), "found an operator", "rule r1, column 25 of `when`"),
        (RULE.replace(">", "<"), "cannot be evaluated", "rule r1, column 15 of `when`"),
        ("neighbour = 3\n" + RULE, "must be a table", "[neighbour]"),
        ("[neighbour]\nk = 5\n" + RULE, "no rule uses `neighbour`", "[neighbour]"),
    ],
)
def test_refused(tmp_path: Path, text: str, fragment: str, where: str | None) -> None:
    refused(write(tmp_path, text), fragment, where)


NB_RULE = '[[rules]]\nname = "nb"\naction = "review"\nwhen = "neighbour >= 0.85 or neighbour > 0.9"\n'


@pytest.mark.parametrize(
    ("table", "spec"),
    [
        ("", NeighbourSpec(100, 0.85, ("bank", "confirmed"))),
        ("[neighbour]\n", NeighbourSpec(100, 0.85, ("bank", "confirmed"))),
        ("[neighbour]\nk = 7\nmin_cosine = 0.5\n", NeighbourSpec(7, 0.5, ("bank", "confirmed"))),
        ("[neighbour]\nmin_cosine = 0.85\n", NeighbourSpec(100, 0.85, ("bank", "confirmed"))),
        ('[neighbour]\nseeds = ["confirmed"]\n', NeighbourSpec(100, 0.85, ("confirmed",))),
        (
            '[neighbour]\nseeds = ["bank.a.b", "bank.c-d", "bank.a.b"]\n',
            NeighbourSpec(100, 0.85, ("bank.a.b", "bank.c-d")),
        ),
    ],
)
def test_neighbour_table(tmp_path: Path, table: str, spec: NeighbourSpec) -> None:
    assert load_policy(write(tmp_path, table + NB_RULE)).neighbour == spec


@pytest.mark.parametrize(
    ("table", "fragment"),
    [
        ("k = 0", "`k`"),
        ("k = 10001", "`k`"),
        ("k = 1.5", "`k`"),
        ("k = true", "`k`"),
        ("min_cosine = 1.5", "`min_cosine`"),
        ("min_cosine = nan", "`min_cosine`"),
        ("min_cosine = 0.9", "above the lowest"),
        ("seeds = []", "`seeds`"),
        ('seeds = "bank"', "`seeds`"),
        ('seeds = ["bank", "hotline"]', "each seed"),
        ('seeds = ["bank."]', "each seed"),
        ('seeds = ["keyword"]', "each seed"),
        ("seeds = [1]", "each seed"),
    ],
)
def test_neighbour_table_refused(tmp_path: Path, table: str, fragment: str) -> None:
    refused(write(tmp_path, f"[neighbour]\n{table}\n" + NB_RULE), fragment, "[neighbour]")


def test_huge_file_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "# " + "x" * (1 << 20) + "\n")
    refused(path, "larger than", None)
