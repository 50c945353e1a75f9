"""Adversarial inputs against the fail-closed list fixes (issue 8, defects 1, 7, 8): each test is an
attack that got a listed value left out of the bank a run matches, now refused or honoured.

Attacks that found nothing (0x prefixes, inner whitespace, huge lines, UTF-16, NUL, lone CR, pytx
odd spacing, quoted/multi-line CSV fields, directories, FIFOs, dangling symlinks) are listed in the
adversary's report, not kept here.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from expunge import api
from expunge.errors import ExpungeError
from expunge.lists.bank import import_list, load_info, read_values, values_path
from expunge.store import Store

MARK = "zebrafish7731"  # a distinctive neutral token placed where content must never be quoted


def _values(store: Store, name: str, width: int) -> set[bytes]:
    info = load_info(store, name)
    return set(read_values(values_path(store.bank_dir(name), info.version), width).tolist())


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "expunge.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


# Defect class 1/8 (a list silently not matched as given): the "unchanged file" shortcut ignored that
# the recipe left out of FILE:SIGNAL means the signal's default, so a bank imported earlier with another
# recipe was reused and the raw-hashed list matched nothing.
def test_default_recipe_is_not_replaced_by_an_earlier_banks_recipe(tmp_path: Path) -> None:
    flagged = f"http://{MARK.upper()}.example/A%7e.jpg"  # its canonical form differs from its raw bytes
    ds = tmp_path / "ds"
    ds.mkdir()
    urls = [flagged] + [f"http://ok.example/{i}.jpg" for i in range(5)]
    pq.write_table(pa.table({"url": urls, "caption": ["a mug"] * len(urls)}), ds / "p.parquet")
    (tmp_path / "raw.txt").write_text(hashlib.md5(flagged.encode()).hexdigest() + "\n")
    first = _cli(["lists", "import", "raw.txt", "--signal", "url_md5", "--recipe", "canonical"], tmp_path)
    assert first.returncode == 0, first.stderr
    res = _cli(["clean", "ds", "--list", "raw.txt:url_md5", "--out", "out", "-q", "--json"], tmp_path)
    # Either refused with one line, or the raw recipe is used and the row removed: never published.
    if res.returncode == 2:
        assert res.stderr.count("\n") == 1 and MARK.lower() not in res.stderr.lower()
        assert "Traceback" not in res.stderr
    else:
        assert res.returncode == 0, res.stderr
        summary = json.loads(res.stdout)
        assert summary["rows_removed"] == 1
        assert {b["recipe"] for b in summary["banks"]} == {"raw"}


# Defect class 1/8: re-importing the same file with another --column kept the first column's values
# ("unchanged"), so the values of the column asked for were never imported.
def test_another_column_of_the_same_file_is_imported(tmp_path: Path) -> None:
    store = Store(tmp_path / "st")
    a, b = hashlib.md5(b"http://a.example/1").digest(), hashlib.md5(b"http://b.example/2").digest()
    f = tmp_path / "two.csv"
    f.write_text(f"md5,hash\n{a.hex()},{b.hex()}\n")
    import_list(store, f, signal="url_md5", column="md5")
    res = import_list(store, f, signal="url_md5", column="hash")
    assert not res.unchanged
    assert _values(store, res.name, 16) == {b}


# Defect class 1/8: the same with another --format (plain hex lines read as pytx or plain).
def test_another_format_of_the_same_file_is_not_unchanged(tmp_path: Path) -> None:
    store = Store(tmp_path / "st")
    a = hashlib.md5(b"http://a.example/1").hexdigest()
    b = hashlib.md5(b"http://b.example/2").hexdigest()
    f = tmp_path / "l.csv"
    f.write_text(f"hash\n{a}\n{b}\n")
    with pytest.raises(ExpungeError):  # as plain text, "hash" is not a hex value
        import_list(store, f, signal="url_md5", fmt="plain")
    res = import_list(store, f, signal="url_md5", fmt="csv")
    assert _values(store, res.name, 16) == {bytes.fromhex(a), bytes.fromhex(b)}


# Defect class 8 (partial list): a CSV header naming the value column twice silently used the first.
def test_csv_with_the_value_column_named_twice_is_refused(tmp_path: Path) -> None:
    a = hashlib.md5(b"http://a.example/1").hexdigest()
    b = hashlib.md5(b"http://b.example/2").hexdigest()
    f = tmp_path / "dup.csv"
    f.write_text(f"hash,HASH\n{a},{b}\n")
    with pytest.raises(ExpungeError) as err:
        import_list(Store(tmp_path / "st"), f, signal="url_md5")
    assert a not in str(err.value) and b not in str(err.value)


# Defect class 8 (a list parsed as something it is not): a CSV list of URLs saved as .txt was read as
# plain text, one "URL" per line: "url,category" and "http://x/y.jpg,cat" were hashed as URLs, so the
# listed URL itself was never in the bank.
def test_csv_url_list_without_csv_extension_is_read_as_csv(tmp_path: Path) -> None:
    store = Store(tmp_path / "st")
    flagged = f"http://{MARK}.example/x.jpg"
    f = tmp_path / "urls.txt"
    f.write_text(f"url,category\n{flagged},misc\n")
    from expunge.signals import get_signal

    want = get_signal("url").parse(flagged)
    try:
        res = import_list(store, f, signal="url")
    except ExpungeError as exc:  # refusing is fine too
        assert MARK not in str(exc)
        return
    assert _values(store, res.name, 32) == {want}


def test_single_word_csv_header_in_a_txt_url_list_is_not_a_value(tmp_path: Path) -> None:
    store = Store(tmp_path / "st")
    flagged = f"http://{MARK}.example/x.jpg"
    f = tmp_path / "urls.txt"
    f.write_text(f"url\n{flagged}\n")
    from expunge.signals import get_signal

    res = api.import_list(f, store=store.root, signal="url")
    assert _values(store, res.name, 32) == {get_signal("url").parse(flagged)}
