"""Policy files: which soft signals remove, queue for review, or keep a row.

A policy is a TOML file (or a built-in preset, see ``presets.py``)::

    name = "research"                 # optional; default: the file name without .toml
    description = "..."               # optional
    [neighbour]                       # optional, and only allowed when a rule uses `neighbour`
    k = 100                           # neighbours asked per seed, 1..10000 (default 100)
    min_cosine = 0.9                  # cosine kept by the search (default: the lowest `neighbour` threshold
                                      # any rule uses; it may not be higher than that threshold)
    seeds = ["bank", "confirmed"]     # rows that seed the search (default: ["bank", "confirmed"]):
                                      # "bank" rows removed by any hash bank, "bank.NAME" by the named bank,
                                      # "confirmed" rows a hotline confirmed
    [[rules]]                         # any number; evaluated in file order
    name = "unsafe-and-keyword"       # required, [a-z0-9][a-z0-9_-]*, unique; named in removed.parquet,
                                      # the manifest and the report. `hash-lists` and `review-confirmed`
                                      # are reserved for the implicit rules.
    action = "remove"                 # required: remove | review | keep
    when = "score.punsafe > 0.95 and keyword"   # required, grammar below
    max_share = 0.02                  # optional flood limit in (0, 1]: the share of rows this rule may decide
                                      # before the clean stops (absent: the run's default)

An empty (or absent) ``rules`` list means hash lists only: today's behaviour, the ``hash-only`` preset.
Unknown keys anywhere are refused, so a typo (``acton``) never silently becomes a default.

``when`` grammar (a small recursive-descent parser; nothing is ever ``eval``'d)::

    expr    := and ( "or" and )*            # `or` binds loosest
    and     := not ( "and" not )*
    not     := "not" not | atom
    atom    := "(" expr ")" | flag | value (">" | ">=") NUMBER
    flag    := "bank" | "bank.NAME" | "keyword" | "keyword.NAME"
    value   := "score.COLUMN" | "neighbour" | "nsfw"

- ``keyword`` is true when any keyword list matched the caption, ``keyword.NAME`` when the list of that bank
  did; ``bank``/``bank.NAME`` likewise for hash-list findings. NAME is ``[A-Za-z0-9_.-]+`` and may contain
  dots (``bank.partner.v2`` names the bank ``partner.v2``). COLUMN is a dataset column of ``[A-Za-z0-9_]+``.
- ``neighbour`` is the cosine to the nearest seed row; ``nsfw`` the NudeNet score; ``score.COLUMN`` the
  column's value.
- Only ``>`` and ``>=`` exist: every soft signal is "higher is worse", and a findings store keeps only rows at
  or above the lowest threshold a policy uses, so a ``<`` could not be evaluated and is refused.
- NUMBER is a plain decimal (``0.95``, ``-1``, ``.5``; no exponent, no ``nan``/``inf``). ``neighbour``
  thresholds lie in [-1, 1], ``nsfw`` thresholds in [0, 1], score thresholds are any finite number.
- ``and``/``or``/``not`` may be written in any case; signal names are lower case.

Every problem in a policy file is one ``ExpungeError`` naming the file and the place: ``line N`` for TOML
syntax, ``rule NAME`` (or ``rule N``, 1-based, when the name itself is the problem) for a rule, plus
``column K of `when``` for an expression. ``Rule.text`` is the canonical spelling of ``when`` (lower-case
operators, single spaces, shortest decimals): ``parse_expr(rule.text) == rule.when``.
"""

from __future__ import annotations

import difflib
import hashlib
import math
import re
import tomllib
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from expunge.errors import ExpungeError
from expunge.signals.soft import VALUE_SIGNALS

# ---------------------------------------------------------------------------------------------------
# Expressions


@dataclass(frozen=True)
class Flag:
    kind: str  # "bank" | "keyword"
    name: str | None  # None: any list of that kind


@dataclass(frozen=True)
class Compare:
    ref: str  # "score.COLUMN" | "neighbour" | "nsfw"
    op: str  # ">" | ">="
    value: float


@dataclass(frozen=True)
class Not:
    arg: Expr


@dataclass(frozen=True)
class And:
    args: tuple[Expr, ...]


@dataclass(frozen=True)
class Or:
    args: tuple[Expr, ...]


Expr = Flag | Compare | Not | And | Or


