"""Cover sets: every public diff of releases hides each flagged row among >= K rows nobody can tell
apart from it, across a sequence of releases, with rows anyone can explain not counted."""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from expunge import api
from expunge.errors import ExpungeError
from expunge.release.cover import CoverState, ShardCandidates, plan_cover
from tests.conftest import SmallDataset, tree_bytes


def _keys(root: Path) -> set[str]:
    return {
        k
        for p in sorted(root.glob("*.parquet"))
        for k in pq.read_table(p, columns=["key"]).column(0).to_pylist()
    }


def test_cover_hides_flagged_rows_in_the_public_diff(small_ds: SmallDataset, tmp_path: Path) -> None:
    k = 10
    opts = api.Options(store=tmp_path / "store", workers=2, cover=k)
    lists = [f"{small_ds.lists['iwf']}:url_md5", f"{small_ds.lists['c3p']}:url_sha1:canonical"]
    summary = api.clean([str(small_ds.root)], tmp_path / "rel", lists=lists, opts=opts)
    flagged = len(small_ds.flagged)
    gone = summary["rows_removed"] + summary["rows_quarantined"]
    assert summary["rows_kept"] + gone == summary["rows_in"]
    # What the public sees: the old shards and the new ones. The flagged rows are among the missing...
    missing = _keys(small_ds.root) - _keys(tmp_path / "rel")
    flagged_keys = {
        pq.read_table(small_ds.root / s, columns=["key"]).column(0)[r].as_py() for s, r in small_ds.flagged
    }
    quarantined_keys = {
        pq.read_table(small_ds.root / s, columns=["key"]).column(0)[r].as_py() for s, r in small_ds.quarantine
    }
    assert flagged_keys <= missing
    # ...and quarantined rows (a malformed URL is public) do not count: K holds without them.
    assert len(missing - quarantined_keys) >= k * flagged
    # Nothing public says which: no per-row records in the release, no counts by pool.
    rel_files = set(tree_bytes(tmp_path / "rel"))
    assert "removed.parquet" not in rel_files and not any(f.startswith(".expunge") for f in rel_files)
    public = (tmp_path / "rel" / "MANIFEST.json").read_text() + (
        tmp_path / "rel" / "summary.json"
    ).read_text()
    assert not any(key in public for key in missing)
    manifest = json.loads((tmp_path / "rel" / "MANIFEST.json").read_text())
    assert manifest["policy"]["cover"]["k"] == k
    assert "by_pool" not in json.dumps(manifest) and set(manifest["policy"]["cover"]) == {
        "k",
        "rule",
        "drawn",
        "seed",
    }
    # The private records stay in the store, with the true reasons.
    private = list((tmp_path / "store").rglob("private/*/removed.parquet"))
    assert len(private) == 1
    reasons = pq.read_table(private[0]).column("reasons").to_pylist()
    assert sum(1 for r in reasons if r != ["cover:removed"] and not r[0].startswith("quarantine:")) == flagged


def test_cover_is_deterministic_for_a_store_and_differs_across_stores(
    small_ds: SmallDataset, tmp_path: Path
) -> None:
    lists = [f"{small_ds.lists['iwf']}:url_md5"]
    for out in ("a", "b"):
        api.clean(
            [str(small_ds.root)],
            tmp_path / out,
            lists=lists,
            opts=api.Options(store=tmp_path / "s", workers=1, cover=5),
        )
    assert tree_bytes(tmp_path / "a") == tree_bytes(tmp_path / "b")
    api.clean(
        [str(small_ds.root)],
        tmp_path / "c",
        lists=lists,
        opts=api.Options(store=tmp_path / "s2", workers=1, cover=5),
    )
    assert _keys(tmp_path / "a") != _keys(tmp_path / "c")  # another secret, another cover


# --- a sequence of releases -------------------------------------------------------------------------

SHARDS, ROWS = 3, 3000


def _status_dataset(base: Path) -> tuple[Path, list[tuple[str, int, str]], set[str], set[str]]:
    """img2dataset-like metadata with a public ``status`` column: every 7th row is a dead link, a few
    URLs are malformed (quarantined). Returns (root, candidate rows to flag in list order, dead keys,
    quarantined keys)."""
    root = base / "dataset"
    root.mkdir(parents=True)
    to_flag: list[tuple[str, int, str]] = []
    dead: set[str] = set()
    bad: set[str] = set()
    for s in range(SHARDS):
        name = f"part-{s:05d}.parquet"
        keys = [f"{s:02d}{i:06d}" for i in range(ROWS)]
        urls: list[str | None] = [f"https://img{i % 11}.cdn.example/{s}/{i}.jpg" for i in range(ROWS)]
        status = ["failed_to_download" if i % 7 == 0 else "success" for i in range(ROWS)]
        for i in range(5, ROWS, 401):
            urls[i] = "not a url"
            bad.add(keys[i])
        dead.update(k for k, st in zip(keys, status, strict=True) if st != "success")
        for i in range(3, ROWS, 151):
            if status[i] == "success" and keys[i] not in bad:
                to_flag.append((name, i, str(urls[i])))
        pq.write_table(
            pa.table({"key": keys, "url": pa.array(urls, pa.string()), "status": status}),
            root / name,
            row_group_size=1000,
        )
    # Interleave shards so each list version touches every shard.
    to_flag.sort(key=lambda t: (t[1], t[0]))
    return root, to_flag, dead, bad


