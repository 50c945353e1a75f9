"""Nudity-score throughput: images/s of :class:`expunge.signals.nsfw.NsfwScorer` on one core.

Each scorer's session runs on one thread (one worker process per core), so the numbers here are per
core; a machine with N cores runs N workers. Split into decode + letterbox (Pillow) and inference
(onnxruntime), for photo-like JPEGs of a given size, per batch size.

    python benchmarks/bench_nsfw.py [--images 64] [--size 512] [--batch 1 8 16]
"""

from __future__ import annotations

import argparse
import io
import time

import numpy as np
from PIL import Image

from expunge.features.images import decode_rgb
from expunge.signals import nsfw


def photo_like(seed: int, size: int) -> bytes:
    """Smooth colour fields plus grain: decodes like a photograph (benign, synthetic)."""
    rng = np.random.default_rng(seed)
    base = Image.fromarray((rng.random((12, 12, 3)) * 255).astype(np.uint8)).resize(
        (size, size * 3 // 4), Image.Resampling.BICUBIC
    )
    arr = np.asarray(base, dtype=np.int16) + rng.integers(-12, 13, (size * 3 // 4, size, 3), dtype=np.int16)
    buf = io.BytesIO()
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--size", type=int, default=512, help="longer side of the test JPEGs")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8, 16])
    args = parser.parse_args()
    if not nsfw.available():
        raise SystemExit("the nsfw extra is not installed: pip install 'expunge[nsfw]'")
    images = [photo_like(i, args.size) for i in range(args.images)]
    print(f"model {nsfw.MODEL_NAME} sha256 {nsfw.model_sha256()}")
    print(f"{args.images} JPEGs, {args.size}x{args.size * 3 // 4}, one thread")

    start = time.perf_counter()
    tensors = [nsfw.letterbox(decode_rgb(data)) for data in images]
    prep = time.perf_counter() - start
    print(f"decode + letterbox: {args.images / prep:8.1f} images/s")

    for batch_size in args.batch:
        scorer = nsfw.NsfwScorer(batch_size)
        scorer.score(images[: min(batch_size, len(images))])  # warm-up
        batch = np.stack(tensors)
        start = time.perf_counter()
        for i in range(0, len(batch), batch_size):
            scorer._run(batch[i : i + batch_size])
        infer = time.perf_counter() - start
        start = time.perf_counter()
        scores = scorer.score(images)
        total = time.perf_counter() - start
        print(
            f"batch {batch_size:3d}: inference {args.images / infer:8.1f} images/s, "
            f"end to end {args.images / total:8.1f} images/s (max score {float(np.nanmax(scores)):.3f})"
        )


if __name__ == "__main__":
    main()