class ExprError(ValueError):
    """A `when` that does not parse; ``column`` is 1-based and the message never quotes the text."""

    def __init__(self, message: str, column: int) -> None:
        self.reason = message
        self.column = column
        super().__init__(f"{message} at column {column}")


MAX_EXPR_CHARS = 10_000
MAX_DEPTH = 64  # nested parentheses and `not`s; far beyond any real policy, well below Python's stack

_BANK_NAME = re.compile(r"[A-Za-z0-9_.\-]+")
_COLUMN = re.compile(r"[A-Za-z0-9_]+")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_TOKEN = re.compile(
    r"(?P<ws>\s+)"
    r"|(?P<num>[+-]?[0-9.][A-Za-z0-9_.]*)"
    r"|(?P<word>[A-Za-z_][A-Za-z0-9_.\-]*)"
    r"|(?P<op>>=|<=|==|!=|=>|=<|<>|[<>=!])"
    r"|(?P<lp>\()"
    r"|(?P<rp>\))"
)
_CONNECTIVES = ("and", "or", "not")
_SIGNALS = "bank, bank.NAME, keyword, keyword.NAME, score.COLUMN, neighbour, nsfw or a plug-in's signal"


@dataclass(frozen=True)
class _Tok:
    kind: str  # num | word | op | lp | rp | end
    text: str
    col: int  # 1-based


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ExprError("unexpected character", pos + 1)
        kind = m.lastgroup or ""
        if kind != "ws":
            toks.append(_Tok(kind, m.group(), pos + 1))
        pos = m.end()
    toks.append(_Tok("end", "", len(text) + 1))
    return toks


def _signal(tok: _Tok) -> Flag | str:
    """A word as a flag, or as the name of a value that must be compared; ExprError when it is neither."""
    word = tok.text
    for kind in ("bank", "keyword"):
        if word == kind:
            return Flag(kind, None)
        if word.startswith(kind + "."):
            name = word[len(kind) + 1 :]
            if not name:
                raise ExprError(f"`{kind}.` needs a bank name after the dot", tok.col)
            if _BANK_NAME.fullmatch(name) is None:
                raise ExprError("bank names are made of letters, digits, `_`, `.` and `-`", tok.col)
            return Flag(kind, name)
    name, dot, param = word.partition(".")
    sig = VALUE_SIGNALS.get(name)
    if sig is not None:  # a value signal (built-in or plug-in): `nsfw`, `score.COLUMN`
        if sig.takes_param and not dot:
            raise ExprError(f"`{name}` needs a column: `{name}.COLUMN > N`", tok.col)
        if not sig.takes_param and dot:
            raise ExprError(f"`{name}` takes no parameter", tok.col)
        if dot and _COLUMN.fullmatch(param) is None:
            raise ExprError(f"{name} column names are made of letters, digits and `_`", tok.col)
        return word
    if word.casefold() in ("nan", "inf", "infinity"):
        raise ExprError("thresholds must be finite decimal numbers", tok.col)
    if word == "neighbor":
        raise ExprError("unknown signal (the spelling is `neighbour`)", tok.col)
    raise ExprError(f"unknown signal; expected {_SIGNALS}", tok.col)


