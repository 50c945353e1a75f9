"""The CLI fails closed on lists (issue 8, defects 1, 7 and 8), end to end.

Two list files with one stem are both matched; an import killed before its commit is redone by the
rerun, whose new values are then matched; a list with no values, or a CSV row led by ``#``, is refused
with one line (exit 2) unless ``--allow-empty`` says an empty list is meant.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.cli.test_app import assert_one_line_error, run
from tests.conftest import SmallDataset

MARK = "zebrafish7731"  # a distinctive neutral token placed on refused lines


def _md5s(small_ds: SmallDataset) -> list[str]:
    """The md5 values of the small dataset's CSV list that flag rows (its decoy left out)."""
    rows = small_ds.lists["iwf"].read_text().splitlines()[1:]
    return [r.split(",")[0] for r in rows if not r.startswith("0" * 32)]


def _clean(small_ds: SmallDataset, cwd: Path, out: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run(["clean", str(small_ds.root), "--out", out, "-q", "--json", *args], cwd)


def test_two_lists_with_one_stem_are_both_matched(small_ds: SmallDataset, tmp_path: Path) -> None:
    md5s = _md5s(small_ds)
    half = len(md5s) // 2
    (tmp_path / "iwf").mkdir()
    (tmp_path / "c3p").mkdir()
    (tmp_path / "iwf" / "hashes.txt").write_text("\n".join(md5s[:half]) + "\n")
    (tmp_path / "c3p" / "hashes.txt").write_text("\n".join(md5s[half:]) + "\n")
    lists = ["--list", "iwf/hashes.txt:url_md5", "--list", "c3p/hashes.txt:url_md5"]
    first = _clean(small_ds, tmp_path, "one", *lists)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary["rows_removed"] == len(md5s)
    banks = {b["name"]: (b["version"], b["count"]) for b in summary["banks"]}
    assert len(banks) == 2 and banks["hashes"] == (1, half)
    # The same command again uses the same two banks, unchanged.
    again = _clean(small_ds, tmp_path, "two", *lists)
    assert again.returncode == 0, again.stderr
    assert {b["name"]: (b["version"], b["count"]) for b in json.loads(again.stdout)["banks"]} == banks
    assert json.loads(again.stdout)["rows_removed"] == len(md5s)


def test_explicit_name_onto_another_files_bank_says_so(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "l.txt").write_text("0" * 31 + "1\n")
    (tmp_path / "b" / "l.txt").write_text("0" * 31 + "2\n")
    assert run(["lists", "import", "a/l.txt", "--signal", "url_md5"], tmp_path).returncode == 0
    derived = run(["lists", "import", "b/l.txt", "--signal", "url_md5"], tmp_path)
    assert derived.returncode == 0, derived.stderr
    assert "note:" in derived.stderr and "bank l-" in derived.stdout
    named = run(["lists", "import", "b/l.txt", "--signal", "url_md5", "--name", "l"], tmp_path)
    assert named.returncode == 0, named.stderr
    assert "note:" in named.stderr and "next version" in named.stderr
    assert "bank l version 2" in named.stdout
    banks = json.loads(run(["lists", "ls", "--json"], tmp_path).stdout)
    assert sorted(b["version"] for b in banks) == [1, 2]
    diff = run(["lists", "diff", "l"], tmp_path)
    assert diff.returncode == 0 and "+1" in diff.stdout


KILL_BEFORE_COMMIT = textwrap.dedent(
    """
    import os, signal, sys
    real = os.replace
    def replace(src, dst, *a, **k):
        if str(dst).endswith("bank.json") and os.path.exists(dst):
            os.kill(os.getpid(), signal.SIGKILL)  # new values written, bank.json not yet replaced
        return real(src, dst, *a, **k)
    os.replace = replace
    sys.argv = ["expunge", *sys.argv[1:]]
    from expunge.cli.app import main
    main()
    """
)


def test_import_killed_before_its_commit_is_redone(small_ds: SmallDataset, tmp_path: Path) -> None:
    md5s = _md5s(small_ds)
    listing = tmp_path / "partner.txt"
    listing.write_text("\n".join(md5s[:3]) + "\n")
    assert run(["lists", "import", "partner.txt", "--signal", "url_md5"], tmp_path).returncode == 0
    listing.write_text("\n".join(md5s) + "\n")  # the newer list, at the same path
    killed = subprocess.run(
        [sys.executable, "-c", KILL_BEFORE_COMMIT, "lists", "import", "partner.txt", "--signal", "url_md5"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -9, killed.stderr
    rerun = run(["lists", "import", "partner.txt", "--signal", "url_md5"], tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert "version 2" in rerun.stdout and "unchanged" not in rerun.stdout
    cleaned = _clean(small_ds, tmp_path, "out", "--bank", "partner")
    assert cleaned.returncode == 0, cleaned.stderr
    assert json.loads(cleaned.stdout)["rows_removed"] == len(md5s)


def test_empty_lists_are_refused_unless_allowed(small_ds: SmallDataset, tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_text("# SYNTHETIC: nothing listed yet\n\n")
    (tmp_path / "header.csv").write_text("md5,id,category\n")
    for name in ("empty.txt", "header.csv"):
        proc = run(["lists", "import", name, "--signal", "url_md5"], tmp_path)
        assert_one_line_error(proc, name, "no values", "--allow-empty")
    ok = run(["lists", "import", "empty.txt", "--signal", "url_md5", "--allow-empty"], tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "holds no values" in ok.stderr


def test_an_empty_list_refuses_clean_and_apply(small_ds: SmallDataset, tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_text("\ufeff\n  \n")
    (tmp_path / "header.csv").write_text("md5,id,category\n")
    # --list: one empty list refuses the run before anything is written.
    iwf = f"{small_ds.lists['iwf']}:url_md5"
    proc = _clean(small_ds, tmp_path, "out", "--list", iwf, "--list", "header.csv:url_md5")
    assert_one_line_error(proc, "header.csv", "no values")
    assert not (tmp_path / "out").exists()
    allowed = _clean(
        small_ds, tmp_path, "out", "--list", iwf, "--list", "header.csv:url_md5", "--allow-empty"
    )
    assert allowed.returncode == 0, allowed.stderr
    assert json.loads(allowed.stdout)["rows_removed"] == len(_md5s(small_ds))
    # apply --list refuses the same way.
    proc = run(
        ["apply", "out", str(small_ds.root), "--out", "deriv", "-q", "--list", "empty.txt:url_md5"], tmp_path
    )
    assert_one_line_error(proc, "empty.txt", "no values")


def test_csv_row_led_by_hash_refuses_the_list(tmp_path: Path) -> None:
    (tmp_path / "l.csv").write_text(f"md5,id\n{'a' * 32},1\n#{MARK},2\n")
    proc = run(["lists", "import", "l.csv", "--signal", "url_md5"], tmp_path)
    assert_one_line_error(proc, "l.csv", "line 3")
    assert MARK not in proc.stderr
