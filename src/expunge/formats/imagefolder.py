"""Plain image folders: every directory that holds image files is a shard, every sample file a row.

A folder may also hold one metadata parquet naming its files (a ``file`` / ``filename`` / ``path``
column); its rows are then the shard's rows, linked to the files by name, like img2dataset's parquet
is linked to its tar by ``key``. Cleaning writes the same folder layout without the removed files:
kept files are hard-linked (or copied) byte for byte.

Which files are samples, failing closed: every regular file in the directory except hidden ones (``.``,
never published) and *companions*, files whose extension marks text or structured data (``.txt``,
``.json``, ``.csv``, the metadata parquet... see :data:`expunge.formats.members.COMPANION_EXTS`) or
whose name is a licence or read-me. So ``x.jpg.bak``, ``x.heic``, ``x.jxl``, ``_x.jpg`` and an
extension-less file are samples: checked, and quarantined if they do not decode. Companions are
published as they are, but their bytes are hashed too (:func:`iter_data`, sample ``-1``): a companion
that matches a list, or that a metadata row names as its image, makes the shard refused.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from expunge import atomic
from expunge.errors import ExpungeError
from expunge.formats import parquet
from expunge.formats.base import (
    CleanRows,
    CleanTarget,
    Shard,
    ShardFormat,
    ShardOutputs,
    parquet_rows_or_unreadable,
)
from expunge.formats.members import COMPANION_EXTS, COMPANION_NAMES, MemberData
from expunge.formats.paths import RESERVED_NAMES

IMAGE_SUFFIXES = (
    ".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".avif", ".heic", ".heif", ".jxl",
)  # fmt: skip
FILE_COLUMNS = ("file", "filename", "file_name", "path", "image_path", "image")


def _has_image_suffix(name: str) -> bool:
    """Discovery: a directory is an image folder when it holds a file with a known image extension."""
    return name.lower().endswith(IMAGE_SUFFIXES) and not name.startswith((".", "_"))


def is_companion_file(name: str) -> bool:
    base = name.lower()
    return base in COMPANION_NAMES or ("." in base and base.rpartition(".")[2] in COMPANION_EXTS)


def is_image_file(name: str) -> bool:
    """A sample file of an image folder: published and not a companion (see the module docstring)."""
    return not name.startswith(".") and not is_companion_file(name)


@dataclass(frozen=True)
class FolderShard:
    name: str  # directory relative to the dataset root ("." for the root itself)
    path: str  # absolute directory
    parquet: str | None  # the metadata parquet in that directory, if any


def has_images(specs: Sequence[str]) -> bool:
    for spec in specs:
        if os.path.isdir(spec):
            for _dirpath, dirnames, filenames in os.walk(spec):
                dirnames[:] = [d for d in dirnames if not d.startswith((".", "_"))]
                if any(_has_image_suffix(f) for f in filenames):
                    return True
    return False


def discover_folders(specs: Sequence[str]) -> tuple[str, list[FolderShard]]:
    dirs: set[str] = set()
    for spec in specs:
        matches = glob.glob(spec) if any(ch in spec for ch in "*?[") else [spec]
        for base in matches:
            if not os.path.isdir(base):
                raise ExpungeError("image folder not found", base)
            for dirpath, dirnames, filenames in os.walk(base):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "_")))
                if any(_has_image_suffix(f) for f in filenames):
                    dirs.add(os.path.abspath(dirpath))
    if not dirs:
        raise ExpungeError("no image files found", ", ".join(specs))
    ordered = sorted(dirs)
    root = os.path.commonpath(ordered) if len(ordered) > 1 else ordered[0]
    shards = []
    for d in ordered:
        parquets = sorted(f for f in os.listdir(d) if f.endswith(".parquet") and not f.startswith("."))
        if len(parquets) > 1:
            # Only one can be the metadata; the others would be published with their URLs unchecked.
            raise ExpungeError(f"{len(parquets)} parquet files in one image folder (at most one)", d)
        name = os.path.relpath(d, root).replace(os.sep, "/")
        shards.append(FolderShard(name, d, os.path.join(d, parquets[0]) if parquets else None))
    return root, shards


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def published_files(directory: str) -> list[str]:
    """Every file the release carries for this folder (before removals), sorted; non-UTF-8 names refused."""
    names = sorted(f for f in os.listdir(directory) if not f.startswith("."))
    bad = sum(1 for f in names if not _utf8(f))
    if bad:
        raise ExpungeError(f"{bad} file name(s) are not valid UTF-8 (refusing the folder)", directory)
    return [f for f in names if os.path.isfile(os.path.join(directory, f))]


def content_files(directory: str, *, top: bool = False) -> list[str]:
    """The files whose bytes are a folder shard's identity, as absolute paths in one fixed order.

    Every file the release carries for the folder, not only its samples: a companion changed after
    indexing (a ``notes.txt`` that now holds pixels) must make the shard look changed. The index, the
    clean stage and ``verify`` all hash this same list. ``top``: the folder is the dataset's root (shard
    ``.``), whose release folder also holds the release's own files; those are not the shard's.
    """
    names = published_files(directory)
    if top:
        names = [f for f in names if f.lower() not in RESERVED_NAMES]
    return [os.path.join(directory, f) for f in names]


def image_files(directory: str) -> list[str]:
    """The shard's samples: sample files directly in the directory, sorted by name."""
    return [f for f in published_files(directory) if is_image_file(f)]


