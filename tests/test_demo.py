"""``expunge demo`` end to end through the real CLI, and containment: after it, no flagged row's URL or
caption appears in any file under the store or the release, nor in stdout or stderr."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from expunge.features.urlcanon import canonicalize


def _texts_of_parquet(path: Path) -> str:
    """Every value of every column, decoded: compression would hide a leak from a byte search."""
    table = pq.read_table(path)
    parts = []
    for col in table.columns:
        if pa.types.is_string(col.type):
            col = col.cast(pa.binary())  # shards may hold non-UTF-8 strings (quarantine cases)
        for v in col.to_pylist():
            if isinstance(v, bytes):
                parts.append(v.decode("latin-1"))
            else:
                parts.append(str(v))
    parts.append(str(table.schema.metadata))
    return "\n".join(parts)


def _haystacks(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        if not p.is_file():
            continue
        out[str(p)] = p.read_bytes().decode("latin-1")
        if p.suffix == ".parquet":
            out[str(p) + " (decoded)"] = _texts_of_parquet(p)
    return out


def test_demo_runs_and_contains_flagged_content(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "expunge.cli", "demo", "--rows", "20000", "--shards", "4", "--images", "300",
         "--dir", "d"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("OK:") == 3 and "SYNTHETIC" in proc.stdout and "MISMATCH" not in proc.stdout
    demo = tmp_path / "d"
    removed = pq.read_table(demo / "release" / "removed.parquet").to_pylist()
    flagged = [(r["shard"], r["row"]) for r in removed if r["action"] == "removed"]
    assert len(flagged) > 20
    # Collect the flagged rows' URLs (as stored and canonical) and captions from the input dataset.
    needles: set[str] = set()
    all_captions: Counter[str] = Counter()
    flagged_captions: set[str] = set()
    by_shard: dict[str, set[int]] = {}
    for shard, row in flagged:
        by_shard.setdefault(shard, set()).add(row)
    for shard_path in sorted((demo / "dataset").glob("*.parquet")):
        table = pq.read_table(shard_path, columns=["URL", "TEXT"])
        urls = [
            None if u is None else u.decode("utf-8", "replace")
            for u in table.column("URL").cast(pa.binary()).to_pylist()
        ]
        captions = table.column("TEXT").to_pylist()
        assert all(urls[row] is not None for row in by_shard.get(shard_path.name, ()))
        all_captions.update(c for c in captions if c)
        for row in by_shard.get(shard_path.name, ()):
            url = urls[row]
            assert url is not None
            needles.add(url.strip())
            canon = canonicalize(url.encode())
            assert canon is not None
            needles.add(canon.decode())
            flagged_captions.add(captions[row])
    # A caption shared with kept rows legitimately stays in the release; the unique ones must not leak.
    needles |= {c for c in flagged_captions if all_captions[c] == 1}
    assert len(needles) > len(flagged)
    haystacks = _haystacks(demo / ".expunge") | _haystacks(demo / "release")
    haystacks["stdout"] = proc.stdout
    haystacks["stderr"] = proc.stderr
    leaks = [(name, n) for name, text in haystacks.items() for n in needles if n in text]
    assert not leaks, f"{len(leaks)} leaks, first in {leaks[0][0]}"
    # The check is live: the needles are present in the input dataset.
    dataset_text = "".join(_texts_of_parquet(p) for p in (demo / "dataset").glob("*.parquet"))
    assert sum(n in dataset_text for n in needles) >= len(flagged)
