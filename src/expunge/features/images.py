"""Image signals: exact digests and PDQ perceptual hashes of image bytes the user already holds.

Hash lists from clearing houses come in two kinds. Exact digests (MD5/SHA-1/SHA-256) catch the very
same file; PDQ (Meta's 256-bit perceptual hash) also catches re-encoded, resized or lightly edited
copies, compared by Hamming distance. This module turns the bytes of one image into both.

Everything here runs over millions of untrusted files, which shapes the design:

* **Nothing a bad file does escapes as an arbitrary exception.** Decoding failures become
  :class:`ImageError` with one of :data:`REASONS`; :func:`hash_image` never raises for a bad image,
  it records the reason and still returns the digests (a truncated download can be on an exact list).
* **Messages never quote content.** An image, or a few bytes of it, may itself be the abusive material,
  so errors say what *kind* of failure happened and never carry Pillow's message (some quote chunk
  names or header bytes) or the bytes.
* **Decompression bombs are refused from the header**, before any pixel buffer is allocated.
* **Decoding matches the PDQ reference** closely enough that hashes published by the reference C++
  and Python implementations are found: small and low-detail images are hashed by the ``pdqhash``
  binding of the reference C++ code; larger ones from a block-reduced decode whose 64x64 view, DCT,
  median and quality follow the reference step for step (bit for bit with 1-pixel blocks, 0-4 bits
  from the full decode as used). Bits are packed in the reference hex order (checked in the tests
  against the reference implementation's published outputs).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import re
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import pdqhash
from PIL import Image, ImageOps, UnidentifiedImageError

from expunge.config import MAX_PIXELS

RGBArray = npt.NDArray[np.uint8]
# Per output sample: the reduced pixels it reads (64 x width) and their weights.
_Band = tuple[npt.NDArray[np.intp], npt.NDArray[np.float32]]

REASONS: Final = (
    "empty_image",
    "not_an_image",
    "truncated_image",
    "decompression_bomb",
    "undecodable_image",
)

_MESSAGES: Final = {
    "empty_image": "image data is empty",
    "not_an_image": "data is not an image in a supported format",
    "truncated_image": "image data ends before the image does (truncated file)",
    "decompression_bomb": "image is larger than the allowed number of pixels (decompression bomb guard)",
    "undecodable_image": "image could not be decoded",
}

#: Pillow's own default hard limit: twice ``Image.MAX_IMAGE_PIXELS`` (89,478,485), about 179 megapixels.
#: Pillow refuses larger images outright and only *warns* above ``MAX_IMAGE_PIXELS``.
DEFAULT_MAX_PIXELS: Final = MAX_PIXELS

#: Formats Pillow may try. Untrusted bytes should reach only the decoders datasets actually need:
#: Pillow would otherwise also try EPS (which runs Ghostscript in a subprocess), fonts, WMF and a
#: long tail of rarely exercised parsers, and each attempt costs time on every non-image row.
#: (MPO, the multi-picture JPEG some cameras write, is opened by the JPEG plugin.)
FORMATS: Final = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "AVIF", "PPM", "ICO")

#: Bytes in a PDQ hash (256 bits).
PDQ_BYTES: Final = 32
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")

# Images whose shorter side is at least twice this are reduced by an integer box factor (for JPEG in
# the DCT, via ``Image.draft``) so the shorter side stays >= this. The reference code's Jarosz filter
# costs super-linearly in the pixel count (about 70 ms at 1024 px square, 1.5-3 s for a 24 MP photo),
# and PDQ only keeps a 64x64 box-filtered view, so a pre-average over a few pixels of an image that is
# still >= 1024 px moves the hash by a few bits at most (0-6 measured, mostly 0-2: the size of a JPEG
# re-encode, far inside the match radius of 31) for a 3-10x speed-up. Smaller images, including every
# image in the reference conformance set, are hashed at full resolution: reducing those moved the
# hash by 4-30 bits, past the 10-bit conformance tolerance.
_REDUCE_MIN_SIDE = 1024

#: hash_image reduces by up to this fraction of the reference's Jarosz window (see :func:`_pdq_scale`).
_PIXELS_PER_WINDOW = 2

#: A reduced-decode hash whose quality is below this is redone from the full decode (see hash_image).
_EXACT_BELOW_QUALITY = 100

# Python 3.11's warning filters are process-global, so "make DecompressionBombWarning an error here"
# can only be done by swapping the filters for the duration of a decode. The lock keeps two threads of
# this module from interleaving those swaps (which could leave the error filter installed for good);
# each process has its own filters. It serialises decoding between threads of one process, which
# costs little: the PDQ binding holds the GIL for most of the time anyway, and the project runs one
# worker process per core.
_PILLOW_LOCK = threading.Lock()


class ImageError(Exception):
    """Why an image could not be decoded: ``reason`` is one of :data:`REASONS`.

    The message is fixed per reason, never derived from the data or from Pillow's message (see the
    module docstring), so it is safe to log.
    """

    reason: str

    def __init__(self, reason: str, detail: str | None = None) -> None:
        if reason not in _MESSAGES:
            raise ValueError(f"unknown image error reason {reason!r} (known: {', '.join(REASONS)})")
        self.reason = reason
        self.detail = detail
        text = _MESSAGES[reason] if detail is None else f"{_MESSAGES[reason]} ({detail})"
        super().__init__(text)

    def __reduce__(self) -> tuple[type[ImageError], tuple[str, str | None]]:
        # Worker processes raise these; pickling must keep the reason.
        return (ImageError, (self.reason, self.detail))


@dataclass(frozen=True)
class ImageHashes:
    """All signals of one image's bytes.

    ``pdq`` and ``quality`` are ``None`` when the bytes could not be decoded (``error`` says why); the
    digests are always present because exact lists match files, decodable or not. ``dihedral`` holds
    the PDQ hashes of the 7 other rotations/flips, in ``pdqhash`` order (rotate 90, 180, 270, flip x,
    flip y, flip +1, flip -1), when they were asked for.
    """

    md5: bytes
    sha1: bytes
    sha256: bytes
    pdq: bytes | None
    quality: int | None
    dihedral: tuple[bytes, ...] = ()
    error: str | None = None


# --------------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _pillow_guard(max_pixels: int) -> Iterator[None]:
    """For this decode only: Pillow's bomb warning never passes silently, other warnings are muted.

    Pillow refuses images over twice ``Image.MAX_IMAGE_PIXELS`` but between 1x and 2x it only warns
    and carries on decoding. When ``max_pixels`` is within Pillow's warning limit the warning means
    "over our limit", so it becomes an error and Pillow stops before allocating pixels. When the
    caller allows more (as the default does: it is Pillow's hard limit), the warning is muted and
    :func:`_check_pixels` decides from the header, also before any pixel is allocated; either way the
    caller's ``max_pixels`` is what counts and nothing is printed. Other warnings (corrupt EXIF and
    the like) would print a line per bad file on a crawl of millions; the ImageError reason carries
    the signal instead. ``catch_warnings`` restores the filters on exit.
    """
    pillow_limit = Image.MAX_IMAGE_PIXELS
    with _PILLOW_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if pillow_limit is not None and max_pixels <= pillow_limit:
            warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


def _reason_for(exc: BaseException) -> str:
    """Map whatever Pillow raised to a reason. Order matters: UnidentifiedImageError is an OSError."""
    if isinstance(exc, UnidentifiedImageError):
        return "not_an_image"
    if isinstance(exc, Image.DecompressionBombError | Image.DecompressionBombWarning):
        return "decompression_bomb"
    if isinstance(exc, EOFError) or (isinstance(exc, OSError) and "truncated" in str(exc).lower()):
        # "image file is truncated (N bytes not processed)", "Truncated File Read", early EOF.
        return "truncated_image"
    return "undecodable_image"


def _check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise ImageError("undecodable_image", "zero-sized image")
    if width * height > max_pixels:
        raise ImageError("decompression_bomb")


def _grey_to_8bit(arr: npt.NDArray[np.generic]) -> RGBArray:
    """Scale a 16/32-bit integer or float greyscale plane to 8 bits over its range (never clip).

    Clipping (Pillow's ``convert``) turns every 16-bit value above 255 white. Unsigned 16-bit data
    and integer data within 0..65535 (Pillow opens 16-bit PPM as ``I``) use the nominal 16-bit range,
    so an image hashes like its 8-bit version; floats within [0, 1] use that range; anything else is
    stretched min..max, which PDQ tolerates: it thresholds DCT coefficients that exclude the DC term
    at their median, so a positive affine change of brightness leaves the hash unchanged.
    """
    sixteen_bit = arr.dtype.kind == "u" and arr.dtype.itemsize <= 2
    if sixteen_bit or (arr.dtype.kind in "iu" and arr.min() >= 0 and arr.max() <= 0xFFFF):
        return ((arr.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    values = arr.astype(np.float64)
    finite = np.isfinite(values)
    if not finite.all():  # NaN/inf in float TIFFs: give them the darkest finite value
        values = np.where(finite, values, values[finite].min() if finite.any() else 0.0)
    lo, hi = float(values.min()), float(values.max())
    if arr.dtype.kind == "f" and lo >= 0.0 and hi <= 1.0:
        return np.rint(values * 255.0).astype(np.uint8)
    if hi <= lo:
        return np.zeros(arr.shape, dtype=np.uint8)
    return np.rint((values - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def _composite_on_white(rgba: RGBArray) -> RGBArray:
    """Flatten RGBA onto white: what a viewer shows, not the colour stored under transparent pixels.

    The RGB under alpha 0 is arbitrary (often black, sometimes leftover pixels an encoder kept), so
    hashing it would let invisible data decide the hash, and an uploader could hide a different picture
    there. White is the background web pages and image viewers most often show transparent images on,
    so the flattened image is the one people actually saw. (The reference C++ tool ignores alpha and
    hashes the stored RGB; the two agree on every opaque image, i.e. on nearly all photos.)
    """
    alpha = rgba[..., 3:4]
    if alpha.min() == 255:
        return np.ascontiguousarray(rgba[..., :3])
    a = alpha.astype(np.uint16)
    rgb = rgba[..., :3].astype(np.uint16)
    # (c*a + 255*(255-a)) / 255, rounded; at most 255*255 + 127, so uint16 holds it.
    return ((rgb * a + 255 * (255 - a) + 127) // 255).astype(np.uint8)


def _to_rgb(im: Image.Image) -> RGBArray:
    """Any decoded mode → (H, W, 3) uint8, without per-pixel Python."""
    mode = im.mode
    if mode == "RGB":
        return np.asarray(im)
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in im.info):
        return _composite_on_white(np.asarray(im.convert("RGBA")))
    if mode.startswith(("I", "F")):  # I;16, I;16B, I;16L, I;16N, I (int32), F (float32)
        grey = _grey_to_8bit(np.asarray(im))
        return np.repeat(grey[:, :, np.newaxis], 3, axis=2)
    # L, 1, P, CMYK, YCbCr, LAB, HSV, RGBX: Pillow's converters are exact enough and run in C.
    return np.asarray(im.convert("RGB"))


@functools.cache
def _open_formats() -> tuple[str, ...]:
    """:data:`FORMATS` that this Pillow build registers (AVIF is optional); Pillow raises on others."""
    Image.init()
    return tuple(f for f in FORMATS if f in Image.OPEN)


def _reduce_factor(size: tuple[int, int]) -> int:
    shorter = min(size)
    return shorter // _REDUCE_MIN_SIDE if shorter >= 2 * _REDUCE_MIN_SIDE else 1


def _pdq_scale(width: int, height: int) -> int:
    """How many pixels per side hash_image may average into one before PDQ sees the image.

    The reference blurs with two box passes of ``ceil(side / 128)`` pixels (its Jarosz filter) before
    keeping 64 samples per side. Averaging blocks of up to half that window first, and folding the
    blocks into the reference's filter weights (:func:`_axis_weights`), reproduces its 64x64 view
    closely: measured on generated and shipped photos, 0-2 bits from the full decode (p99 2, max 4).
    Blocks as wide as the whole window moved 256-pixel images by up to 30 bits.
    """
    window = (min(width, height) + 127) // 128
    return max(1, window // _PIXELS_PER_WINDOW)


@dataclass(frozen=True)
class _Reduced:
    """A decode for PDQ: ``rgb`` averages ``scale`` x ``scale`` blocks of a ``height`` x ``width`` image."""

    rgb: RGBArray
    height: int
    width: int
    scale: int


def _decode(data: bytes, max_pixels: int, *, for_pdq: bool = False) -> RGBArray | _Reduced:
    with Image.open(io.BytesIO(data), formats=_open_formats()) as im:
        # Header only so far: refuse oversized images before the decoder allocates anything.
        _check_pixels(im.size, max_pixels)
        full = im.size
        drafted = False
        if for_pdq and im.format in ("JPEG", "MPO") and (step := min(_pdq_scale(*full), 8)) > 1:
            # Decode straight from the DCT at 1/2, 1/4 or 1/8: most of a JPEG's decode time is the
            # full-size inverse DCT and colour conversion, which PDQ would then average away.
            im.draft(None, (full[0] // step, full[1] // step))
            drafted = im.size != full
        elif not for_pdq and im.format in ("JPEG", "MPO") and _reduce_factor(im.size) > 1:
            im.draft(None, (_REDUCE_MIN_SIDE, _REDUCE_MIN_SIDE))
        im.load()  # the first frame: Image.open leaves animated images on frame 0
        # GIF frames may grow the canvas while loading; Pillow checks its own limit then, we ours.
        _check_pixels(im.size, max_pixels)
        stored, tag_turns = im.size, False
        if drafted and stored[0] == stored[1]:
            with contextlib.suppress(Exception):
                tag_turns = im.getexif().get(0x0112) in (5, 6, 7, 8)
        # A malformed EXIF block does not make the pixels unusable: hash them as stored.
        with contextlib.suppress(Exception):
            ImageOps.exif_transpose(im, in_place=True)
        rgb = _to_rgb(im)
        if not drafted:
            full = im.size
        elif im.size != stored or tag_turns:
            # Orientation 5-8 turned the reduced picture; the full one is turned alike. (A square
            # reduced picture does not show it, the tag does; its two full sides differ by less
            # than one block, so a tag that failed to apply costs a sub-block shift at most.)
            full = (full[1], full[0])
    if for_pdq:
        return _reduce_for_pdq(rgb, full, drafted)
    factor = _reduce_factor((rgb.shape[1], rgb.shape[0]))
    if factor > 1:
        rgb = np.asarray(Image.fromarray(rgb).reduce(factor))
    return np.ascontiguousarray(rgb, dtype=np.uint8)


def _reduce_for_pdq(rgb: RGBArray, full: tuple[int, int], drafted: bool) -> _Reduced:
    """Finish the reduction: the JPEG draft's factor times a box ``reduce`` up to :func:`_pdq_scale`."""
    width, height = full
    done = 1
    if drafted:
        # ceil(side / s) on both sides identifies the DCT scale the decoder used.
        done = next(
            (s for s in (2, 4, 8) if -(-width // s) == rgb.shape[1] and -(-height // s) == rgb.shape[0]),
            0,
        )
        if not done:  # not a plain DCT scaling: let the caller decode in full
            return _Reduced(np.ascontiguousarray(rgb, dtype=np.uint8), height, width, 0)
    more = _pdq_scale(width, height) // done
    if more > 1:
        rgb = np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).reduce(more))
        done *= more
    return _Reduced(np.ascontiguousarray(rgb, dtype=np.uint8), height, width, done)


def decode_rgb(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> RGBArray:
    """Decode image bytes to the (H, W, 3) uint8, C-contiguous RGB array that PDQ hashes.

    EXIF orientation is applied, animated images give their first frame, transparency is flattened
    onto white and 16/32-bit data is scaled (not clipped) to 8 bits. Images whose shorter side is at
    least 2048 px come back box-reduced by an integer factor (shorter side still >= 1024 px), which
    makes huge photos 3-10x faster to hash and moves their PDQ hash by a few bits at most.

    Raises :class:`ImageError` for anything Pillow cannot or should not decode. ``max_pixels`` is
    checked against the header before decoding. Pillow's hard limit (twice its process-wide
    ``Image.MAX_IMAGE_PIXELS``, which is the default here) applies as well: a larger ``max_pixels``
    needs that setting raised too.

    The array is C-contiguous but may be read-only (it can share memory with Pillow's output).
    """
    rgb = _guarded_decode(data, max_pixels, for_pdq=False)
    if not isinstance(rgb, np.ndarray):  # pragma: no cover - for_pdq=False returns the array
        raise TypeError("unexpected decode result")
    return rgb


def _guarded_decode(data: bytes, max_pixels: int, *, for_pdq: bool) -> RGBArray | _Reduced:
    if max_pixels < 1:
        raise ValueError("max_pixels must be positive")
    if not data:
        raise ImageError("empty_image")
    with _pillow_guard(max_pixels):
        try:
            return _decode(data, max_pixels, for_pdq=for_pdq)
        except ImageError:
            raise
        except Exception as exc:
            # ``from None``: the cause's message may quote bytes of the file.
            raise ImageError(_reason_for(exc), f"Pillow raised {type(exc).__name__}") from None


# --------------------------------------------------------------------------------------------------
# Hashing
# --------------------------------------------------------------------------------------------------


def _check_rgb(rgb: RGBArray) -> None:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError("expected an (H, W, 3) uint8 array")
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ValueError("expected a non-empty image")


def _pack(bits: npt.NDArray[np.generic]) -> bytes:
    """The binding's 0/1 vector → 32 bytes in the reference hex order.

    ``pdqhash`` returns the bits most significant first (element 0 is bit 255, the top bit of the
    reference hex's first digit), so packing big-endian within each byte gives exactly the bytes of
    the reference ``pdq_hex``. The other orders tried (reversed, little-endian per byte) put every
    reference image about 128 bits away.
    """
    return np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes()


def pdq(rgb: RGBArray) -> tuple[bytes, int]:
    """PDQ hash (32 bytes, reference bit order) and quality (0..100; below ~50, hashes are unreliable)."""
    _check_rgb(rgb)
    bits, quality = pdqhash.compute(rgb)
    return _pack(bits), int(quality)


def pdq_dihedral(rgb: RGBArray) -> list[tuple[bytes, int]]:
    """PDQ hashes of the 8 rotations/flips, computed from one DCT (cheaper than 8 hashes).

    Order, as ``pdqhash.compute_dihedral`` returns it (checked against the reference's rotated
    files): original, rotate 90 (counter-clockwise), rotate 180, rotate 270, flip x (upside down),
    flip y (mirror), flip +1 (transpose), flip -1 (anti-transpose). Element 0 equals :func:`pdq`.
    A list holding any of these hashes also catches the unrotated original.
    """
    _check_rgb(rgb)
    vectors, quality = pdqhash.compute_dihedral(rgb)
    return [(_pack(v), int(quality)) for v in vectors]


def digests(data: bytes) -> tuple[bytes, bytes, bytes]:
    """MD5, SHA-1 and SHA-256 of exactly these bytes (MD5/SHA-1 as list identifiers, not security)."""
    return (
        hashlib.md5(data, usedforsecurity=False).digest(),
        hashlib.sha1(data, usedforsecurity=False).digest(),
        hashlib.sha256(data).digest(),
    )


@functools.lru_cache(maxsize=512)
def _axis_weights(full: int, reduced: int, scale: int) -> _Band:
    """64 x ``reduced`` weights: the reference's Jarosz filter and decimation along one axis, folded
    onto ``scale``-pixel blocks (reduced pixel r averages full pixels r*scale .. r*scale+scale-1).

    The reference box pass over ``full`` pixels with window ``w`` averages pixels i-(w-half) ..
    i+(half-1) (half = (w+2)//2), clipped and renormalised at the edges; two passes, then the pixel
    at floor((i + 0.5) * full / 64) is kept. With ``scale`` 1 this is the reference's own 64x64
    (the tests check it bit for bit against the binding).
    """
    window = (full + 127) // 128
    half = (window + 2) // 2
    pos = np.arange(full)
    lo, hi = np.maximum(pos - (window - half), 0), np.minimum(pos + (half - 1), full - 1)
    box = ((pos >= lo[:, None]) & (pos <= hi[:, None])).astype(np.float64)
    box /= box.sum(axis=1, keepdims=True)
    kept = ((np.arange(64) + 0.5) * full / 64).astype(np.int64)
    twice = box[kept] @ box  # 64 x full: the two passes, at the kept pixels only
    weights = np.zeros((64, reduced))
    np.add.at(weights.T, np.minimum(pos // scale, reduced - 1), twice.T)
    # Each row is a narrow band: keep (start + offsets, weights) so applying it is a gather and a sum,
    # not a 64 x reduced matrix product (which OpenBLAS spreads over threads that contend on a busy box).
    nonzero = weights > 0
    start = nonzero.argmax(axis=1)
    width = int((reduced - nonzero[:, ::-1].argmax(axis=1) - start).max())
    index = np.minimum(start[:, None] + np.arange(width)[None, :], reduced - 1)
    band = np.take_along_axis(weights, index, axis=1)
    band[start[:, None] + np.arange(width)[None, :] > reduced - 1] = 0.0  # clipped repeats of the edge
    index.flags.writeable = False
    out = band.astype(np.float32)
    out.flags.writeable = False
    return index, out


_LUMA: Final = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_DCT16x64: Final = (
    np.sqrt(2.0 / 64.0) * np.cos(np.pi / 128.0 * np.arange(1, 17)[:, None] * (2 * np.arange(64)[None, :] + 1))
).astype(np.float32)
# Sign of each DCT row under a flip of its axis: even rows (odd frequencies 1, 3, ...) change sign.
_FLIP_SIGN: Final = np.where(np.arange(16) % 2 == 1, 1.0, -1.0).astype(np.float32)


def _bits(coefficients: npt.NDArray[np.float32]) -> bytes:
    """Bit i*16+j is set when coefficient (i, j) is above the lower median (the reference's torben)."""
    median = np.partition(coefficients, 127, axis=None)[127]
    return _pack((coefficients > median).reshape(-1)[::-1])


def _pdq_reduced(small: _Reduced, dihedral: bool) -> tuple[bytes, int, tuple[bytes, ...]]:
    """PDQ of a block-reduced decode: the reference's 64x64 view rebuilt from the blocks, then the
    reference's DCT, median threshold, quality metric and dihedral sign rules."""
    luma = small.rgb @ _LUMA  # the reference's 0.299 R + 0.587 G + 0.114 B, in float32
    row_index, row_weights = _axis_weights(small.height, luma.shape[0], small.scale)
    col_index, col_weights = _axis_weights(small.width, luma.shape[1], small.scale)
    across = np.einsum("ob,obc->oc", row_weights, luma[row_index])  # 64 x reduced width
    view = np.einsum("ob,cob->co", col_weights, across[:, col_index])  # 64 x 64
    # Quality: the reference's gradient count on the 64x64 view (each step truncated to int).
    steps = np.abs(np.trunc((view[:-1] - view[1:]) * 100 / 255)).sum()
    steps += np.abs(np.trunc((view[:, :-1] - view[:, 1:]) * 100 / 255)).sum()
    quality = min(int(steps) // 90, 100)
    dct = _DCT16x64 @ view @ _DCT16x64.T
    if not dihedral:
        return _bits(dct), quality, ()
    s = _FLIP_SIGN
    others = (
        (dct * s[None, :]).T,  # rotate 90
        dct * s[:, None] * s[None, :],  # rotate 180
        (dct * s[:, None]).T,  # rotate 270
        dct * s[:, None],  # flip x
        dct * s[None, :],  # flip y
        dct.T,  # flip +1
        (dct * s[:, None] * s[None, :]).T,  # flip -1
    )
    return _bits(dct), quality, tuple(_bits(np.ascontiguousarray(o)) for o in others)


def hash_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, dihedral: bool = False) -> ImageHashes:
    """Every signal of one image's bytes; never raises for a bad image (``error`` says what was wrong).

    Images of at least 512 px a side are decoded block-reduced (JPEG straight from the DCT) and
    hashed by rebuilding the reference's 64x64 view from the blocks (:func:`_pdq_scale`): 3-5x the
    speed, a few bits from the full decode at most. Anything the reduced hash rates below
    :data:`_EXACT_BELOW_QUALITY`, and every smaller image, is hashed from the full decode exactly
    as the reference binding does.
    """
    md5, sha1, sha256 = digests(data)
    try:
        decoded = _guarded_decode(data, max_pixels, for_pdq=True)
        if isinstance(decoded, _Reduced) and decoded.scale > 1:
            h, quality, others = _pdq_reduced(decoded, dihedral)
            if quality >= _EXACT_BELOW_QUALITY:
                return ImageHashes(md5, sha1, sha256, h, quality, others)
            # Low-detail pictures: their bits sit near the median and their quality near the floor,
            # so they take the exact path (a second decode, for a small share of photos).
            rgb = decode_rgb(data, max_pixels)
        elif isinstance(decoded, _Reduced):
            rgb = decoded.rgb if decoded.scale == 1 else decode_rgb(data, max_pixels)
        else:  # pragma: no cover - for_pdq=True returns _Reduced
            rgb = decoded
    except ImageError as exc:
        return ImageHashes(md5, sha1, sha256, None, None, (), exc.reason)
    if dihedral:
        hashes = pdq_dihedral(rgb)
        return ImageHashes(md5, sha1, sha256, hashes[0][0], hashes[0][1], tuple(h for h, _ in hashes[1:]))
    h, quality = pdq(rgb)
    return ImageHashes(md5, sha1, sha256, h, quality)


def hamming(a: bytes, b: bytes) -> int:
    """Number of differing bits between two equally long hashes."""
    if len(a) != len(b):
        raise ValueError(f"hashes differ in length ({len(a)} and {len(b)} bytes)")
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).bit_count()


def pdq_to_hex(h: bytes) -> str:
    """The reference's 64-digit lowercase hex form."""
    if len(h) != PDQ_BYTES:
        raise ValueError(f"a PDQ hash is {PDQ_BYTES} bytes, not {len(h)}")
    return h.hex()


def pdq_from_hex(s: str) -> bytes:
    """Parse the reference hex form (either case). The message never quotes the value."""
    text = s.strip()
    if len(text) != 2 * PDQ_BYTES:
        raise ValueError(f"expected {2 * PDQ_BYTES} hex digits for a PDQ hash, found {len(text)}")
    if not _HEX64.fullmatch(text):
        raise ValueError("invalid hex digit in PDQ hash")
    return bytes.fromhex(text)
