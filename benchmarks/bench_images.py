"""Image hashing throughput: ``expunge index`` over img2dataset-style tar shards against the floor.

The floor is the least any tool must do: read each image from the tar, decode it with Pillow, run
``pdqhash`` and MD5, in a tight loop over the same number of processes. expunge does that plus EXIF
orientation, mode handling, SHA-1/SHA-256, bomb checks and writing the index. Target: >= 0.8 x floor.

    python benchmarks/bench_images.py [--images 2000] [--size 512] [--workers 2]

PDQ matching throughput against python-threatexchange is measured by ``bench_pdq_match.py``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import multiprocessing
import shutil
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image


def photo_like(seed: int, size: int) -> bytes:
    """Smooth colour fields plus fine grain: compresses and hashes like a photograph, not like noise."""
    rng = np.random.default_rng(seed)
    base = Image.fromarray((rng.random((16, 16, 3)) * 255).astype(np.uint8)).resize(
        (size, size), Image.BICUBIC
    )
    arr = np.asarray(base, dtype=np.int16) + rng.integers(-12, 13, (size, size, 3), dtype=np.int16)
    buf = io.BytesIO()
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def make_dataset(root: Path, images: int, shards: int, size: int) -> list[Path]:
    root.mkdir(parents=True)
    tars = []
    per = images // shards
    for s in range(shards):
        keys = []
        tar_path = root / f"{s:05d}.tar"
        with tarfile.open(tar_path, "w") as tar:
            for i in range(per):
                key = f"{s:05d}{i:04d}"
                data = photo_like(s * 100_000 + i, size)
                info = tarfile.TarInfo(f"{key}.jpg")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
                keys.append(key)
        pq.write_table(
            pa.table({"key": keys, "url": [f"https://img.photos.example/{k}.jpg" for k in keys]}),
            root / f"{s:05d}.parquet",
        )
        tars.append(tar_path)
    return tars


def _floor_one(tar_path: str) -> int:
    import pdqhash

    n = 0
    with tarfile.open(tar_path) as tar:
        for member in tar:
            fh = tar.extractfile(member)
            if fh is None:
                continue
            data = fh.read()
            hashlib.md5(data).digest()
            rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
            pdqhash.compute(rgb)
            n += 1
    return n


def floor(tars: list[Path], workers: int) -> tuple[float, int]:
    started = time.perf_counter()
    with multiprocessing.get_context("forkserver").Pool(workers) as pool:
        n = sum(pool.map(_floor_one, [str(t) for t in tars]))
    return time.perf_counter() - started, n


def expunge_index(root: Path, work: Path, workers: int) -> tuple[float, int]:
    from expunge import api

    bank = work / "bank.pdq"
    bank.write_text("# SYNTHETIC\npdq " + "0" * 64 + "\n")
    store = work / "store"
    api.import_list(bank, store=store, signal="pdq")
    started = time.perf_counter()
    report = api.index([str(root)], opts=api.Options(store=store, workers=workers))
    seconds = time.perf_counter() - started
    assert report.shards_run == len(list(root.glob("*.tar")))
    return seconds, 0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=2_000)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="expunge-bench-images-"))
    try:
        t0 = time.perf_counter()
        tars = make_dataset(work / "data", args.images, args.shards, args.size)
        took = time.perf_counter() - t0
        print(f"generated {args.images} photo-like {args.size}x{args.size} JPEGs in {took:.1f}s")
        f_sec, n = floor(tars, args.workers)
        e_sec, _ = expunge_index(work / "data", work, args.workers)
        f_rate, e_rate = n / f_sec, n / e_sec
        print(f"floor  (decode+pdq+md5, {args.workers} procs): {f_sec:6.2f}s  {f_rate:7.1f} images/s")
        print(f"expunge index ({args.workers} workers):         {e_sec:6.2f}s  {e_rate:7.1f} images/s")
        ratio = e_rate / f_rate
        print(f"ratio expunge/floor: {ratio:.2f}  (target >= 0.8: {'met' if ratio >= 0.8 else 'NOT met'})")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