def _number(tok: _Tok, ref: str) -> float:
    if tok.kind != "num":
        if tok.kind == "word" and tok.text.casefold() in ("nan", "inf", "infinity", "+inf", "-inf"):
            raise ExprError("thresholds must be finite decimal numbers", tok.col)
        raise ExprError("expected a number after the comparison", tok.col)
    if _DECIMAL.fullmatch(tok.text) is None:
        raise ExprError("not a plain decimal number (no exponents or other characters)", tok.col)
    value = float(tok.text)
    if not math.isfinite(value):
        raise ExprError("thresholds must be finite decimal numbers", tok.col)
    sig = VALUE_SIGNALS.get(ref.partition(".")[0])
    lo, hi = (sig.low, sig.high) if sig is not None else (-math.inf, math.inf)
    if not lo <= value <= hi:
        raise ExprError(f"a `{ref}` threshold must lie in [{lo:g}, {hi:g}]", tok.col)
    return value


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokenize(text)
        self.i = 0
        self.depth = 0

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        if tok.kind != "end":
            self.i += 1
        return tok

    def is_word(self, word: str) -> bool:
        tok = self.peek()
        return tok.kind == "word" and tok.text.casefold() == word

    def deeper(self, col: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExprError(f"expression nested more than {MAX_DEPTH} levels deep", col)

    def expr(self) -> Expr:
        args = [self.conj()]
        while self.is_word("or"):
            self.take()
            args.append(self.conj())
        return args[0] if len(args) == 1 else Or(tuple(args))

    def conj(self) -> Expr:
        args = [self.neg()]
        while self.is_word("and"):
            self.take()
            args.append(self.neg())
        return args[0] if len(args) == 1 else And(tuple(args))

    def neg(self) -> Expr:
        if self.is_word("not"):
            tok = self.take()
            self.deeper(tok.col)
            arg = self.neg()
            self.depth -= 1
            return Not(arg)
        return self.atom()

    def atom(self) -> Expr:
        tok = self.take()
        if tok.kind == "lp":
            self.deeper(tok.col)
            inner = self.expr()
            if self.peek().kind != "rp":
                raise ExprError("`(` is never closed", tok.col)
            self.take()
            self.depth -= 1
            return inner
        if tok.kind == "end":
            raise ExprError("the expression ends where a signal was expected", tok.col)
        if tok.kind == "word" and tok.text.casefold() in _CONNECTIVES:
            raise ExprError("expected a signal, found an operator", tok.col)
        if tok.kind == "num":
            raise ExprError(
                "a comparison starts with the signal (`score.X > N`, never `N < score.X`)", tok.col
            )
        if tok.kind == "op" and tok.text == "!":
            raise ExprError("write `not` for negation", tok.col)
        if tok.kind != "word":
            raise ExprError("expected a signal", tok.col)
        sig = _signal(tok)
        nxt = self.peek()
        if isinstance(sig, Flag):
            if nxt.kind == "op":
                raise ExprError(f"`{sig.kind}` is a yes/no flag and cannot be compared", nxt.col)
            return sig
        if nxt.kind != "op":
            raise ExprError(f"`{sig.split('.')[0]}` must be compared with a number (`>` or `>=`)", nxt.col)
        op = self.take()
        if op.text in ("<", "<=", "=<"):
            raise ExprError(
                "only `>` and `>=` are allowed: every soft signal is higher-is-worse and the findings store "
                "keeps only rows at or above the lowest threshold, so `<` cannot be evaluated",
                op.col,
            )
        if op.text == "=>":
            raise ExprError("write `>=`", op.col)
        if op.text not in (">", ">="):
            raise ExprError("only `>` and `>=` are allowed", op.col)
        return Compare(sig, op.text, _number(self.take(), sig))


def parse_expr(text: str) -> Expr:
    """Parse a `when` expression; ``ExprError`` (a ValueError) with the 1-based column on any problem."""
    if len(text) > MAX_EXPR_CHARS:
        raise ExprError(f"expression longer than {MAX_EXPR_CHARS} characters", MAX_EXPR_CHARS + 1)
    parser = _Parser(text)
    if parser.peek().kind == "end":
        raise ExprError("empty expression", 1)
    expr = parser.expr()
    rest = parser.peek()
    if rest.kind == "rp":
        raise ExprError("`)` without a matching `(`", rest.col)
    if rest.kind != "end":
        raise ExprError("expected `and`, `or` or the end of the expression", rest.col)
    return expr


def format_number(value: float) -> str:
    """Shortest decimal that reads back as the same float, never in exponent form (the grammar has none)."""
    text = format(Decimal(repr(float(value))), "f")
    return text if "." in text else text + ".0"


def format_expr(expr: Expr) -> str:
    """Canonical text of an expression; parenthesised exactly where needed to parse back to the same tree."""
    if isinstance(expr, Flag):
        return expr.kind if expr.name is None else f"{expr.kind}.{expr.name}"
    if isinstance(expr, Compare):
        return f"{expr.ref} {expr.op} {format_number(expr.value)}"
    if isinstance(expr, Not):
        inner = format_expr(expr.arg)
        return f"not ({inner})" if isinstance(expr.arg, And | Or) else f"not {inner}"
    if isinstance(expr, And):
        return " and ".join(
            f"({format_expr(a)})" if isinstance(a, And | Or) else format_expr(a) for a in expr.args
        )
    return " or ".join(f"({format_expr(a)})" if isinstance(a, Or) else format_expr(a) for a in expr.args)


def atoms(expr: Expr) -> list[Flag | Compare]:
    """Every flag and comparison in an expression, left to right."""
    if isinstance(expr, Flag | Compare):
        return [expr]
    if isinstance(expr, Not):
        return atoms(expr.arg)
    return [a for arg in expr.args for a in atoms(arg)]


# ---------------------------------------------------------------------------------------------------
# Policies

ACTIONS = ("remove", "review", "keep")
IMPLICIT_RULES = ("hash-lists", "review-confirmed")
DEFAULT_K = 100
DEFAULT_SEEDS = ("bank", "confirmed")
MAX_K = 10_000
MAX_RULES = 1_000  # rule indices are int16 in decisions
MAX_POLICY_BYTES = 1 << 20
_RULE_NAME = re.compile(r"[a-z0-9][a-z0-9_\-]*")
_POLICY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+\-]{0,63}")
_USES = ("bank", "keyword")


