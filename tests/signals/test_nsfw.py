"""The optional nudity score: benign synthetic images and the benign PDQ reference photos only.

No test here needs (or could use) an image that should score high; what is checked is that the
pipeline is sound: benign images stay low, bad bytes are NaN (missing, never safe), results do not
depend on batching, the right classes and thresholds decide, and the model is identified by hash.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import pickle
import struct
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from expunge.errors import ExpungeError
from expunge.signals import nsfw

pytestmark = pytest.mark.skipif(
    not nsfw.available(), reason="the nsfw extra (onnxruntime + nudenet's model file) is not installed"
)


@pytest.fixture(scope="module")
def scorer() -> nsfw.NsfwScorer:
    """One session for the module (loading one takes a few hundred milliseconds)."""
    return nsfw.NsfwScorer(batch_size=4)


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


def gradient(width: int, height: int) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.float64)[None, :]
    y = np.linspace(0, 255, height, dtype=np.float64)[:, None]
    rgb = np.stack(
        [np.broadcast_to(x, (height, width)), np.broadcast_to(y, (height, width)), (x + y) / 2 + 0 * y]
    )
    return Image.fromarray(np.ascontiguousarray(rgb.transpose(1, 2, 0)).astype(np.uint8))


def shapes(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    im = Image.new("RGB", (width, height), tuple(int(v) for v in rng.integers(0, 256, 3)))
    draw = ImageDraw.Draw(im)
    for _ in range(12):
        x0, y0 = int(rng.integers(0, width - 1)), int(rng.integers(0, height - 1))
        x1, y1 = int(rng.integers(x0 + 1, width + 1)), int(rng.integers(y0 + 1, height + 1))
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x1, y1), fill=fill)
    return im


def noise(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def benign_images() -> list[bytes]:
    """Gradients, shapes, noise and solid fills in the modes, formats and shapes datasets hold."""
    rgba = shapes(120, 90, seed=7).convert("RGBA")
    rgba.putalpha(128)
    sixteen = Image.fromarray((np.arange(64 * 48, dtype=np.uint16).reshape(48, 64) * 13).astype(np.uint16))
    return [
        encode(gradient(320, 320)),
        encode(gradient(640, 200), "JPEG"),
        encode(shapes(300, 500, seed=1), "JPEG"),
        encode(shapes(800, 600, seed=2), "WEBP"),
        encode(noise(256, 256, seed=3)),
        encode(noise(97, 311, seed=4), "JPEG"),
        encode(Image.new("RGB", (50, 50), (255, 255, 255))),
        encode(Image.new("RGB", (400, 300), (0, 0, 0)), "JPEG"),
        encode(Image.new("L", (64, 64), 200)),
        encode(shapes(160, 120, seed=5).convert("P"), "GIF"),
        encode(rgba),
        encode(sixteen),
        encode(Image.new("RGB", (1, 1), (10, 200, 30))),
        encode(gradient(1, 700)),  # one pixel wide: scales to a 1-pixel column
        encode(gradient(3000, 2), "BMP"),
    ]


def reference_photos(shared: Path) -> list[bytes]:
    folder = shared / "testdata" / "pdq"
    if not folder.is_dir():
        pytest.skip(f"benign reference images not found at {folder}")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not files:
        pytest.skip(f"no images under {folder}")
    return [p.read_bytes() for p in files]


def png_claiming(width: int, height: int) -> bytes:
    """A PNG header that claims a huge image, with almost no pixel data behind it."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


# --------------------------------------------------------------------------------------------------


def test_model_hash_is_stable_and_names_the_file() -> None:
    first = nsfw.model_sha256()
    assert first == nsfw.model_sha256()
    assert len(first) == 64 and int(first, 16) >= 0
    path = nsfw._model_path()
    assert path is not None and path.name == "320n.onnx"
    assert first == hashlib.sha256(path.read_bytes()).hexdigest()
    assert nsfw.MODEL_NAME == "nudenet-320n"


def test_benign_synthetic_images_score_low(scorer: nsfw.NsfwScorer) -> None:
    images = benign_images()
    scores = scorer.score(images)
    assert scores.dtype == np.float32 and scores.shape == (len(images),)
    assert np.isfinite(scores).all()
    assert ((scores >= 0.0) & (scores <= 1.0)).all()
    assert (scores < 0.5).all()


def test_benign_reference_photos_score_low(scorer: nsfw.NsfwScorer, shared_dir: Path) -> None:
    images = reference_photos(shared_dir)
    scores = scorer.score(images)
    assert np.isfinite(scores).all()
    assert ((scores >= 0.0) & (scores < 0.5)).all()


