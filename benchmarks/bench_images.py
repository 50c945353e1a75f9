"""Image hashing throughput: ``expunge index`` over img2dataset-style tar shards, today vs reduced decode.

Three figures in one run, same data, same number of processes:

* the floor of a full decode: read each image from the tar, decode it whole with Pillow, run
  ``pdqhash`` and MD5, in a tight loop;
* ``expunge index`` hashing as before issue 12 ("full decode": every image decoded whole and hashed by
  the ``pdqhash`` binding), run in child processes whose ``hash_image`` is swapped for that path;
* ``expunge index`` as it is (JPEG drafted from the DCT, PDQ rebuilt from the blocks).

Targets: new >= 3 x full-decode images/s (issue 12), and the PDQ hashes of the reduced decode within
8 bits of the full-decode ones at the 99th percentile (distribution printed, over --check images).

    python benchmarks/bench_images.py [--images 2000] [--size 512] [--workers 2] [--check 300]

PDQ matching throughput against python-threatexchange is measured by ``bench_pdq_match.py``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import multiprocessing
import os
import shutil
import subprocess
import sys
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


# Loaded as sitecustomize in the "full decode" children (and their forkserver workers): hash_image as
# it was before issue 12, i.e. a whole decode and the pdqhash binding.
_TODAY = """
from expunge.features import images as _im


def _hash_image_full_decode(data, *, max_pixels=_im.DEFAULT_MAX_PIXELS, dihedral=False):
    md5, sha1, sha256 = _im.digests(data)
    try:
        rgb = _im.decode_rgb(data, max_pixels)
    except _im.ImageError as exc:
        return _im.ImageHashes(md5, sha1, sha256, None, None, (), exc.reason)
    if dihedral:
        hs = _im.pdq_dihedral(rgb)
        return _im.ImageHashes(md5, sha1, sha256, hs[0][0], hs[0][1], tuple(h for h, _ in hs[1:]))
    h, q = _im.pdq(rgb)
    return _im.ImageHashes(md5, sha1, sha256, h, q)


_im.hash_image = _hash_image_full_decode
"""


def expunge_index(root: Path, work: Path, workers: int) -> float:
    """One ``api.index`` over the shards into a fresh store; run in a child (see ``--run-index``)."""
    from expunge import api

    bank = work / "bank.pdq"
    bank.write_text("# SYNTHETIC\npdq " + "0" * 64 + "\n")
    store = work / "store"
    api.import_list(bank, store=store, signal="pdq")
    started = time.perf_counter()
    report = api.index([str(root)], opts=api.Options(store=store, workers=workers))
    seconds = time.perf_counter() - started
    assert report.shards_run == len(list(root.glob("*.tar")))
    return seconds


def index_in_child(root: Path, work: Path, workers: int, *, full_decode: bool) -> float:
    """``expunge index`` in a fresh interpreter, so that its worker processes hash the chosen way."""
    env = dict(os.environ)
    work.mkdir(parents=True, exist_ok=True)
    if full_decode:
        site = work / "site-full-decode"
        site.mkdir()
        (site / "sitecustomize.py").write_text(_TODAY)
        env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    out = subprocess.run(
        [sys.executable, __file__, "--run-index", str(root), str(work), str(workers)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def distances(tars: list[Path], limit: int) -> tuple[np.ndarray, np.ndarray]:
    """Hamming distance and quality change, reduced decode vs the full decode, over ``limit`` images."""
    import pdqhash

    from expunge.features.images import _pack, hamming, hash_image

    dist, dq = [], []
    for tar_path in tars:
        with tarfile.open(tar_path) as tar:
            for member in tar:
                fh = tar.extractfile(member)
                if fh is None or len(dist) >= limit:
                    continue
                data = fh.read()
                ours = hash_image(data)
                bits, quality = pdqhash.compute(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
                assert ours.pdq is not None and ours.quality is not None
                dist.append(hamming(ours.pdq, _pack(bits)))
                dq.append(ours.quality - quality)
    return np.array(dist), np.array(dq)


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--run-index":
        print(expunge_index(Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=2_000)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--check", type=int, default=300, help="images compared with the full decode")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="expunge-bench-images-"))
    try:
        t0 = time.perf_counter()
        tars = make_dataset(work / "data", args.images, args.shards, args.size)
        took = time.perf_counter() - t0
        print(f"generated {args.images} photo-like {args.size}x{args.size} JPEGs in {took:.1f}s")
        f_sec, n = floor(tars, args.workers)
        old_sec = index_in_child(work / "data", work / "full", args.workers, full_decode=True)
        new_sec = index_in_child(work / "data", work / "new", args.workers, full_decode=False)
        f_rate, old_rate, new_rate = n / f_sec, n / old_sec, n / new_sec
        w = args.workers
        print(f"floor, full decode (decode+pdq+md5, {w} procs): {f_sec:6.2f}s  {f_rate:7.1f} images/s")
        print(f"expunge index, full decode (before, {w} workers): {old_sec:6.2f}s  {old_rate:7.1f} images/s")
        print(f"expunge index, reduced decode ({w} workers):      {new_sec:6.2f}s  {new_rate:7.1f} images/s")
        ratio = new_rate / old_rate
        print(
            f"speed-up reduced / full decode: {ratio:.2f}x"
            f"  (target >= 3: {'met' if ratio >= 3 else 'NOT met'})"
        )
        print(f"reduced decode / full-decode floor: {new_rate / f_rate:.2f}x")
        dist, dq = distances(tars, args.check)
        p50, p90, p99 = np.percentile(dist, [50, 90, 99])
        print(
            f"PDQ distance reduced vs full decode over {len(dist)} images: p50 {p50:.0f} p90 {p90:.0f}"
            f" p99 {p99:.1f} max {dist.max()}  (target p99 <= 8: {'met' if p99 <= 8 else 'NOT met'})"
        )
        print(f"quality change: min {dq.min()} max {dq.max()}, images moved: {(dq != 0).sum()}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
