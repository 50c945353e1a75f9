"""Local paths and object-store URLs behind one interface (issue 13).

``location`` parses and names places (standard library only); ``fs`` reads and writes them through
fsspec / pyarrow, imported lazily; ``errors`` turns backend failures into one-line ``ExpungeError``s.
"""

from __future__ import annotations

from expunge.storage.errors import storage_errors
from expunge.storage.fs import (
    arrow_filesystem,
    clear_cache,
    copy,
    create_if_absent,
    delete,
    download,
    exists,
    filesystem,
    iter_chunks,
    listdir,
    open_input,
    put_bytes,
    put_file,
    read_bytes,
    size,
    walk,
    walk_all,
)
from expunge.storage.location import Location, is_remote, parse, redact

__all__ = [
    "Location",
    "arrow_filesystem",
    "clear_cache",
    "copy",
    "create_if_absent",
    "delete",
    "download",
    "exists",
    "filesystem",
    "is_remote",
    "iter_chunks",
    "listdir",
    "open_input",
    "parse",
    "put_bytes",
    "put_file",
    "read_bytes",
    "redact",
    "size",
    "storage_errors",
    "walk",
    "walk_all",
]
