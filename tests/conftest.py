"""Shared fixtures: where the read-only shared test data lives, and small helpers."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The read-only ``../shared`` folder; tests that need it skip, saying why, when it is absent."""
    if not SHARED.is_dir():
        pytest.skip(f"shared test data not found at {SHARED} (CI always has it beside the clone)")
    return SHARED


# ---------------------------------------------------------------------------------------------------
# A small, benign, LAION-like dataset built in-test, so pipeline tests do not depend on the demo.

import hashlib  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402


@dataclass
class SmallDataset:
    root: Path
    lists: dict[str, Path]  # name → list file
    flagged: set[tuple[str, int]]  # (shard name, row) that some list catches
    quarantine: set[tuple[str, int]]  # rows with null/empty/unparseable URLs (never flagged)
    clean_shard: str  # a shard with no flagged and no quarantined rows
    rows: int


def build_small_dataset(
    base: Path, shards: int = 4, rows_per_shard: int = 2_000, row_group_size: int = 500
) -> SmallDataset:
    """Benign synthetic rows on .example hosts; every 97th row of shards 0..n-2 is 'flagged' (synthetic)."""
    root = base / "dataset"
    root.mkdir(parents=True)
    flagged: set[tuple[str, int]] = set()
    quarantine: set[tuple[str, int]] = set()
    md5s: list[str] = []
    sha1_canonical: list[str] = []
    for s in range(shards):
        name = f"part-{s:05d}.parquet"
        urls: list[str | None] = [
            f"https://img{i % 13}.photos.example/{s}/{i:06d}/view-{i * 7 % 1000}.jpg?w=512"
            for i in range(rows_per_shard)
        ]
        captions = [f"a {('red', 'blue', 'green')[i % 3]} mug number {s}-{i}" for i in range(rows_per_shard)]
        if s < shards - 1:
            for i in range(3, rows_per_shard, 97):
                flagged.add((name, i))
                if i % 2:
                    md5s.append(hashlib.md5(str(urls[i]).encode()).hexdigest())
                else:
                    # Stored in a non-canonical form; listed by its canonical form.
                    canonical = f"http://cdn{s}.variant.example/{i}/a.jpg"
                    urls[i] = f"  HTTP://CDN{s}.Variant.Example:80/{i}/x/../%61.jpg#frag "
                    sha1_canonical.append(hashlib.sha1(canonical.encode()).hexdigest())
            for i, bad in ((10, None), (11, ""), (12, "data:image/png;base64,AAAA"), (13, "not a url")):
                urls[i] = bad
                quarantine.add((name, i))
        table = pa.table(
            {
                "key": pa.array([f"{s:05d}{i:06d}" for i in range(rows_per_shard)]),
                "url": pa.array(urls, pa.string()),
                "caption": pa.array(captions),
                "similarity": pa.array([0.3 + (i % 10) / 100 for i in range(rows_per_shard)], pa.float64()),
                "punsafe": pa.array([(i % 100) / 1000 for i in range(rows_per_shard)], pa.float32()),
            }
        ).replace_schema_metadata({"origin": "expunge test (synthetic)"})
        pq.write_table(table, root / name, row_group_size=row_group_size, compression="zstd")
    lists_dir = base / "lists"
    lists_dir.mkdir()
    iwf = lists_dir / "iwf.csv"
    iwf.write_text(
        "md5,id,category\n"
        + "".join(f"{h},{n},synthetic\n" for n, h in enumerate(md5s))
        + f"{'0' * 32},999,synthetic-decoy\n"
    )
    c3p = lists_dir / "c3p.txt"
    c3p.write_text("# SYNTHETIC list: sha1 of canonical benign URLs\n" + "\n".join(sha1_canonical) + "\n")
    return SmallDataset(
        root,
        {"iwf": iwf, "c3p": c3p},
        flagged,
        quarantine,
        f"part-{shards - 1:05d}.parquet",
        shards * rows_per_shard,
    )


@pytest.fixture
def small_ds(tmp_path: Path) -> SmallDataset:
    return build_small_dataset(tmp_path)


def tree_bytes(root: Path, skip: tuple[str, ...] = ()) -> dict[str, bytes]:
    """Every file under ``root`` (relative path → bytes), for byte-identity comparisons."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not any(part in skip for part in p.relative_to(root).parts)
    }
