"""The samples of an image tar: which members make which sample, and their bytes, in one pass.

Samples follow webdataset's own rules so keys match what training code sees: only regular files make
samples (keys by :func:`expunge.formats.tar.member_key`). Unlike webdataset, a key that recurs
non-consecutively is one sample here (its members are removed together), listed at its first appearance.

For checking, every data-carrying entry counts (:func:`scan`): every member of a sample whatever its
extension, an extension-less file named like a sample, and data outside every sample, so nothing the
release would carry goes unhashed. A name that occurs twice (the later one would overwrite the earlier
on extraction) or that is not valid UTF-8 makes the shard refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

from expunge import storage
from expunge.errors import ExpungeError
from expunge.formats.members import COMPANION_NAMES
from expunge.formats.paths import is_url
from expunge.formats.tar import Archive, Entry, member_key, normalize_name, split_key


@dataclass(frozen=True)
class Member:
    name: str
    key: str
    ext: str  # everything after the first dot of the basename, case as stored ("seg.png")
    offset_data: int  # offset of the member's data in the tar
    size: int


class DataMember(NamedTuple):
    """One data-carrying entry, as :func:`scan` assigns it: to a sample, or to none (``sample == -1``)."""

    sample: int  # index into :attr:`Layout.keys`, -1 for data outside every sample
    key: str | None  # the sample's key (None outside every sample)
    ext: str  # what the member is classified by: its extension ("" if none), or README's whole name
    offset_data: int
    size: int


@dataclass(frozen=True)
class Layout:
    keys: list[str]  # normalised sample keys, in order of first appearance
    members: list[DataMember]  # every data-carrying entry, in tar order


class RemoteArchive(Archive):
    """A shard on object storage, walked like a local one through ranged reads.

    Headers sit between members, so a walk that fetched each 512-byte header alone would cost one
    request per member: reads go through a window of :attr:`WINDOW` bytes fetched at once, and a member
    larger than the window is fetched on its own (a header scan skips it without reading it).
    """

    WINDOW = 8 << 20

    def __init__(self, path: str) -> None:
        # Not Archive.__init__: that opens a local descriptor; this reads through a random-access file.
        self.path = path
        self.file = storage.open_input(path)
        with storage.storage_errors(path):
            self.size = self.file.size()
        self.end_marker = -1
        self._start = 0
        self._window = b""

    def close(self) -> None:
        self.file.close()

    def _fetch(self, offset: int, n: int) -> bytes:
        with storage.storage_errors(self.path):
            data: bytes = self.file.read_at(n, offset)
        return data

    def read(self, offset: int, n: int) -> bytes:
        start = offset - self._start
        if start >= 0 and start + n <= len(self._window):
            return self._window[start : start + n]
        if n >= self.WINDOW:
            data = self._fetch(offset, n)
        else:
            self._start = offset
            self._window = self._fetch(offset, max(0, min(self.WINDOW, self.size - offset)))
            data = self._window[:n]
        if len(data) != n:
            raise self.fail("shard changed size while being read (truncated)", offset + len(data))
        return data


def open_archive(path: str) -> Archive:
    """The shard at ``path`` (a local path or a storage URL), ready to walk."""
    return RemoteArchive(path) if is_url(path) else Archive(path)


def _sample_members(tar: Archive) -> Iterator[tuple[Entry, str, str]]:
    """``(entry, key, ext)`` for the entries webdataset groups into samples: keyed regular files."""
    for e in tar.entries():
        if e.kind == "file":
            split = member_key(e.name)
            if split is not None:
                yield e, split[0], split[1]


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # surrogate escapes: the header's bytes were not UTF-8
        return False
    return True


def scan(path: str) -> Layout:
    """Every sample and every entry that carries data, in one pass over the headers.

    A regular file with a sample key makes (or joins) a sample; an entry of another type that carries
    data (tar extractors write unknown types as regular files) joins the sample its name keys to; an
    extension-less file named exactly like a sample joins it; any other data (``README``,
    ``__index__``, ``.hidden.jpg``) belongs to no sample and is listed with ``sample == -1`` so it is
    still checked. Refuses a shard with a name that occurs twice among its non-directory entries (the
    later entry would silently replace the earlier one on extraction) or that is not valid UTF-8.
    """
    names: set[str] = set()
    duplicates: list[int] = []  # header offsets, for the error's first one
    not_utf8: list[int] = []
    index: dict[str, int] = {}
    data: list[tuple[tuple[str, str] | None, str, int, int]] = []
    with open_archive(path) as tar:
        for e in tar.entries():
            if e.kind in ("dir", "global"):
                continue
            if not _utf8(e.name):
                not_utf8.append(e.header)
                continue
            name = normalize_name(e.name)
            if name in names:
                duplicates.append(e.header)
            names.add(name)
            split = split_key(name)
            if e.kind == "file" and split is not None:
                index.setdefault(split[0], len(index))
            if e.kind == "file" or (e.kind == "other" and e.size > 0):
                data.append((split, name, e.offset_data, e.size))
    if not_utf8:
        raise ExpungeError(
            f"{len(not_utf8)} member name(s) are not valid UTF-8 (refusing the shard)",
            path,
            f"offset {not_utf8[0]}",
        )
    if duplicates:
        raise ExpungeError(
            f"{len(duplicates)} member name(s) occur more than once (on extraction the later entry"
            " replaces the earlier one; refusing the shard)",
            path,
            f"offset {duplicates[0]}",
        )
    members: list[DataMember] = []
    for split, name, offset, size in data:
        if split is not None and split[0] in index:
            members.append(DataMember(index[split[0]], split[0], split[1], offset, size))
        elif split is None and name in index:  # "KEY" beside "KEY.jpg"
            members.append(DataMember(index[name], name, "", offset, size))
        else:
            base = name.rpartition("/")[2]
            ext = split[1] if split else base if base.lower() in COMPANION_NAMES else ""
            members.append(DataMember(-1, None, ext, offset, size))
    return Layout(list(index), members)


def iter_members(path: str) -> Iterator[Member]:
    """The sample members of a shard in tar order, in one streaming pass over its headers.

    Only regular files that webdataset would group into samples are yielded; directories, links,
    PAX global headers and ``__meta__`` files are not sample members. No member data is read.
    """
    with open_archive(path) as tar:
        for e, key, ext in _sample_members(tar):
            yield Member(e.name, key, ext, e.offset_data, e.size)


def iter_data(path: str, layout: Layout | None = None) -> Iterator[tuple[int, str | None, str, bytes]]:
    """``(sample index, key, ext, bytes)`` of every data-carrying entry of :func:`scan`, in tar order.

    Memory is bounded by one member.
    """
    layout = layout if layout is not None else scan(path)
    with open_archive(path) as tar:
        for m in layout.members:
            yield m.sample, m.key, m.ext, tar.read(m.offset_data, m.size)


def iter_images(path: str) -> Iterator[tuple[int, str, bytes]]:
    """``(sample index, key, bytes)`` of every member of every sample, in tar order, whatever its extension.

    Every member, not only the first image: a second image (another extension, ``.jpg.bak``, none)
    would otherwise be published unchecked. The index is the sample's position in :func:`sample_keys`.
    """
    for sample, key, _ext, data in iter_data(path):
        if key is not None:
            yield sample, key, data


def sample_keys(path: str) -> list[str]:
    """Normalised sample keys in tar order (first appearance), samples without an image included."""
    return scan(path).keys