@dataclass(frozen=True)
class Rule:
    name: str
    action: str  # "remove" | "review" | "keep"
    when: Expr
    text: str  # canonical `when`
    max_share: float | None


@dataclass(frozen=True)
class NeighbourSpec:
    k: int
    min_cosine: float
    seeds: tuple[str, ...]  # "bank", "bank.NAME", "confirmed"


@dataclass(frozen=True)
class Policy:
    name: str
    description: str
    rules: tuple[Rule, ...]
    neighbour: NeighbourSpec | None
    source: str  # "preset:NAME" or the file's resolved path
    sha256: str  # of the exact bytes read (a preset: of its TOML text)

    def _atoms(self) -> list[Flag | Compare]:
        return [a for rule in self.rules for a in atoms(rule.when)]

    def score_columns(self) -> dict[str, float]:
        """Column -> the lowest threshold any rule compares it with (what the score signal must store)."""
        out: dict[str, float] = {}
        for a in self._atoms():
            if isinstance(a, Compare) and a.ref.startswith("score."):
                col = a.ref[len("score.") :]
                out[col] = min(out.get(col, math.inf), a.value)
        return out

    def thresholds(self, ref: str) -> float | None:
        """Lowest threshold any rule compares ``ref`` ("neighbour", "nsfw", "score.X") with; None: unused."""
        values = [a.value for a in self._atoms() if isinstance(a, Compare) and a.ref == ref]
        return min(values) if values else None

    def _flag_refs(self, kind: str) -> tuple[str | None, ...]:
        seen: dict[str | None, None] = {}
        for a in self._atoms():
            if isinstance(a, Flag) and a.kind == kind:
                seen.setdefault(a.name, None)
        return tuple(seen)

    def keyword_refs(self) -> tuple[str | None, ...]:
        """Keyword bank names used, in first-use order; None stands for `keyword` (any list)."""
        return self._flag_refs("keyword")

    def bank_refs(self) -> tuple[str | None, ...]:
        """Hash bank names used, in first-use order; None stands for `bank` (any list)."""
        return self._flag_refs("bank")

    def value_refs(self) -> dict[str, float]:
        """Every value a rule compares (``score.punsafe``, ``nsfw``, a plug-in's), with the lowest
        threshold it is compared with: what the soft stage must keep."""
        out: dict[str, float] = {}
        for a in self._atoms():
            if isinstance(a, Compare):
                out[a.ref] = min(out.get(a.ref, math.inf), a.value)
        return dict(sorted(out.items()))

    def uses(self, kind: str) -> bool:
        """Whether any rule needs the signal ``kind`` ("keyword", "bank", or a value signal's name)."""
        if kind not in _USES and kind not in VALUE_SIGNALS:
            raise ValueError(f"unknown signal kind; expected one of {', '.join(_USES)}")
        for a in self._atoms():
            name = a.kind if isinstance(a, Flag) else a.ref.split(".", 1)[0]
            if name == kind:
                return True
        return False

    def public(self) -> dict[str, Any]:
        """What the manifest records; a file policy is named by its file name only, never its directory."""
        source = self.source if self.source.startswith("preset:") else Path(self.source).name
        return {
            "name": self.name,
            "source": source,
            "sha256": self.sha256,
            "rules": [
                {"name": r.name, "action": r.action, "when": r.text, "max_share": r.max_share}
                for r in self.rules
            ],
            "neighbour": None
            if self.neighbour is None
            else {
                "k": self.neighbour.k,
                "min_cosine": self.neighbour.min_cosine,
                "seeds": list(self.neighbour.seeds),
            },
        }