def _read(directory: str, name: str) -> bytes:
    try:
        return Path(directory, name).read_bytes()
    except OSError as exc:
        raise ExpungeError(f"cannot read file ({exc.strerror})", os.path.join(directory, name)) from None


def iter_data(directory: str, meta: str | None) -> Iterator[tuple[int, str | None, str, bytes]]:
    """``(sample index, key, ext, bytes)`` of every sample file, then of every companion (sample ``-1``).

    The metadata parquet itself is left out: it is the shard's rows, not a file beside them.
    """
    names = published_files(directory)
    samples = [f for f in names if is_image_file(f)]
    for i, name in enumerate(samples):
        yield i, name, _ext(name), _read(directory, name)
    skip = os.path.basename(meta) if meta else None
    for name in names:
        if not is_image_file(name) and name != skip:
            yield -1, None, _ext(name) or name, _read(directory, name)  # "LICENSE" is classified by name


def _ext(name: str) -> str:
    return name.partition(".")[2] if not name.startswith(".") else ""


def iter_images(directory: str) -> Iterator[tuple[int, str, bytes]]:
    """``(sample index, file name, bytes)`` of every sample file."""
    for i, name, _, data in iter_data(directory, None):
        if name is not None:
            yield i, name, data


def _resolve(value: str, directory: str) -> str | None:
    """The file of ``directory`` a metadata value names, or None if it names none there.

    Values are paths: ``x.jpg``, ``./x.jpg``, ``imgs/x.jpg`` (relative to an ancestor of the folder
    ending in ``imgs``) and ``/abs/imgs/x.jpg`` all name ``x.jpg`` of ``/abs/imgs``; ``..`` never
    resolves.
    """
    parts = [p for p in value.split("/") if p not in ("", ".")]
    if not parts:
        return None
    dirs = parts[:-1]
    if not dirs:
        return parts[-1]
    here = [p for p in os.path.abspath(directory).split(os.sep) if p]
    if value.startswith("/"):
        ok = dirs == here
    else:
        ok = len(dirs) <= len(here) and here[len(here) - len(dirs) :] == dirs
    return parts[-1] if ok else None


def _file_values(meta: str, column: str) -> list[Any]:
    t = parquet.open_file(meta).schema_arrow
    if column not in t.names:
        raise ExpungeError(f"no column {column!r} in the folder's metadata", meta)
    values: list[Any] = []
    for col in parquet.iter_column(meta, column):
        if pa.types.is_dictionary(col.type):
            col = col.dictionary_decode()
        if col.type not in (pa.string(), pa.large_string(), pa.string_view(), pa.null()):
            raise ExpungeError(f"column {column!r} holds {col.type}, not file names", meta)
        values.extend(pc.cast(col, pa.string()).to_pylist())
    return values


def link_rows(directory: str, files: Sequence[str], meta: str, column: str) -> list[int]:
    """The metadata row of each sample file; refuses a folder whose files and rows do not correspond.

    Refused: two rows naming one file (after resolving ``./`` and folder prefixes), a row naming a
    companion as its image (it would stay when the row goes), and a sample file no row names. Rows
    naming no file of the folder are kept as rows without an image.
    """
    row_of: dict[str, int] = {}
    duplicates = companions = 0
    for i, value in enumerate(_file_values(meta, column)):
        if value is None:
            continue
        name = _resolve(value, directory)
        ident = (
            name if name is not None else "\0" + "/".join(p for p in value.split("/") if p not in ("", "."))
        )
        if ident in row_of:
            duplicates += 1
            continue
        row_of[ident] = i
        if name is not None and not is_image_file(name) and os.path.isfile(os.path.join(directory, name)):
            companions += 1
    if duplicates:
        raise ExpungeError(
            f"{duplicates} duplicate file name(s) in column {column!r} (refusing the folder)", meta
        )
    if companions:
        raise ExpungeError(
            f"{companions} row(s) of column {column!r} name a file that is not a sample by its extension"
            " (refusing the folder)",
            meta,
        )
    rows = [row_of.get(f, -1) for f in files]
    unlinked = rows.count(-1)
    if unlinked:
        raise ExpungeError(
            f"{unlinked} of {len(files)} file(s) are named by no row of {os.path.basename(meta)}"
            f" (column {column!r}; refusing the folder: they would be published unchecked)",
            directory,
        )
    return rows


