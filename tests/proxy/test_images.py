"""Match by proxy on image signals: exact image digests and PDQ within the hotline's threshold remove
the same rows as matching the lists directly, and the packages hold no image byte, key or caption.

Images are generated; the "listed" originals are SYNTHETIC (expunge.demo.synth_images).
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

from expunge import api
from expunge.config import RunConfig
from expunge.demo.synth_images import generate_image_dataset, write_image_lists
from tests.proxy import package_bytes, package_strings, removed_rows


def test_image_digests_and_pdq_by_proxy_remove_what_the_lists_would(tmp_path: Path) -> None:
    ds = generate_image_dataset(tmp_path / "images", samples=60, shards=2, listed=3, size=64)
    lists = write_image_lists(ds, tmp_path / "hotline", listed=3, size=64)
    holder = RunConfig(store=tmp_path / "st", workers=1)
    q = tmp_path / "Q"
    res = api.proxy_export([str(ds.root)], q, signals="image_md5,pdq", opts=holder)
    assert set(res.counts) == {"image_md5:stored", "pdq:decoded"} and res.counts["pdq:decoded"] > 0
    manifest = json.loads((q / "query.json").read_text())
    assert manifest["quality_floor"] == holder.quality_floor
    ans = api.proxy_match(
        q, tmp_path / "A", lists=[f"{lists['image_md5']}:image_md5", f"{lists['pdq']}:pdq"], source="SYNTH"
    )
    assert ans.matched["pdq:decoded"] >= 1 and ans.matched["image_md5:stored"] >= 1
    # Every PDQ answer line carries its distance, within the list's threshold; exact ones none.
    pdq = pq.read_table(tmp_path / "A" / "pdq-decoded.parquet")
    assert all(0 <= d <= 31 for d in pdq.column("distance").to_pylist())
    assert pq.read_table(tmp_path / "A" / "image_md5-stored.parquet").column("distance").null_count > 0
    imported = api.proxy_import(tmp_path / "A", store=holder.store, name="hot")
    names = sorted(b.name for b in imported.banks)
    assert names == ["hot-image_md5-stored", "hot-pdq-decoded"]
    assert next(b for b in api.list_banks(holder.store) if b.signal == "pdq").threshold == 0
    api.clean([str(ds.root)], tmp_path / "CLEAN", banks=names, opts=holder)
    by_proxy = removed_rows(holder.store)
    # The same lists matched directly (another store) remove the same rows.
    direct = RunConfig(store=tmp_path / "st2", workers=1)
    lst = [f"{lists['image_md5']}:image_md5", f"{lists['pdq']}:pdq"]
    api.clean([str(ds.root)], tmp_path / "CLEAN2", lists=lst, opts=direct)
    assert by_proxy == removed_rows(direct.store) == ds.flagged
    # No image bytes, sample key, URL or caption in either package.
    blobs = package_bytes(q) + package_bytes(tmp_path / "A")
    strings = "\n".join(package_strings(q) + package_strings(tmp_path / "A"))
    for shard in ds.shards:
        meta = pq.read_table(ds.root / shard.replace(".tar", ".parquet"))
        for col in ("key", "url", "caption"):
            for v in meta.column(col).to_pylist():
                assert v.encode() not in blobs and v not in strings
    import tarfile

    for shard in ds.shards:
        with tarfile.open(ds.root / shard) as tar:
            for m in tar.getmembers():
                data = tar.extractfile(m).read()  # type: ignore[union-attr]
                if len(data) > 64:
                    assert data[32:96] not in blobs