def _unknown_keys(
    table: dict[str, Any], allowed: tuple[str, ...], what: str, path: str, where: str | None
) -> None:
    extra = sorted(set(table) - set(allowed))
    if extra:
        # The key itself is never quoted (a term list passed as a policy by mistake must not leak a term);
        # the nearest allowed key is the help a typo needs.
        near = difflib.get_close_matches(extra[0], allowed, n=1, cutoff=0.6)
        hint = f"did you mean `{near[0]}`? " if near else ""
        raise ExpungeError(f"unknown key in {what}; {hint}allowed: {', '.join(allowed)}", path, where)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _parse_rule(raw: object, index: int, path: str, seen: set[str]) -> Rule:
    label = f"rule {index}"
    if not isinstance(raw, dict):
        raise ExpungeError("each entry of `rules` must be a table ([[rules]])", path, label)
    name = raw.get("name")
    if name is None:
        raise ExpungeError("rule has no `name`", path, label)
    if not isinstance(name, str) or _RULE_NAME.fullmatch(name) is None or len(name) > 64:
        raise ExpungeError(
            "rule names are 1-64 characters of [a-z0-9_-], starting with a letter or digit", path, label
        )
    label = f"rule {name}"
    if name in IMPLICIT_RULES:
        raise ExpungeError(f"`{name}` is reserved for an implicit rule that always applies", path, label)
    if name in seen:
        raise ExpungeError("duplicate rule name", path, label)
    seen.add(name)
    _unknown_keys(raw, ("name", "action", "when", "max_share"), "a rule", path, label)
    action = raw.get("action")
    if action is None:
        raise ExpungeError("rule has no `action` (remove, review or keep)", path, label)
    if action not in ACTIONS:
        raise ExpungeError("unknown action; expected remove, review or keep", path, label)
    when = raw.get("when")
    if when is None:
        raise ExpungeError("rule has no `when`", path, label)
    if not isinstance(when, str):
        raise ExpungeError("`when` must be a string", path, label)
    try:
        expr = parse_expr(when)
    except ExprError as exc:
        raise ExpungeError(f"`when`: {exc.reason}", path, f"{label}, column {exc.column} of `when`") from None
    max_share = raw.get("max_share")
    if max_share is not None:
        if not _is_number(max_share) or not math.isfinite(max_share) or not 0 < max_share <= 1:
            raise ExpungeError("`max_share` must be a number in (0, 1]", path, label)
        max_share = float(max_share)
    return Rule(name, str(action), expr, format_expr(expr), max_share)


def _parse_neighbour(raw: object, rules: tuple[Rule, ...], path: str) -> NeighbourSpec | None:
    lowest = [
        a.value for r in rules for a in atoms(r.when) if isinstance(a, Compare) and a.ref == "neighbour"
    ]
    where = "[neighbour]"
    if raw is None:
        return NeighbourSpec(DEFAULT_K, min(lowest), DEFAULT_SEEDS) if lowest else None
    if not isinstance(raw, dict):
        raise ExpungeError("`neighbour` must be a table ([neighbour])", path, where)
    _unknown_keys(raw, ("k", "min_cosine", "seeds"), "[neighbour]", path, where)
    if not lowest:
        raise ExpungeError("a [neighbour] table is given but no rule uses `neighbour`", path, where)
    k = raw.get("k", DEFAULT_K)
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K:
        raise ExpungeError(f"`k` must be an integer in [1, {MAX_K}]", path, where)
    min_cosine = raw.get("min_cosine", min(lowest))
    if not _is_number(min_cosine) or not math.isfinite(min_cosine) or not -1 <= min_cosine <= 1:
        raise ExpungeError("`min_cosine` must be a number in [-1, 1]", path, where)
    if min_cosine > min(lowest):
        # The search would store only cosines >= min_cosine; a rule asking for less would be silently weaker.
        raise ExpungeError(
            f"`min_cosine` ({format_number(min_cosine)}) is above the lowest `neighbour` threshold in a rule "
            f"({format_number(min(lowest))}); rows between them could never be found",
            path,
            where,
        )
    seeds = raw.get("seeds", list(DEFAULT_SEEDS))
    if not isinstance(seeds, list) or not seeds:
        raise ExpungeError('`seeds` must be a non-empty list such as ["bank", "confirmed"]', path, where)
    out: list[str] = []
    for seed in seeds:
        ok = isinstance(seed, str) and (
            seed in ("bank", "confirmed")
            or (seed.startswith("bank.") and _BANK_NAME.fullmatch(seed[len("bank.") :]) is not None)
        )
        if not ok:
            raise ExpungeError('each seed is "bank", "bank.NAME" or "confirmed"', path, where)
        if seed not in out:
            out.append(seed)
    return NeighbourSpec(k, float(min_cosine), tuple(out))