def write_folder(directory: str, out_dir: Path, drop: set[str], tmp_dir: Path, skip: set[str]) -> int:
    """Copy the directory's files to ``out_dir`` except the dropped samples (and ``skip``, written elsewhere).

    Returns how many sample files were kept. Subdirectories are shards of their own.
    """
    kept = 0
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in published_files(directory):
        if name in drop or name in skip:
            continue
        atomic.copy_or_link(Path(directory, name), out_dir / name, tmp_dir)
        kept += is_image_file(name)
    return kept


class ImageFolderFormat(ShardFormat):
    """Folders of image files, each optionally with one metadata parquet naming its files."""

    name = "imagefolder"
    has_images = True
    # A folder is published as a folder; there is no registered media type for one, so it is labelled
    # as ``file --mime-type`` labels a directory.
    media_type = "inode/directory"

    def claims(self, specs: Sequence[str]) -> bool:
        return has_images(specs)

    def discover(self, specs: Sequence[str]) -> tuple[str, list[Shard]]:
        root, folders = discover_folders(specs)
        return root, [Shard(f.name, self.name, f.path, f.parquet) for f in folders]

    def default_key_column(self, metadata: str) -> str | None:
        """A folder's metadata names its files: that column is what links rows to images."""
        names = parquet.open_file(metadata).schema_arrow.names
        column = next((c for c in FILE_COLUMNS if c in names), None)
        if column is None:
            wanted = ", ".join(FILE_COLUMNS)
            raise ExpungeError(f"metadata beside images needs a column naming files ({wanted})", metadata)
        return column

    def content_files(self, shard: Shard) -> list[str]:
        return content_files(shard.location, top=shard.name == ".")

    def source_paths(self, shard: Shard) -> list[str]:
        return [*self.content_files(shard), shard.location]

    def published_sources(self, shard: Shard) -> list[str]:
        # Every file of the folder, the ones named like release files included.
        files = [os.path.join(shard.location, f) for f in published_files(shard.location)]
        return [*self.content_files(shard), *files]

    def sample_keys(self, shard: Shard) -> list[str]:
        return image_files(shard.location)

    def link_rows(self, shard: Shard, keys: Sequence[str], key_column: str) -> list[int]:
        assert shard.metadata is not None
        return link_rows(shard.location, keys, shard.metadata, key_column)

    def iter_members(self, shard: Shard) -> Iterator[MemberData]:
        return iter_data(shard.location, shard.metadata)

    def outputs(self, shard: Shard, target: CleanTarget, drop_keys: frozenset[str]) -> ShardOutputs:
        folder = shard.location
        names = sorted(
            f
            for f in os.listdir(folder)
            if not f.startswith(".") and f not in drop_keys and os.path.isfile(os.path.join(folder, f))
        )
        # What this run puts there (sorted, as content_files lists them): stale files of an earlier run
        # are swept before the manifest is written, so listing the output folder would count them.
        files = [target.out / f for f in names]
        return ShardOutputs(files, files)

    def write_clean(self, shard: Shard, target: CleanTarget, rows: CleanRows) -> str:
        """The folder without the dropped images; its metadata parquet without their rows."""
        out, tmp_dir = target.out, target.tmp_dir
        meta = os.path.basename(shard.metadata) if shard.metadata else None
        write_folder(shard.location, out, set(rows.drop_keys), tmp_dir, skip={meta} if meta else set())
        if shard.metadata and meta:
            n_meta = parquet.num_rows(shard.metadata)
            meta_gone = [r for r in rows.gone if r < n_meta]
            if meta_gone:
                keep = np.ones(n_meta, dtype=bool)
                keep[meta_gone] = False
                with atomic.atomic_path(out / meta, tmp_dir) as tmp:
                    parquet.rewrite(shard.metadata, tmp, keep)
            else:
                atomic.copy_or_link(Path(shard.metadata), out / meta, tmp_dir)
        return "rewritten" if rows.gone else "copied"

    def owns_release_shard(self, release: Path, name: str) -> bool:
        return (release / name).is_dir()

    def release_files(self, release: Path, name: str) -> tuple[list[str], int | None]:
        main = release / name
        metas = sorted(p for p in main.glob("*.parquet"))
        rows = parquet_rows_or_unreadable(metas[0]) if len(metas) == 1 else len(image_files(str(main)))
        return content_files(str(main), top=name == "."), rows
