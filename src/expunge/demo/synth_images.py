"""Synthetic, benign img2dataset-style image shards for the demo and tests.

Every image is generated (smooth colour fields from a seeded random grid); "listed" images are more
generated images, labelled SYNTHETIC, whose hashes stand in for a hotline's list. The dataset holds
planted copies of them: exact, re-encoded, resized and lightly cropped, so the demo shows exact-bytes
matching and perceptual (PDQ) matching side by side.
"""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from expunge import atomic

SUBJECTS = ("mug", "teapot", "bicycle", "lighthouse", "sofa", "kite", "violin", "cactus", "bridge", "lantern")
COLOURS = ("red", "blue", "green", "yellow", "grey", "orange", "white", "teal")
SETTINGS = ("on a wooden table", "at sunset", "in a garden", "on a shelf", "by the sea", "in the snow")
LIST_COMMENT = "# SYNTHETIC list: hashes of generated benign images, for expunge demos and tests only"


@dataclass
class SynthImages:
    root: Path
    shards: list[str]  # tar names
    flagged: set[tuple[str, int]] = field(default_factory=set)  # (tar name, metadata row) planted copies
    exact: set[tuple[str, int]] = field(default_factory=set)  # planted byte-identical copies
    bad: set[tuple[str, int]] = field(default_factory=set)  # undecodable images (quarantined)
    rows: int = 0
    samples: int = 0
    lists: dict[str, Path] = field(default_factory=dict)


def _image(seed: int, size: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    grid = (rng.random((12, 12, 3)) * 255).astype(np.uint8)
    return Image.fromarray(grid).resize((size, size), Image.Resampling.BICUBIC)


def _jpeg(img: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _variants(img: Image.Image) -> list[tuple[str, bytes]]:
    """Near-duplicates that defeat MD5 but, for these images, stay well inside PDQ's threshold."""
    w, h = img.size
    d = max(1, w // 64)
    return [
        ("reencoded", _jpeg(img, 60)),
        ("resized", _jpeg(img.resize((w * 3 // 4, h * 3 // 4), Image.Resampling.LANCZOS), 85)),
        ("cropped", _jpeg(img.crop((d, d, w - d, h - d)), 90)),
    ]


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 1_700_000_000  # fixed, so the same seed gives the same bytes
    info.uname = info.gname = "expunge"
    tar.addfile(info, io.BytesIO(data))


def generate_image_dataset(
    root: Path, samples: int = 2_000, shards: int = 4, listed: int = 24, seed: int = 0, size: int = 256
) -> SynthImages:
    """Write ``NNNNN.tar`` + ``NNNNN.parquet`` + ``NNNNN_stats.json`` shards like img2dataset does."""
    from expunge.features.images import hamming, hash_image

    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    originals = [_image(10_000_000 + seed * 1000 + i, size) for i in range(listed)]
    original_bytes = [_jpeg(img) for img in originals]
    planted: list[tuple[str, bytes]] = []  # (kind, bytes)
    for img, data in zip(originals, original_bytes, strict=True):
        reference = hash_image(data).pdq
        planted.append(("exact", data))
        for kind, variant in _variants(img):
            h = hash_image(variant).pdq
            if reference is not None and h is not None and hamming(reference, h) <= 20:
                planted.append((kind, variant))
    out = SynthImages(root, [])
    per_shard = max(1, samples // shards)
    positions = set(rng.choice(samples, size=min(len(planted), samples), replace=False).tolist())
    plant_at = dict(zip(sorted(positions), planted, strict=False))
    bad_at = {
        int(i) for i in rng.choice([i for i in range(samples) if i not in plant_at], size=3, replace=False)
    }
    bad_bytes = [b"", b"this is not an image", _jpeg(_image(seed, size))[:400]]
    global_sample = 0
    for s in range(shards):
        name = f"{s:05d}.tar"
        n = per_shard if s < shards - 1 else samples - per_shard * (shards - 1)
        keys, urls, captions, statuses = [], [], [], []
        tar_path = root / name
        with atomic.atomic_path(tar_path) as tmp, tarfile.open(tmp, "w", format=tarfile.GNU_FORMAT) as tar:
            row = 0
            for i in range(n):
                g = global_sample + i
                if i % 50 == 7:  # img2dataset keeps failed downloads as metadata rows without images
                    keys.append(f"{s:05d}{row:04d}")
                    urls.append(f"https://img{g % 17}.photos.example/missing/{g}.jpg")
                    captions.append("a photo that could not be downloaded")
                    statuses.append("failed_to_download")
                    row += 1
                key = f"{s:05d}{row:04d}"
                colour, subject = COLOURS[g % len(COLOURS)], SUBJECTS[g % len(SUBJECTS)]
                caption = f"a {colour} {subject} {SETTINGS[g % len(SETTINGS)]}"
                if g in plant_at:
                    kind, data = plant_at[g]
                    out.flagged.add((name, row))
                    if kind == "exact":
                        out.exact.add((name, row))
                elif g in bad_at:
                    data = bad_bytes[len([b for b in bad_at if b < g]) % len(bad_bytes)]
                    out.bad.add((name, row))
                else:
                    data = _jpeg(_image(seed * 7_919 + g, size))
                _add(tar, f"{key}.jpg", data)
                _add(tar, f"{key}.txt", caption.encode())
                _add(tar, f"{key}.json", json.dumps({"key": key, "caption": caption}).encode())
                keys.append(key)
                urls.append(f"https://img{g % 17}.photos.example/{s}/{g:07d}.jpg")
                captions.append(caption)
                statuses.append("success")
                row += 1
        table = pa.table({"key": keys, "url": urls, "caption": captions, "status": statuses})
        with atomic.atomic_path(root / f"{s:05d}.parquet") as tmp:
            pq.write_table(table, tmp, compression="zstd")
        successes = statuses.count("success")
        stats = {
            "count": len(keys),
            "successes": successes,
            "failed_to_download": len(keys) - successes,
            "failed_to_resize": 0,
            "status_dict": {"success": successes, "failed_to_download": len(keys) - successes},
        }
        atomic.write_json(root / f"{s:05d}_stats.json", stats)
        out.shards.append(name)
        out.rows += len(keys)
        out.samples += n
        global_sample += n
    return out


def write_image_lists(
    ds: SynthImages, out_dir: Path, listed: int = 24, seed: int = 0, size: int = 256
) -> dict[str, Path]:
    """``pdq.txt`` (threatexchange format) and ``image_md5.txt`` of the SYNTHETIC listed originals."""
    from expunge.features.images import hash_image, pdq_to_hex

    out_dir.mkdir(parents=True, exist_ok=True)
    pdq_lines, md5_lines = [LIST_COMMENT], [LIST_COMMENT]
    for i in range(listed):
        h = hash_image(_jpeg(_image(10_000_000 + seed * 1000 + i, size)))
        assert h.pdq is not None
        pdq_lines.append(f"pdq {pdq_to_hex(h.pdq)}")
        md5_lines.append(h.md5.hex())
    paths = {"pdq": out_dir / "pdq.txt", "image_md5": out_dir / "image_md5.txt"}
    atomic.write_bytes(paths["pdq"], ("\n".join(pdq_lines) + "\n").encode())
    atomic.write_bytes(paths["image_md5"], ("\n".join(md5_lines) + "\n").encode())
    ds.lists.update(paths)
    return paths