_TOML_PUNCT = {"'='", "']'", "']]'", "'}'", "','", "'.'", "'['", "'\"'", '"\'"'}


def _content_free(reason: str) -> str:
    """tomllib names offending keys and characters; keep only its grammar punctuation."""

    def hide(m: re.Match[str]) -> str:
        return m.group() if m.group() in _TOML_PUNCT else "(not shown)"

    return re.sub(r"\(.*\)|'[^']*'|\"[^\"]*\"", hide, reason)


def _toml_error(exc: tomllib.TOMLDecodeError, text: str, path: str) -> ExpungeError:
    msg = str(exc)
    m = re.search(r"\s*\(at line (\d+), column (\d+)\)\s*$", msg)
    if m is not None:
        return ExpungeError(
            f"TOML syntax: {_content_free(msg[: m.start()])} (column {m.group(2)})",
            path,
            f"line {m.group(1)}",
        )
    m = re.search(r"\s*\(at end of document\)\s*$", msg)
    reason = _content_free(msg[: m.start()]) if m is not None else "invalid TOML"
    lines = max(1, text.count("\n") + (0 if text.endswith("\n") else 1))
    return ExpungeError(f"TOML syntax: {reason} (at the end of the file)", path, f"line {lines}")


def policy_from_bytes(data: bytes, source: str, default_name: str, path: str | None = None) -> Policy:
    """Parse a policy from the exact bytes read; ``path`` names the file in errors."""
    where_path = path if path is not None else source
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ExpungeError("not UTF-8 text", where_path, f"line {line}") from None
    text = text.removeprefix("\ufeff")
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _toml_error(exc, text, where_path) from None
    _unknown_keys(doc, ("name", "description", "neighbour", "rules"), "the policy", where_path, None)
    name = doc.get("name", default_name)
    if not isinstance(name, str) or _POLICY_NAME.fullmatch(name) is None:
        hint = "" if "name" in doc else " (it defaults to the file name; set `name`)"
        raise ExpungeError(f"policy names are 1-64 characters of [A-Za-z0-9_.+-]{hint}", where_path, "name")
    description = doc.get("description", "")
    if not isinstance(description, str):
        raise ExpungeError("`description` must be a string", where_path, "description")
    raw_rules = doc.get("rules", [])
    if not isinstance(raw_rules, list):
        raise ExpungeError("`rules` must be an array of tables ([[rules]])", where_path, "rules")
    if len(raw_rules) > MAX_RULES:
        raise ExpungeError(f"more than {MAX_RULES} rules", where_path, "rules")
    seen: set[str] = set()
    rules = tuple(_parse_rule(raw, i + 1, where_path, seen) for i, raw in enumerate(raw_rules))
    neighbour = _parse_neighbour(doc.get("neighbour"), rules, where_path)
    return Policy(name, description, rules, neighbour, source, hashlib.sha256(data).hexdigest())


def load_policy(spec: str | Path) -> Policy:
    """A preset by name (a ``str`` naming a preset always means the preset), or a path to a TOML file."""
    from expunge.policy.presets import PRESETS

    if isinstance(spec, str) and spec in PRESETS:
        return policy_from_bytes(PRESETS[spec].encode("utf-8"), f"preset:{spec}", spec)
    path = Path(spec)
    if not path.is_file():
        presets = ", ".join(PRESETS)
        raise ExpungeError(f"not a policy preset ({presets}) and not a policy file", path)
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_POLICY_BYTES + 1)
    except OSError as exc:
        raise ExpungeError(
            f"cannot read the policy file ({exc.strerror or type(exc).__name__})", path
        ) from None
    if len(data) > MAX_POLICY_BYTES:
        raise ExpungeError(f"policy file larger than {MAX_POLICY_BYTES} bytes", path)
    stem = path.name[: -len(".toml")] if path.name.endswith(".toml") else path.name
    resolved = str(path.resolve())
    return policy_from_bytes(data, resolved, stem, str(path))
