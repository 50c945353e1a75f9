"""Third-party plug-ins, for real: packages from tests/plugins installed with pip, driven through the CLI.

``expunge-example-plugin`` adds the signal ``url_md5_0x`` and the format ``checksummed_parquet`` through
the ``expunge.signals`` and ``expunge.formats`` entry points; ``expunge-broken-plugin`` names a module
that does not exist. Each is installed into its own folder (``pip install --target``) and put on the CLI
subprocess's ``PYTHONPATH``, so the test environment itself is left as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

PLUGINS = Path(__file__).resolve().parent / "plugins"
ROWS = 40
PLANTED = {("part-00000.parquet", 3), ("part-00000.parquet", 17), ("part-00001.parquet", 29)}


def _install(name: str, base: Path) -> Path:
    """``pip install`` one plug-in offline into its own folder; skip (saying why) if it cannot be built."""
    src = base / "src" / name
    shutil.copytree(PLUGINS / name, src)  # the build writes egg-info beside the sources: not into tests/
    target = base / "site" / name
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-build-isolation", "--no-deps", "--no-index",
         "--quiet", "--target", str(target), str(src)],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"pip cannot build {name} offline here (needs setuptools>=61 and wheel): {last}")
    return target


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("plugins")
    return {n: _install(n, base) for n in ("expunge-example-plugin", "expunge-broken-plugin")}


def _cli(cwd: Path, path: list[Path], *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in path)}
    return subprocess.run(
        [sys.executable, "-m", "expunge.cli", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def _url(shard: int, row: int) -> str:
    return f"https://img{row % 5}.photos.example/{shard}/{row:04d}/view.jpg?w=256"


def _dataset(root: Path, checksums: bool) -> list[str]:
    """Two benign shards (sha256sum files beside them if asked); returns the planted SYNTHETIC URLs."""
    root.mkdir()
    for s in range(2):
        name = f"part-{s:05d}.parquet"
        urls = [_url(s, i) for i in range(ROWS)]
        table = pa.table({"key": [f"{s}-{i}" for i in range(ROWS)], "url": urls, "caption": ["a mug"] * ROWS})
        pq.write_table(table, root / name, row_group_size=16)
        if checksums:
            digest = hashlib.sha256((root / name).read_bytes()).hexdigest()
            (root / f"{name}.sha256").write_text(f"{digest}  {name}\n")
    return [_url(int(n[5:10]), i) for n, i in sorted(PLANTED)]


def _list_0x(path: Path, urls: list[str]) -> Path:
    """A SYNTHETIC list as SQL Server exports MD5s: 0x and upper-case hex."""
    path.write_text("".join("0x" + hashlib.md5(u.encode()).hexdigest().upper() + "\n" for u in urls))
    return path


def _one_line_refusal(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_plugin_signal_and_format_through_the_cli(sites: dict[str, Path], tmp_path: Path) -> None:
    planted = _dataset(tmp_path / "ds", checksums=True)
    listing = _list_0x(tmp_path / "synthetic-0x.txt", planted)
    site = [sites["expunge-example-plugin"]]

    imported = _cli(tmp_path, site, "lists", "import", str(listing), "--signal", "url_md5_0x", "--name", "sx")
    assert imported.returncode == 0, imported.stderr
    made = _cli(tmp_path, site, "clean", "ds", "--out", "rel", "--bank", "sx", "--json", "-q")
    assert made.returncode == 0, made.stderr
    summary = json.loads(made.stdout)
    assert (summary["rows_in"], summary["rows_removed"], summary["rows_kept"]) == (2 * ROWS, 3, 2 * ROWS - 3)
    for url in planted:  # containment: the plug-in's paths print no flagged URL either
        assert url not in made.stdout + made.stderr + imported.stdout + imported.stderr

    for s in range(2):  # exactly the planted rows went, in order; the checksum file names the new bytes
        name = f"part-{s:05d}.parquet"
        kept = pq.read_table(tmp_path / "rel" / name).column("url").to_pylist()
        assert kept == [_url(s, i) for i in range(ROWS) if (name, i) not in PLANTED]
        digest = hashlib.sha256((tmp_path / "rel" / name).read_bytes()).hexdigest()
        assert (tmp_path / "rel" / f"{name}.sha256").read_text() == f"{digest}  {name}\n"
    verified = _cli(tmp_path, site, "verify", "rel")
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_plugin_format_refuses_a_shard_failing_its_checksum(sites: dict[str, Path], tmp_path: Path) -> None:
    planted = _dataset(tmp_path / "ds", checksums=True)
    (tmp_path / "ds" / "part-00001.parquet.sha256").write_text("0" * 64 + "  part-00001.parquet\n")
    listing = _list_0x(tmp_path / "synthetic-0x.txt", planted)
    site = [sites["expunge-example-plugin"]]
    made = _cli(tmp_path, site, "clean", "ds", "--out", "rel", "--list", f"{listing}:url_md5_0x", "-q")
    assert "does not match its .sha256" in _one_line_refusal(made)
    assert not (tmp_path / "rel").exists()


def test_plugin_signal_refuses_values_without_its_prefix(sites: dict[str, Path], tmp_path: Path) -> None:
    listing = tmp_path / "synthetic.txt"
    listing.write_text("0x" + "AB" * 16 + "\n" + "ab" * 16 + "\n")  # line 2: a plain MD5 export
    site = [sites["expunge-example-plugin"]]
    proc = _cli(tmp_path, site, "lists", "import", str(listing), "--signal", "url_md5_0x")
    line = _one_line_refusal(proc)
    assert "line 2" in line and "ab" * 16 not in line


def test_plugin_soft_signal_in_a_policy(sites: dict[str, Path], tmp_path: Path) -> None:
    """``key_len`` comes from the plug-in's ``expunge.soft_signals`` entry point; a policy rule names it
    like a built-in, and the removal names the rule."""
    planted = _dataset(tmp_path / "ds", checksums=False)
    listing = tmp_path / "synthetic-md5.txt"
    listing.write_text("".join(hashlib.md5(u.encode()).hexdigest() + "\n" for u in planted))
    policy = tmp_path / "keys.toml"
    policy.write_text('[[rules]]\nname = "long-key"\naction = "remove"\nwhen = "key_len >= 4"\n')
    site = [sites["expunge-example-plugin"]]
    args = ["--list", f"{listing}:url_md5", "--policy", str(policy)]
    made = _cli(tmp_path, site, "clean", "ds", "--out", "rel", *args, "--json", "-q")
    assert made.returncode == 0, made.stderr
    summary = json.loads(made.stdout)
    long_keys = {(f"part-{s:05d}.parquet", i) for s in range(2) for i in range(10, ROWS)}  # "0-10".."1-39"
    assert summary["removed_by_rule"] == {"hash-lists": 3, "long-key": len(long_keys - PLANTED)}
    assert summary["rows_removed"] == len(long_keys | PLANTED)
    without = _cli(
        tmp_path, [], "clean", "ds", "--out", "rel2", "--list", f"{listing}:url_md5", "--policy", str(policy)
    )
    assert "unknown signal" in _one_line_refusal(without)


def test_broken_plugin_stops_only_runs_that_name_it(sites: dict[str, Path], tmp_path: Path) -> None:
    planted = _dataset(tmp_path / "ds", checksums=False)
    listing = tmp_path / "synthetic-md5.txt"
    listing.write_text("".join(hashlib.md5(u.encode()).hexdigest() + "\n" for u in planted))
    site = [sites["expunge-broken-plugin"]]

    made = _cli(tmp_path, site, "clean", "ds", "--out", "rel", "--list", f"{listing}:url_md5", "--json", "-q")
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["rows_removed"] == len(planted)

    named = _cli(tmp_path, site, "lists", "import", str(listing), "--signal", "url_md5_broken")
    line = _one_line_refusal(named)
    assert "url_md5_broken" in line and "failed to load" in line  # said, not taken for a typo
    listed = _cli(tmp_path, site, "clean", "ds", "--out", "rel2", "--list", f"{listing}:url_md5_broken", "-q")
    assert "url_md5_broken" in _one_line_refusal(listed)
    assert not (tmp_path / "rel2").exists()