def test_deterministic_across_calls_and_batch_sizes(scorer: nsfw.NsfwScorer, shared_dir: Path) -> None:
    """Same bytes, same score, whatever the batch an image lands in (7 images: partial last batches)."""
    images = benign_images()[:4] + reference_photos(shared_dir)[8:11]
    first = scorer.score(images)
    np.testing.assert_array_equal(first, scorer.score(images))
    for batch_size in (1, 3, 16):
        np.testing.assert_allclose(nsfw.NsfwScorer(batch_size).score(images), first, atol=1e-5)
    # One image at a time gives the same as within a list.
    np.testing.assert_allclose([scorer.score([im])[0] for im in images], first, atol=1e-5)


def test_undecodable_bytes_are_nan_and_do_not_shift_neighbours(scorer: nsfw.NsfwScorer) -> None:
    good = encode(gradient(200, 100), "JPEG")
    truncated = encode(noise(300, 300, seed=9), "JPEG")[:600]
    bad: list[bytes] = [
        b"",
        b"not an image at all",
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 40,
        b"\xff\xd8\xff\xe0" + b"\x00" * 20,
        truncated,
        b"GIF89a",
    ]
    images = [good, *bad, good]
    scores = scorer.score(images)
    assert np.isnan(scores[1:-1]).all()
    assert np.isfinite(scores[[0, -1]]).all()
    assert scores[0] == scores[-1] == scorer.score([good])[0]
    assert np.isnan(scorer.score(bad)).all()  # a batch with nothing decodable


def test_bomb_header_is_nan_not_a_crash(scorer: nsfw.NsfwScorer) -> None:
    start = time.perf_counter()
    scores = scorer.score([png_claiming(100_000, 100_000), png_claiming(70_000, 70_000), b"x"])
    assert np.isnan(scores).all()
    assert time.perf_counter() - start < 2.0


def test_empty_input_and_bad_batch_size(scorer: nsfw.NsfwScorer) -> None:
    out = scorer.score([])
    assert out.shape == (0,) and out.dtype == np.float32
    with pytest.raises(ValueError):
        nsfw.NsfwScorer(batch_size=0)


def test_pickles_as_settings_and_loads_its_own_session(scorer: nsfw.NsfwScorer) -> None:
    """Worker processes receive a scorer by pickle; the session itself cannot be pickled."""
    clone = pickle.loads(pickle.dumps(scorer))
    assert clone.batch_size == scorer.batch_size and clone._session is not scorer._session
    images = benign_images()[:3]
    np.testing.assert_array_equal(clone.score(images), scorer.score(images))


def test_letterbox_matches_pad_then_resize_geometry() -> None:
    """NudeNet pads right/bottom to a square, then resizes; scaling first and pasting at the top-left
    is the same picture. Checked against that order done literally, on a wide and a tall image."""
    for w, h in ((400, 100), (60, 240)):
        rgb = np.asarray(shapes(w, h, seed=w))
        got = nsfw.letterbox(rgb)
        assert got.shape == (3, 320, 320) and got.dtype == np.float32
        assert got.min() >= 0.0 and got.max() <= 1.0
        side = max(w, h)
        square = np.zeros((side, side, 3), dtype=np.uint8)
        square[:h, :w] = rgb
        expected = np.asarray(Image.fromarray(square).resize((320, 320), Image.Resampling.BILINEAR))
        expected_chw = expected.transpose(2, 0, 1).astype(np.float32) / 255.0
        new_w, new_h = round(w * 320 / side), round(h * 320 / side)
        assert (got[:, new_h:, :] == 0).all() and (got[:, :, new_w:] == 0).all()  # black pad
        inner = (slice(None), slice(1, new_h - 1), slice(1, new_w - 1))  # away from the pad seam
        assert np.abs(got[inner] - expected_chw[inner]).mean() < 0.01
    # Channels stay in RGB order (NudeNet 3.4.2's own reader swaps them by mistake: upstream #203).
    red = np.zeros((10, 10, 3), dtype=np.uint8)
    red[..., 0] = 255
    out = nsfw.letterbox(red)
    assert out[0, 0, 0] == 1.0 and out[2, 0, 0] == 0.0


# --------------------------------------------------------------------------------------------------
# Decoding of the model output, with a stand-in session so scores near and over the threshold occur


