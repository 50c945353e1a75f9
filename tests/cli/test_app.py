"""The real ``expunge`` CLI, end to end: clear one-line errors, no network, the step-by-step flow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import SmallDataset

EXPUNGE = [sys.executable, "-m", "expunge.cli"]


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*EXPUNGE, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def test_step_by_step_flow_matches_one_shot(small_ds: SmallDataset, tmp_path: Path) -> None:
    iwf, c3p = small_ds.lists["iwf"], small_ds.lists["c3p"]
    assert (
        run(["lists", "import", str(iwf), "--signal", "url_md5", "--source", "TEST"], tmp_path).returncode
        == 0
    )
    imp = run(["lists", "import", str(c3p), "--signal", "url_sha1", "--recipe", "canonical"], tmp_path)
    assert imp.returncode == 0, imp.stderr
    ls = run(["lists", "ls", "--json"], tmp_path)
    banks = {b["name"]: b for b in json.loads(ls.stdout)}
    assert banks["iwf"]["signal"] == "url_md5" and banks["c3p"]["recipe"] == "canonical"
    assert run(["index", str(small_ds.root), "-q"], tmp_path).returncode == 0
    matched = run(["match", str(small_ds.root), "-q", "--json"], tmp_path)
    assert matched.returncode == 0, matched.stderr
    assert sum(json.loads(matched.stdout).values()) == len(small_ds.flagged)
    step = run(["clean", str(small_ds.root), "--out", "step", "-q", "--json"], tmp_path)
    assert step.returncode == 0, step.stderr
    one = run(
        ["clean", str(small_ds.root), "--store", "other", "--out", "one", "--json",
         "--list", f"{iwf}:url_md5", "--list", f"{c3p}:url_sha1:canonical"],
        tmp_path,
    )  # fmt: skip
    assert one.returncode == 0, one.stderr
    a, b = json.loads(step.stdout), json.loads(one.stdout)
    for key in ("rows_in", "rows_kept", "rows_removed", "rows_quarantined", "removed_by_signal"):
        assert a[key] == b[key]
    assert json.loads((tmp_path / "one" / "summary.json").read_text()) == b
    diff = run(["lists", "diff", "iwf"], tmp_path)
    assert diff.returncode == 0 and "+" in diff.stdout


def test_malformed_list_is_refused_with_file_and_line(small_ds: SmallDataset, tmp_path: Path) -> None:
    bad = tmp_path / "partner.txt"
    bad.write_text("# header\n" + "a" * 32 + "\n" + "b" * 31 + "\n" + "c" * 32 + "\n")
    proc = run(["clean", str(small_ds.root), "--out", "o", "--list", f"{bad}:url_md5"], tmp_path)
    assert_one_line_error(proc, "partner.txt", "line 3", "32 hex digits")
    assert not (tmp_path / "o").exists()
    bad.write_text("a" * 31 + "z\n")
    assert_one_line_error(
        run(["lists", "import", str(bad), "--signal", "url_md5"], tmp_path), "line 1", "hex"
    )
    mixed = tmp_path / "mixed.txt"
    mixed.write_text(f"url_md5 {'a' * 32}\nurl_sha1 {'b' * 40}\n")
    assert_one_line_error(run(["lists", "import", str(mixed)], tmp_path), "mixed.txt", "line 2", "mixed")
    # Nothing was stored from the refused lists.
    ls = run(["lists", "ls", "--json"], tmp_path)
    assert json.loads(ls.stdout) == []


def test_plaintext_url_list_error_does_not_echo_the_url(small_ds: SmallDataset, tmp_path: Path) -> None:
    bad = tmp_path / "urls.txt"
    bad.write_text("http://ok.example/a.jpg\njavascript:secret-token-xyz\n")
    proc = run(["lists", "import", str(bad), "--signal", "url"], tmp_path)
    assert_one_line_error(proc, "urls.txt", "line 2")
    assert "secret-token-xyz" not in proc.stderr + proc.stdout


def test_missing_url_column(tmp_path: Path) -> None:
    (tmp_path / "ds").mkdir()
    pq.write_table(pa.table({"caption": ["a mug"]}), tmp_path / "ds" / "part-0.parquet")
    lst = tmp_path / "l.txt"
    lst.write_text("a" * 32 + "\n")
    proc = run(["clean", "ds", "--out", "o", "--list", f"{lst}:url_md5"], tmp_path)
    assert_one_line_error(proc, "part-0.parquet", "no URL column")
    proc = run(["clean", "ds", "--out", "o", "--list", f"{lst}:url_md5", "--url-column", "link"], tmp_path)
    assert_one_line_error(proc, "part-0.parquet", "link")


@pytest.mark.parametrize("damage", ["truncate", "garbage", "middle"])
def test_corrupt_parquet_is_named(small_ds: SmallDataset, tmp_path: Path, damage: str) -> None:
    shard = small_ds.root / "part-00001.parquet"
    data = bytearray(shard.read_bytes())
    if damage == "truncate":
        shard.write_bytes(bytes(data[: len(data) // 2]))
    elif damage == "garbage":
        shard.write_bytes(b"this is not parquet at all")
    else:
        mid = len(data) // 3
        data[mid : mid + 2000] = os.urandom(2000)
        shard.write_bytes(bytes(data))
    proc = run(
        ["clean", str(small_ds.root), "--out", "o", "-q", "--list", f"{small_ds.lists['iwf']}:url_md5"],
        tmp_path,
    )
    assert_one_line_error(proc, "part-00001.parquet")
    assert not (tmp_path / "o" / "summary.json").exists()


def test_missing_dataset_and_unknown_signal(tmp_path: Path) -> None:
    assert_one_line_error(run(["index", "nowhere"], tmp_path), "nowhere", "not found")
    lst = tmp_path / "l.txt"
    lst.write_text("a" * 32 + "\n")
    (tmp_path / "ds").mkdir()
    pq.write_table(pa.table({"url": ["http://a.example/x"]}), tmp_path / "ds" / "p.parquet")
    assert_one_line_error(
        run(["clean", "ds", "--out", "o", "--list", f"{lst}:url_md55"], tmp_path), "url_md55"
    )
    assert_one_line_error(run(["clean", "ds", "--out", "o", "--list", f"{lst}"], tmp_path), "signal type")


AUDIT = textwrap.dedent(
    """
    import os, socket, sys

    _LOG = os.environ["EXPUNGE_TEST_NET_LOG"]

    def _hook(event, args):
        bad = False
        if event == "socket.__new__":
            bad = len(args) > 1 and args[1] in (socket.AF_INET, socket.AF_INET6)
        elif event in ("socket.connect", "socket.bind", "socket.sendto"):
            addr = args[1] if len(args) > 1 else None
            bad = not isinstance(addr, (str, bytes))  # AF_UNIX paths are local plumbing
        elif event in ("socket.getaddrinfo", "socket.gethostbyname", "urllib.Request", "http.client.connect"):
            bad = True
        if bad:
            with open(_LOG, "a") as fh:
                fh.write(f"{os.getpid()} {event}\\n")
            raise RuntimeError("network use is forbidden in this test: " + event)

    sys.addaudithook(_hook)
    """
)


def test_index_match_clean_open_no_socket(small_ds: SmallDataset, tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(AUDIT)
    log = tmp_path / "net.log"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")])
    env["EXPUNGE_TEST_NET_LOG"] = str(log)
    # The hook works: a socket attempt under it is logged.
    probe = subprocess.run(
        [sys.executable, "-c", "import socket; socket.socket(socket.AF_INET)"], env=env, capture_output=True
    )
    assert probe.returncode != 0 and log.read_text().strip()
    log.unlink()
    iwf = small_ds.lists["iwf"]
    for args in (
        ["lists", "import", str(iwf), "--signal", "url_md5"],
        ["index", str(small_ds.root), "--workers", "2"],
        ["match", str(small_ds.root), "--workers", "2"],
        ["clean", str(small_ds.root), "--out", "o", "--workers", "2"],
    ):
        proc = run(args, tmp_path, env)
        assert proc.returncode == 0, (args, proc.stderr)
    assert not log.exists(), log.read_text()


def test_a_store_in_use_is_refused_clearly(small_ds: SmallDataset, tmp_path: Path) -> None:
    from expunge.store import Store

    store = Store(tmp_path / ".expunge")
    with store.lock():
        proc = run(
            ["clean", str(small_ds.root), "--out", "o", "--list", f"{small_ds.lists['iwf']}:url_md5"],
            tmp_path,
        )
    assert_one_line_error(proc, "in use by another expunge process")
