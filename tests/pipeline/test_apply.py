"""Derivatives follow a release: a subset, re-sharded, with another schema, cleaned by keep-list or banks."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from expunge import api
from tests.conftest import SmallDataset


def _derivative(ds: SmallDataset, root: Path) -> tuple[Path, set[str]]:
    """Every other row of the dataset, fewer columns, renamed URL column, re-cut into 3 shards."""
    tables = [pq.read_table(p) for p in sorted(ds.root.glob("*.parquet"))]
    whole = pa.concat_tables(tables)
    subset = whole.take(list(range(0, whole.num_rows, 2)))
    subset = (
        subset.select(["url", "caption"])
        .rename_columns(["URL", "TEXT"])
        .append_column("aesthetic", pa.array([5.0] * subset.num_rows))
    )
    root.mkdir()
    step = -(-subset.num_rows // 3)
    for i in range(3):
        pq.write_table(subset.slice(i * step, step), root / f"subset-{i}.parquet")
    flagged_urls = set()
    for name, row in ds.flagged:
        flagged_urls.add(pq.read_table(ds.root / name).column("url")[row].as_py())
    return root, flagged_urls


def test_apply_keep_list_drops_what_the_release_dropped(small_ds: SmallDataset, tmp_path: Path) -> None:
    opts = api.Options(store=tmp_path / "store", workers=2)
    api.clean([str(small_ds.root)], tmp_path / "release", lists=[f"{small_ds.lists['iwf']}:url_md5",
              f"{small_ds.lists['c3p']}:url_sha1:canonical"], opts=opts)  # fmt: skip
    deriv, flagged_urls = _derivative(small_ds, tmp_path / "derivative")
    summary = api.apply(tmp_path / "release", [str(deriv)], tmp_path / "out", opts=opts)
    assert summary["rows_kept"] + summary["rows_removed"] + summary["rows_quarantined"] == summary["rows_in"]
    kept_urls = set(pa.concat_tables([pq.read_table(p) for p in (tmp_path / "out").glob("subset-*.parquet")])
                    .column("URL").to_pylist())  # fmt: skip
    assert not kept_urls & flagged_urls
    in_subset = {
        u
        for u in pa.concat_tables([pq.read_table(p) for p in deriv.glob("*.parquet")])
        .column("URL")
        .to_pylist()
    }
    assert summary["rows_removed"] == len(in_subset & flagged_urls)
    assert set(summary["removed_by_signal"]) == {"release_keep"}
    assert pq.read_table(tmp_path / "out" / "subset-0.parquet").column_names == ["URL", "TEXT", "aesthetic"]


def test_apply_with_lists_matches_the_banks(small_ds: SmallDataset, tmp_path: Path) -> None:
    opts = api.Options(store=tmp_path / "store", workers=1)
    api.clean(
        [str(small_ds.root)], tmp_path / "release", lists=[f"{small_ds.lists['iwf']}:url_md5"], opts=opts
    )
    deriv, _ = _derivative(small_ds, tmp_path / "derivative")
    summary = api.apply(
        tmp_path / "release",
        [str(deriv)],
        tmp_path / "out",
        lists=[f"{small_ds.lists['iwf']}:url_md5"],
        opts=opts,
    )
    assert set(summary["removed_by_signal"]) <= {"url_md5"}
    assert summary["rows_kept"] + summary["rows_removed"] + summary["rows_quarantined"] == summary["rows_in"]


def test_apply_through_the_cli(small_ds: SmallDataset, tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    cli = [sys.executable, "-m", "expunge.cli"]
    run: dict[str, object] = {"cwd": tmp_path, "capture_output": True, "text": True, "timeout": 300}
    c3p = f"{small_ds.lists['c3p']}:url_sha1:canonical"
    made = subprocess.run([*cli, "clean", str(small_ds.root), "--out", "release", "-q", "--list", c3p], **run)
    assert made.returncode == 0, made.stderr
    deriv, flagged = _derivative(small_ds, tmp_path / "derivative")
    proc = subprocess.run([*cli, "apply", "release", str(deriv), "--out", "d-out", "--json"], **run)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["rows_removed"] > 0 and not any(u in proc.stdout + proc.stderr for u in flagged)


def test_apply_keeps_only_exact_url_bytes_of_the_release(tmp_path: Path) -> None:
    """A raw-recipe list flags one spelling; the release kept another spelling of the same canonical URL.
    The derivative's flagged spelling must not ride through on the canonical form (issue 8, defect 5)."""
    import hashlib

    kept_form = "http://flagged.example/x.jpg"
    flagged_form = "http://FLAGGED.example/x.jpg"  # the same URL under Safe Browsing canonicalisation
    others = [f"https://img.photos.example/{i}.jpg" for i in range(20)]
    (tmp_path / "ds").mkdir()
    pq.write_table(pa.table({"url": [kept_form, flagged_form, *others]}), tmp_path / "ds" / "a.parquet")
    listing = tmp_path / "synthetic.txt"
    listing.write_text(hashlib.md5(flagged_form.encode()).hexdigest() + "\n")
    opts = api.Options(store=tmp_path / "store", workers=1)
    api.clean([str(tmp_path / "ds")], tmp_path / "release", lists=[f"{listing}:url_md5"], opts=opts)
    assert flagged_form not in pq.read_table(tmp_path / "release" / "a.parquet").column("url").to_pylist()
    (tmp_path / "deriv").mkdir()
    pq.write_table(
        pa.table({"url": [flagged_form, kept_form.upper().replace("HTTP://", "http://"), *others[:5]]}),
        tmp_path / "deriv" / "d.parquet",
    )
    summary = api.apply(tmp_path / "release", [str(tmp_path / "deriv")], tmp_path / "out", opts=opts)
    kept = pq.read_table(tmp_path / "out" / "d.parquet").column("url").to_pylist()
    assert flagged_form not in kept
    assert kept == others[:5]
    assert summary["rows_removed"] == 2