class _FakeSession:
    def __init__(self, output: np.ndarray) -> None:
        self.output = output

    def run(self, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        (batch,) = feeds.values()
        return [self.output[: len(batch)]]


def _labels() -> list[str]:
    session = nsfw.NsfwScorer(1)._session
    return nsfw._class_names(session, Path("model"))


def test_score_uses_only_nudity_classes_and_the_detection_threshold(scorer: nsfw.NsfwScorer) -> None:
    labels = _labels()
    assert len(labels) == 18 and set(nsfw.NUDITY_CLASSES) <= set(labels)
    for left_out in ("FEET_EXPOSED", "ARMPITS_EXPOSED", "BELLY_EXPOSED", "MALE_BREAST_EXPOSED"):
        assert left_out in labels and left_out not in nsfw.NUDITY_CLASSES

    def channel(name: str) -> int:
        return 4 + labels.index(name)

    anchors = 6
    out = np.zeros((6, 4 + len(labels), anchors), dtype=np.float32)
    out[:, :4, :] = 50.0  # boxes: irrelevant to the score
    out[0, channel("FEMALE_BREAST_COVERED"), 2] = 0.99  # covered only
    out[0, channel("FACE_FEMALE"), 3] = 0.97
    out[1, channel("BUTTOCKS_EXPOSED"), 1] = 0.8  # nudity class ...
    out[1, channel("ANUS_EXPOSED"), 4] = 0.91  # ... the highest one counts
    out[2, channel("MALE_BREAST_EXPOSED"), 0] = 0.95  # left out on purpose
    out[2, channel("FEET_EXPOSED"), 1] = 0.95
    out[3, channel("FEMALE_GENITALIA_EXPOSED"), 5] = nsfw.DETECTION_THRESHOLD  # not a detection
    out[4, channel("MALE_GENITALIA_EXPOSED"), 5] = 0.2501
    out[5, channel("FEMALE_BREAST_EXPOSED"), 0] = np.nan  # a broken output reads as missing
    fake = pickle.loads(pickle.dumps(scorer))
    fake._session = _FakeSession(out)
    got = fake._run(np.zeros((6, 3, 320, 320), dtype=np.float32))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got[:5], [0.0, 0.91, 0.0, 0.0, 0.2501], rtol=1e-6)
    assert np.isnan(got[5])
    with pytest.raises(ExpungeError, match="unexpected shape"):
        fake._session = _FakeSession(out[:, :10])
        fake._run(np.zeros((2, 3, 320, 320), dtype=np.float32))


def test_class_names_come_from_model_metadata() -> None:
    class Meta:
        def __init__(self, names: str | None) -> None:
            self.custom_metadata_map = {} if names is None else {"names": names}

    class Session:
        def __init__(self, names: str | None) -> None:
            self.meta = Meta(names)

        def get_modelmeta(self) -> Meta:
            return self.meta

    good = "{" + ", ".join(f"{i}: '{n}'" for i, n in enumerate(nsfw.NUDITY_CLASSES)) + "}"
    assert nsfw._class_names(Session(good), Path("m")) == list(nsfw.NUDITY_CLASSES)
    for names in (
        None,
        "",
        "not python",
        "[1, 2]",
        "{1: 'A'}",
        "{0: 'FACE_MALE'}",
        "__import__('os')",
        "{0: 'A', 'x': 'B'}",
        "{[1]: 2}",
        "[" * 2000,
    ):
        with pytest.raises(ExpungeError):
            nsfw._class_names(Session(names), Path("m"))


# --------------------------------------------------------------------------------------------------
# Without the extra


@pytest.fixture
def no_model(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(nsfw, "_model_path", lambda: None)
    yield


def test_missing_model_file_is_one_clear_error(no_model: None) -> None:
    assert not nsfw.available()
    for call in (nsfw.NsfwScorer, nsfw.model_sha256):
        with pytest.raises(ExpungeError, match=r"pip install 'expunge\[nsfw\]'"):
            call()


def test_missing_onnxruntime_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    assert not nsfw.available()
    with pytest.raises(ExpungeError, match=r"needs the nsfw extra") as info:
        nsfw.NsfwScorer()
    assert "onnxruntime" in info.value.one_line()


def test_corrupt_model_file_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    broken = tmp_path / "320n.onnx"
    broken.write_bytes(b"\x08\x07 not a model")
    monkeypatch.setattr(nsfw, "_model_path", lambda: broken)
    with pytest.raises(ExpungeError, match="could not be loaded"):
        nsfw.NsfwScorer()
    assert nsfw.model_sha256() == hashlib.sha256(broken.read_bytes()).hexdigest()


def test_broken_onnxruntime_install_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """A shared library missing from a broken install raises OSError on import, not ImportError."""
    real = importlib.import_module

    def broken(name: str, package: str | None = None) -> object:
        if name == "onnxruntime":
            raise OSError("libonnxruntime.so: cannot open shared object file")
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", broken)
    assert not nsfw.available()
    with pytest.raises(ExpungeError, match=r"needs the nsfw extra") as info:
        nsfw.NsfwScorer()
    assert "OSError" in info.value.one_line() and "libonnxruntime" not in info.value.one_line()


def test_non_bytes_entries_are_nan_not_a_crash(scorer: nsfw.NsfwScorer) -> None:
    """A null cell or a wrongly typed value in an image column must read as missing, never crash."""
    good = encode(gradient(64, 64))
    odd: list[object] = [None, "not bytes", 12, bytearray(good), memoryview(good)]
    scores = scorer.score(odd)  # type: ignore[arg-type]
    assert np.isnan(scores[:3]).all()
    assert np.isfinite(scores[3:]).all()
