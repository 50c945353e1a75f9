"""Optional nudity score for image bytes the user holds, from the detector that ships inside NudeNet.

Datasets without a ``punsafe``-style column can still be triaged on images they hold: the NudeNet
wheel carries ``320n.onnx``, a small YOLOv8 detector (18 body-part classes, 320x320 input). It is run
with onnxruntime; nothing is downloaded, ever. ``nudenet`` itself is never imported: its package
imports OpenCV at import time and decodes with it, whereas untrusted bytes here go only through the
project's guarded Pillow decoder (:func:`expunge.features.images.decode_rgb`: decompression-bomb
limit from the header, first frame, EXIF orientation, every mode to RGB). The package is only
*located* (``find_spec`` of a top-level package does not import it).

Preprocessing follows what the model was trained with (read from NudeNet's own pipeline): the image
padded with black on the right/bottom to a square, resized to 320, RGB, scaled to [0, 1], NCHW
float32. Here the image is scaled first and pasted at the top-left of a black 320x320 canvas, which is
the same picture at a fraction of the work; Pillow's filter also antialiases large reductions, as the
training pipeline's area resampling does. Channels go in RGB order, as the model was trained:
NudeNet 3.4.2's own reader converts twice and feeds BGR (a known upstream bug), so its ``detect``
gives slightly different confidences than this module for the same image.

The output is ``(batch, 4 + classes, anchors)``: a centre/size box and one sigmoid confidence per
class for every anchor. The score of an image is the highest confidence of any nudity class
(:data:`NUDITY_CLASSES`) at any anchor, or 0.0 when it does not reach NudeNet's detection threshold.
Boxes play no part in it and neither does non-maximum suppression, which never removes the
highest-scoring box. An image that cannot be decoded scores NaN: the caller treats NaN as missing
(its own reason), never as safe.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib
import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt
from PIL import Image

from expunge.arrow import read_parquet
from expunge.errors import ExpungeError
from expunge.features.images import ImageError, decode_rgb
from expunge.signals.base import ValueSignal

if TYPE_CHECKING:
    from expunge.formats import Shard

MODEL_NAME: Final = "nudenet-320n"
_MODEL_FILE: Final = "320n.onnx"
_INSTALL_HINT: Final = "the nsfw signal needs the nsfw extra: pip install 'expunge[nsfw]'"

#: The model's input side; its training pipeline letterboxes every image to this square.
INPUT_SIZE: Final = 320

#: Classes whose confidence makes the score: exposed genitals, female breasts, buttocks and anus.
#: Left out of NudeNet's ``*_EXPOSED`` classes: FEET, ARMPITS and BELLY (bare in swimwear, sport and
#: everyday photos), and MALE_BREAST (a bare male chest at the beach or in sport is not nudity under
#: LAION's or most content policies, and would fill review queues with ordinary photos). All
#: ``*_COVERED`` and FACE classes are left out as they say nothing about exposure.
NUDITY_CLASSES: Final = (
    "FEMALE_GENITALIA_EXPOSED",
    "MALE_GENITALIA_EXPOSED",
    "FEMALE_BREAST_EXPOSED",
    "BUTTOCKS_EXPOSED",
    "ANUS_EXPOSED",
)

#: NudeNet reports no detection at or below this confidence (the score threshold of its
#: non-maximum suppression step; its earlier 0.2 cut is weaker), so neither does this score.
DETECTION_THRESHOLD: Final = 0.25

FloatArray = npt.NDArray[np.float32]


def _model_path() -> Path | None:
    """Where the installed NudeNet package keeps its model, without importing the package."""
    try:
        spec = importlib.util.find_spec("nudenet")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / _MODEL_FILE
        if candidate.is_file():
            return candidate
    return None


def _require_model() -> Path:
    path = _model_path()
    if path is None:
        raise ExpungeError(_INSTALL_HINT, None, f"{MODEL_NAME} model file not found")
    return path


def _import_onnxruntime() -> Any:
    try:
        # By name: the package ships no type information, and is imported only when used.
        return importlib.import_module("onnxruntime")
    except ImportError:
        raise ExpungeError(_INSTALL_HINT, None, "onnxruntime is not installed") from None
    except Exception as exc:  # a broken install (a missing shared library raises OSError)
        raise ExpungeError(
            _INSTALL_HINT, None, f"onnxruntime failed to import ({type(exc).__name__})"
        ) from None


def available() -> bool:
    """onnxruntime imports and the model file is present (so :class:`NsfwScorer` can be built)."""
    if _model_path() is None:
        return False
    try:
        _import_onnxruntime()
    except ExpungeError:
        return False
    return True


@functools.cache
def _sha256_of(path: Path, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def model_sha256() -> str:
    """SHA-256 (hex) of the model file, so a release can name the exact weights that scored it."""
    path = _require_model()
    try:
        st = path.stat()
        return _sha256_of(path, st.st_size, st.st_mtime_ns)
    except OSError as exc:
        raise ExpungeError(f"model file could not be read ({type(exc).__name__})", path) from None


def _class_names(session: Any, path: Path) -> list[str]:
    """Class names by output index, from the model's own metadata rather than a copied list, so a
    NudeNet release that reorders classes cannot silently score the wrong ones."""
    raw = session.get_modelmeta().custom_metadata_map.get("names")
    try:
        names = ast.literal_eval(raw) if raw else None
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        names = None
    if not isinstance(names, dict) or set(names) != set(range(len(names))):
        raise ExpungeError("model file has no class names in its metadata", path)
    labels = [str(names[i]) for i in range(len(names))]
    missing = [c for c in NUDITY_CLASSES if c not in labels]
    if missing:
        raise ExpungeError(f"model file lacks the classes {', '.join(missing)}", path)
    return labels


def letterbox(rgb: npt.NDArray[np.uint8], size: int = INPUT_SIZE) -> FloatArray:
    """(H, W, 3) uint8 RGB → (3, size, size) float32 in [0, 1]: longer side scaled to ``size``, the
    image at the top-left, black to the right or below (where NudeNet's pipeline pads)."""
    height, width = rgb.shape[:2]
    scale = size / max(height, width)
    new_w = min(size, max(1, round(width * scale)))
    new_h = min(size, max(1, round(height * scale)))
    image = Image.fromarray(rgb)
    if (new_w, new_h) != (width, height):
        image = image.resize((new_w, new_h), Image.Resampling.BILINEAR, reducing_gap=3.0)
    canvas = np.zeros((size, size, 3), dtype=np.uint8)
    canvas[:new_h, :new_w] = np.asarray(image)
    return np.ascontiguousarray(canvas.transpose(2, 0, 1), dtype=np.float32) / np.float32(255.0)


class NsfwScorer:
    """One onnxruntime session per process; scores lists of image bytes in batches.

    The session runs on one thread: the project runs one worker process per core, and more threads
    per session would oversubscribe them. A scorer pickles as its settings, so a worker process that
    receives one loads its own session.
    """

    def __init__(self, batch_size: int = 16) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be positive")
        ort = _import_onnxruntime()
        path = _require_model()
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # errors only: no per-run chatter on a crawl of millions
        try:
            session = ort.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own types for corrupt/unsupported files
            raise ExpungeError(f"model file could not be loaded ({type(exc).__name__})", path) from None
        labels = _class_names(session, path)
        inputs, outputs = session.get_inputs(), session.get_outputs()
        if len(inputs) != 1 or len(outputs) < 1 or len(inputs[0].shape) != 4:
            raise ExpungeError("model file is not the expected one-input image detector", path)
        out_channels = outputs[0].shape[1]
        if isinstance(out_channels, int) and out_channels != 4 + len(labels):
            raise ExpungeError("model output does not have one box and one score per class", path)
        batch_dim = inputs[0].shape[0]
        # A model exported with a fixed batch of 1 is looped one image at a time.
        self.batch_size = batch_size if not isinstance(batch_dim, int) else min(batch_size, batch_dim)
        self._requested_batch = batch_size
        self._session = session
        self._input = inputs[0].name
        self._output = outputs[0].name
        self._classes = np.array([4 + labels.index(c) for c in NUDITY_CLASSES], dtype=np.intp)
        self._num_channels = 4 + len(labels)

    def __reduce__(self) -> tuple[type[NsfwScorer], tuple[int]]:
        return (NsfwScorer, (self._requested_batch,))

    def score(self, images: list[bytes]) -> FloatArray:
        """One score per image in [0, 1] (float32); NaN where the bytes do not decode to an image."""
        scores = np.full(len(images), np.nan, dtype=np.float32)
        pending: list[int] = []
        batch = np.empty((self.batch_size, 3, INPUT_SIZE, INPUT_SIZE), dtype=np.float32)
        for i, data in enumerate(images):
            try:
                rgb = decode_rgb(data)
            except ImageError:
                continue  # stays NaN: missing, never safe
            batch[len(pending)] = letterbox(rgb)
            pending.append(i)
            if len(pending) == self.batch_size:
                scores[pending] = self._run(batch)
                pending = []
        if pending:
            scores[pending] = self._run(batch[: len(pending)])
        return scores

    def _run(self, batch: FloatArray) -> FloatArray:
        (raw,) = self._session.run([self._output], {self._input: batch})
        out = np.asarray(raw, dtype=np.float32)
        if out.ndim != 3 or out.shape[0] != len(batch) or out.shape[1] != self._num_channels:
            raise ExpungeError(f"{MODEL_NAME} returned an output of unexpected shape {out.shape}")
        best = out[:, self._classes, :].max(axis=(1, 2))
        # NaN (never expected) stays NaN through both steps, so it reads as missing, not safe.
        best = np.where(best > DETECTION_THRESHOLD, best, np.where(np.isnan(best), best, 0.0))
        return np.clip(best, 0.0, 1.0).astype(np.float32)


@dataclass(frozen=True)
class NsfwSignal(ValueSignal):
    """``nsfw``: the largest nudity score among a row's images; a row with an image that does not
    decode is missing (never safe)."""

    def fingerprint(self) -> str:
        return f"{MODEL_NAME}:{model_sha256()}"

    def check(self, ds: Any, param: str | None) -> None:
        if not available():
            raise ExpungeError("the policy uses nsfw: install the nsfw extra (pip install 'expunge[nsfw]')")
        if not all(s.handler.has_images for s in ds.shards):
            raise ExpungeError("the policy uses nsfw, which scores images: this dataset has none", ds.root)

    def measure(
        self, shard: Shard, index_dir: Path, param: str | None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:

        from expunge.formats.members import is_companion

        images = read_parquet(index_dir / "images.parquet", columns=["sample", "row"])
        row_of = dict(zip(images.column("sample").to_pylist(), images.column("row").to_pylist(), strict=True))
        scorer = NsfwScorer()
        pending: list[tuple[int, bytes]] = []
        for sample, _key, ext, data in shard.handler.iter_members(shard):
            row = row_of.get(sample, -1) if sample >= 0 else -1
            if row < 0 or is_companion(ext):
                continue
            pending.append((int(row), data))
            if len(pending) >= 64:
                yield _scored(scorer, pending)
                pending = []
        if pending:
            yield _scored(scorer, pending)


def _scored(scorer: NsfwScorer, pending: list[tuple[int, bytes]]) -> tuple[np.ndarray, np.ndarray]:
    got = scorer.score([d for _, d in pending])
    return np.array([r for r, _ in pending], dtype=np.int64), got.astype(np.float64)


NSFW = NsfwSignal("nsfw", low=0.0, high=1.0, needs_images=True)
