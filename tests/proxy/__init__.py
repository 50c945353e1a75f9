"""Helpers for the match-by-proxy tests: removed rows of a clean, and answers rewritten by a forger."""

from __future__ import annotations

import glob
import hashlib
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from expunge.proxy import package as pkg


def removed_rows(store: Path) -> set[tuple[str, int]]:
    """(shard, row) of every row the store's clean(s) removed (quarantined rows left out)."""
    found: set[tuple[str, int]] = set()
    for f in glob.glob(str(store / "datasets" / "*" / "private" / "*" / "removed.parquet")):
        t = pq.read_table(f)
        t = t.filter(pc.equal(t.column("action"), "removed"))
        found |= set(zip(t.column("shard").to_pylist(), t.column("row").to_pylist(), strict=True))
    return found


def package_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


def package_strings(folder: Path) -> list[str]:
    """Every string value of every parquet file, and every string of the manifests."""
    out: list[str] = []
    for p in sorted(folder.rglob("*.parquet")):
        t = pq.read_table(p)
        for col in t.columns:
            if pa.types.is_string(col.type):
                out += [v for v in col.to_pylist() if v is not None]
    for p in sorted(folder.glob("*.json")):

        def walk(x: Any) -> None:
            if isinstance(x, str):
                out.append(x)
            elif isinstance(x, dict):
                for k, v in x.items():
                    out.append(k)
                    walk(v)
            elif isinstance(x, list):
                for v in x:
                    walk(v)

        walk(json.loads(p.read_text()))
    return out


def rewrite_part(answer: Path, file: str, table: pa.Table) -> None:
    """What a forger without the hotline's key can do: replace a part and fix up the manifest so the
    package is self-consistent (but unsigned)."""
    pkg.write_table(answer / file, table)
    manifest = json.loads((answer / pkg.ANSWER_MANIFEST).read_text())
    for e in manifest["signals"]:
        if e["file"] == file:
            e.update(pkg.file_entry(answer / file))
            e["rows"] = table.num_rows
            e["matched"] = len(set(table.column("value").to_pylist()))
    (answer / pkg.ANSWER_MANIFEST).write_bytes(pkg.dumps(manifest))
    (answer / (pkg.ANSWER_MANIFEST + pkg.SIG_SUFFIX)).unlink(missing_ok=True)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
