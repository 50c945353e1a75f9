"""CLIP embeddings aligned with metadata shards keep their alignment through cleaning, row by row."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from expunge import api


def test_laion_layout_embeddings_stay_aligned(tmp_path: Path) -> None:
    base = tmp_path / "laion2B-en"
    for sub in ("metadata", "img_emb", "text_emb"):
        (base / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    flagged: dict[str, set[int]] = {}
    listed = []
    for s in range(2):
        n = 500
        urls = [f"https://img{i % 5}.laion.example/{s}/{i}.jpg" for i in range(n)]
        pq.write_table(
            pa.table(
                {"url": urls, "caption": [f"a neutral caption {i}" for i in range(n)], "row": list(range(n))}
            ),
            base / "metadata" / f"metadata_{s:04d}.parquet",
            row_group_size=128,
        )
        # Each embedding row encodes its own row number, so alignment can be checked exactly.
        img = rng.standard_normal((n, 16)).astype(np.float16)
        img[:, 0] = np.arange(n)
        np.save(base / "img_emb" / f"img_emb_{s:04d}.npy", img)
        txt = rng.standard_normal((n, 8)).astype(np.float32)
        txt[:, 0] = np.arange(n)
        np.save(base / "text_emb" / f"text_emb_{s:04d}.npy", txt)
        rows = set(range(7, n, 50)) if s == 0 else set()
        flagged[f"metadata_{s:04d}.parquet"] = rows
        listed += [hashlib.md5(urls[r].encode()).hexdigest() for r in rows]
    lst = tmp_path / "list.txt"
    lst.write_text("\n".join(listed) + "\n")
    out = tmp_path / "out"
    summary = api.clean(
        [str(base)], out, lists=[f"{lst}:url_md5"], opts=api.Options(store=tmp_path / "s", workers=2)
    )
    assert summary["rows_removed"] == sum(len(v) for v in flagged.values())
    for s in range(2):
        meta = pq.read_table(out / f"metadata_{s:04d}.parquet")
        kept_rows = meta.column("row").to_pylist()
        for kind, dim in (("img_emb", 16), ("text_emb", 8)):
            emb = np.load(out / kind / f"{kind}_{s:04d}.npy")
            src = np.load(base / kind / f"{kind}_{s:04d}.npy")
            assert emb.shape == (len(kept_rows), dim) and emb.dtype == src.dtype
            assert np.array_equal(emb, src[kept_rows])  # row by row, same order as the metadata
            assert emb[:, 0].astype(int).tolist() == kept_rows
    untouched = out / "img_emb" / "img_emb_0001.npy"
    assert untouched.read_bytes() == (base / "img_emb" / "img_emb_0001.npy").read_bytes()


def test_misaligned_embeddings_stop_with_the_file_named(tmp_path: Path) -> None:
    import pytest

    from expunge.errors import ExpungeError

    (tmp_path / "ds").mkdir()
    pq.write_table(
        pa.table({"url": [f"https://a.example/{i}" for i in range(10)]}), tmp_path / "ds" / "part.parquet"
    )
    np.save(tmp_path / "ds" / "part.npy", np.zeros((9, 4), dtype=np.float32))
    lst = tmp_path / "l.txt"
    lst.write_text(hashlib.md5(b"https://a.example/3").hexdigest() + "\n")
    with pytest.raises(ExpungeError, match=r"part\.npy"):
        api.clean(
            [str(tmp_path / "ds")],
            tmp_path / "o",
            lists=[f"{lst}:url_md5"],
            opts=api.Options(store=tmp_path / "s", workers=1),
        )