def test_cover_holds_across_three_releases_with_growing_lists(tmp_path: Path) -> None:
    k = 5
    root, to_flag, dead, bad = _status_dataset(tmp_path)
    listing = tmp_path / "lists" / "partner.txt"
    listing.parent.mkdir()
    store = tmp_path / "store"
    removed: list[set[str]] = []
    flagged_at: list[set[str]] = []  # the rows flagged when each release was made
    every = _keys(root)
    for n, size in enumerate((6, 14, 25), start=1):
        chosen = to_flag[:size]
        listing.write_text("".join(hashlib.md5(u.encode()).hexdigest() + "\n" for _, _, u in chosen))
        out = tmp_path / f"v{n}"
        api.clean(
            [str(root)], out, lists=[f"{listing}:url_md5"], opts=api.Options(store=store, workers=2, cover=k)
        )
        removed.append(every - _keys(out))
        flagged_keys = {f"{int(sh[5:10]):02d}{i:06d}" for sh, i, _ in chosen}
        flagged_at.append(flagged_keys)
        assert flagged_keys <= removed[-1]
    # Monotone: each release's removals contain the previous release's.
    assert removed[0] <= removed[1] <= removed[2]
    # Every set an outsider can form from the three releases (diffs, their intersections and
    # differences) is a union of the atoms below; each atom must hide its flagged rows among >= K
    # rows that nobody can explain (dead links and malformed URLs are public, so they do not count).
    # An atom's flagged rows are those flagged when its rows left: a row that went as cover in one
    # release and is flagged later cannot be re-hidden in a release already published (a known limit,
    # stated in the README), so it counts against the release that flags it, not the one it left in.
    explainable = dead | bad
    for pattern in itertools.product((False, True), repeat=3):
        if not any(pattern):
            continue
        atom = set(every)
        for member, gone in zip(pattern, removed, strict=True):
            atom = atom & gone if member else atom - gone
        hits = len(atom & flagged_at[pattern.index(True)])
        assert len(atom - explainable) >= k * hits, (pattern, len(atom - explainable), hits)
    # The previous releases' diffs are the atoms themselves: checked above. The sequence is recorded.
    seqs = [json.loads((tmp_path / f"v{n}" / "MANIFEST.json").read_text())["release"] for n in (1, 2, 3)]
    assert [r["sequence"] for r in seqs] == [1, 1, 1]  # three folders: each starts its own sequence


def test_plan_cover_is_monotone_and_counts_only_unexplainable_rows() -> None:
    key = b"k" * 32
    rows = 20_000
    dead = np.arange(0, rows, 3)
    quarantined = np.arange(1, rows, 50)
    state = CoverState()
    covers = []
    for flagged in (np.array([2, 5, 8]), np.array([2, 5, 8, 11, 14, 17, 20]), np.arange(2, 200, 3)):
        shards = {"s": ShardCandidates(rows, flagged, np.setdiff1d(quarantined, flagged), dead)}
        plan = plan_cover(7, shards, key, "ds", state)
        cover = set(plan.rows["s"]) | set(flagged.tolist())  # every row that goes, but quarantined ones
        gone_before = set(covers[-1]) if covers else set()
        assert gone_before <= cover
        prev_flagged = set(state.covered.get("s", np.zeros(0)).tolist())
        new_flagged = set(flagged.tolist()) - prev_flagged - gone_before - set(quarantined.tolist())
        countable_new = (cover - gone_before) - set(dead.tolist()) - set(quarantined.tolist())
        assert len(countable_new) >= 6 * len(new_flagged)
        assert plan.state.threshold >= state.threshold
        covers.append(sorted(cover))
        state = plan.state
    # The same state and flags again: nothing newly exposed, the same cover (reruns are identical).
    again = plan_cover(7, shards, key, "ds", state)
    assert sorted(set(again.rows["s"]) | set(flagged.tolist())) == covers[-1]


def test_too_few_rows_to_hide_the_flagged_ones_is_refused() -> None:
    shards = {"s": ShardCandidates(100, np.arange(0, 100, 10), np.zeros(0, np.int64), np.zeros(0, np.int64))}
    with pytest.raises(ExpungeError, match="lower K"):
        plan_cover(20, shards, b"k" * 32, "ds")


def test_cover_with_published_records_is_refused(small_ds: SmallDataset, tmp_path: Path) -> None:
    opts = api.Options(store=tmp_path / "store", workers=1, cover=5, publish_records=True)
    with pytest.raises(ExpungeError, match="publish-records"):
        api.clean(
            [str(small_ds.root)], tmp_path / "rel", lists=[f"{small_ds.lists['iwf']}:url_md5"], opts=opts
        )
    assert not (tmp_path / "rel" / "removed.parquet").exists()
