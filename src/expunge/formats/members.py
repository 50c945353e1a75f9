"""What the members of an image shard are, by name: images, companions (text and structured data), or
neither. Shared by every image format so a ``KEY.txt`` in a tar and a ``notes.txt`` in a folder are
judged alike.
"""

from __future__ import annotations

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff", "avif", "heic", "heif", "jxl", "jp2")
#: Last extension parts (lower case) of members that hold text or structured data, not pictures. They are
#: still hashed and tried as images (a JPEG saved as ``KEY.txt`` is still found), but one that does not
#: decode is expected and not quarantined. Any other member that does not decode is quarantined: an
#: unknown extension (``.bak``, ``.heic`` without a decoder, none at all) may hold an image. Binary data
#: formats (``.npy``, ``.pth``...) are deliberately absent: they can hold pixels.
COMPANION_EXTS = frozenset(
    {
        "txt",
        "text",
        "caption",
        "json",
        "jsonl",
        "cls",
        "cls2",
        "id",
        "index",
        "inx",
        "csv",
        "tsv",
        "xml",
        "html",
        "htm",
        "yaml",
        "yml",
        "md",
        "rst",
        "parquet",
    }
)
#: Extension-less names (lower case) of documentation files: companions too, wherever they appear.
COMPANION_NAMES = frozenset(("license", "licence", "readme", "copying", "notice", "authors", "changelog"))

#: ``(sample index or -1, sample key or None, extension, bytes)`` of one member of an image shard, as the
#: image formats' ``iter_data`` yield them; sample -1 is data outside every sample.
MemberData = tuple[int, str | None, str, bytes]


def is_companion(ext: str) -> bool:
    """A member extension that marks text or structured data (:data:`COMPANION_EXTS`), or a
    documentation file's whole name (:data:`COMPANION_NAMES`, as :func:`scan` gives it for ``README``)."""
    return ext.rpartition(".")[2].lower() in COMPANION_EXTS or ext.lower() in COMPANION_NAMES


def is_image_ext(ext: str) -> bool:
    return ext.rpartition(".")[2].lower() in IMAGE_EXTS
