"""One-line errors show what they name, and a terminal obeys none of it (found attacking lineage: a
folder named with an escape sequence reached the terminal raw and forged a warning line)."""

from __future__ import annotations

import pickle

from expunge.errors import ExpungeError


def test_one_line_escapes_what_a_terminal_would_act_on() -> None:
    err = ExpungeError("refused", "/data/\x1b[31mRED\nwarning: forged\u202eevil\u200b", "line 3")
    line = err.one_line()
    assert "\x1b" not in line and "\n" not in line and "\u202e" not in line and "\u200b" not in line
    assert "\\x1b" in line and "\\u202e" in line and line.endswith(":line 3: refused")
    assert ExpungeError("plain", "/data/café/x.parquet").one_line() == "/data/café/x.parquet: plain"


def test_errors_survive_pickling_with_their_fields() -> None:
    err = pickle.loads(pickle.dumps(ExpungeError("m", "/p", "row 2")))
    assert (err.message, err.path, err.where) == ("m", "/p", "row 2")
