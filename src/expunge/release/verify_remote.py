"""``verify`` for a release on an object store (``s3://bucket/release/``), with the local checks' meaning.

An object store has no folders, links or special files, so what is left to check is the listing: every
object under the prefix (hidden and ``_`` names included) must be listed by the manifest, and every
listed file must be there with its SHA-256 and size, computed by streaming the object. Shard row counts
come from parquet footers through ranged reads, so only the footer of each shard is fetched.

Which objects make up a shard is the dataset formats' knowledge, and they answer it about a folder.
So the listing is mirrored as empty files in a scratch folder and the format is asked there: the same
code decides for a local and a remote release, and no byte of data is copied to answer it. Only a
format whose row count needs the data itself (text shards) has that shard's objects fetched into the
scratch folder.

Problems are one line each naming the object's redacted URL; a failure of the store itself (a stopped
server, a denied credential) stops the check with one :class:`ExpungeError`, since a check that could
not read an object must never read as passing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from expunge.errors import ExpungeError
from expunge.release import manifest as mf
from expunge.release.verify import listed_files
from expunge.storage import fs
from expunge.storage.errors import storage_errors
from expunge.storage.location import Location, parse

STREAMS = 8  # objects hashed at once


def load_manifest(loc: Location) -> tuple[dict[str, Any], bytes]:
    """The manifest at ``loc`` and its bytes; refused with ``mf.load``'s messages, naming the URL."""
    data = fs.read_bytes(loc)
    try:
        man = json.loads(data)
    except ValueError as exc:
        raise ExpungeError(f"unreadable manifest ({type(exc).__name__})", loc.redacted()) from None
    if not isinstance(man, dict) or man.get("format") not in mf.FORMATS:
        raise ExpungeError(f"not an {mf.FORMAT} manifest", loc.redacted())
    return man, data


def _relative(release: Location, found: Location) -> str | None:
    """``found``'s path below ``release``, or None for the prefix itself."""
    prefix = release.path.rstrip("/") + "/"
    return found.path[len(prefix) :] if found.path.startswith(prefix) else None


def _digest(loc: Location) -> tuple[int, str]:
    h = hashlib.sha256()
    n = 0
    for block in fs.iter_chunks(loc):
        h.update(block)
        n += len(block)
    return n, h.hexdigest()


def _footer_rows(loc: Location) -> int:
    """Rows from the parquet footer (ranged reads of the footer only); -1 when it is not parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with storage_errors(loc), fs.open_input(loc) as fh:
        try:
            return int(pq.ParquetFile(fh).metadata.num_rows)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
            return -1


def _content_sha256(digests: list[str]) -> str:
    """``index.build.content_sha256`` over digests already computed: one file is its own SHA-256,
    several are a hash of their hashes."""
    if len(digests) == 1:
        return digests[0]
    return hashlib.sha256(":".join(digests).encode()).hexdigest()


class _Release:
    """The remote release's listing, its digests (each object streamed at most once) and a mirror of
    its names as empty files, for the formats to look at."""

    def __init__(self, root: Location, scratch: Path) -> None:
        self.root = root
        self.scratch = scratch
        self.objects: dict[str, Location] = {}
        self.odd: list[Location] = []
        for found in fs.walk_all(root):
            rel = _relative(root, found)
            if rel is None or not _safe(rel):
                self.odd.append(found)
                continue
            self.objects[rel] = found
        self._digests: dict[str, tuple[int, str]] = {}
        self.mirror = scratch / "listing"
        self.mirror.mkdir()
        for rel in self.objects:
            with contextlib.suppress(OSError):  # a key that is also a prefix ("a" and "a/b")
                (self.mirror / rel).parent.mkdir(parents=True, exist_ok=True)
                (self.mirror / rel).touch()

    def url(self, rel: str) -> str:
        found = self.objects.get(rel)
        return (found or self.root.join(rel)).redacted()

    def digest(self, rel: str) -> tuple[int, str]:
        if rel not in self._digests:
            self._digests[rel] = _digest(self.objects[rel])
        return self._digests[rel]

    def digest_all(self, rels: list[str], workers: int | None = None) -> None:
        """Stream several objects at once: each read waits on the network far more than on hashing."""
        todo = [r for r in rels if r not in self._digests]
        if not todo:
            return
        workers = STREAMS if workers is None else workers
        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(todo)))) as pool:
            for r, d in zip(todo, pool.map(lambda r: _digest(self.objects[r]), todo), strict=True):
                self._digests[r] = d

    def rel_of(self, local: str) -> str | None:
        rel = os.path.relpath(local, self.mirror).replace(os.sep, "/")
        return rel if rel in self.objects else None

    def fetch(self, rel: str) -> None:
        """Put the object's bytes in its mirror file (for a format that counts rows from the data)."""
        fs.copy(self.objects[rel], Path(self.mirror / rel))


def _safe(rel: str) -> bool:
    from expunge.release.verify import _safe_path

    return _safe_path(rel)


def check_files(rel: _Release, man: dict[str, Any], where: str) -> list[str]:
    """Every listed file present with its SHA-256 and size; nothing else under the prefix."""
    found, problems = listed_files(man, where)
    if found is None:
        return problems
    listed = found
    for odd in rel.odd:
        problems.append(f"{odd.redacted()}: not in the manifest")
    for path in rel.objects:
        if not mf.is_own(path) and path not in listed:
            problems.append(f"{rel.url(path)}: not in the manifest")
    rel.digest_all(sorted(p for p in listed if p in rel.objects))
    for path, f in sorted(listed.items()):
        if path not in rel.objects:
            problems.append(f"{rel.url(path)}: missing")
            continue
        size, sha = rel.digest(path)
        if sha != f.get("sha256") or size != f.get("size"):
            problems.append(f"{rel.url(path)}: SHA-256 differs from the manifest")
    return problems


def _shard_rows(rel: _Release, fmt_name: str, name: str, files: list[str], rows: int | None) -> int | None:
    """The shard's row count, from footers where the format takes it from a parquet file."""
    from expunge.formats.registry import release_format

    if fmt_name == "parquet":
        return _footer_rows(rel.objects[files[0]])
    if fmt_name == "webdataset":
        return _footer_rows(rel.objects[files[1]]) if len(files) > 1 else None
    if fmt_name == "imagefolder":
        metas = sorted(p for p in (rel.mirror / name).glob("*.parquet") if p.is_file())
        meta = rel.rel_of(str(metas[0])) if len(metas) == 1 else None
        return _footer_rows(rel.objects[meta]) if meta else rows  # rows: image names only
    for path in files:  # a format that counts rows from the data: fetch this shard's objects
        rel.fetch(path)
    return release_format(rel.mirror, name).release_files(rel.mirror, name)[1]


def check_shards(rel: _Release, shards: list[Any], where: str) -> list[str]:
    from expunge.formats.registry import release_format

    problems: list[str] = []
    for s in shards:
        name = s.get("name") if isinstance(s, dict) else None
        if not isinstance(name, str) or not _safe(name):
            problems.append(f"{where}: lists a shard that is not a path inside the release")
            continue
        shown = (rel.root if name == "." else rel.root.join(name)).redacted()
        try:
            fmt = release_format(rel.mirror, name)
            found, rows = fmt.release_files(rel.mirror, name)
        except ExpungeError as exc:
            problems.append(f"{shown}: {exc.message}")
            continue
        files = [rel.rel_of(f) for f in found]
        if not files or any(f is None for f in files):
            problems.append(f"{shown}: shard missing")
            continue
        paths = [f for f in files if f is not None]
        if _content_sha256([rel.digest(f)[1] for f in paths]) != s.get("sha256"):
            problems.append(f"{shown}: SHA-256 differs from the manifest")
        rows = _shard_rows(rel, fmt.name, name, paths, rows)
        if rows == -1:
            problems.append(f"{shown}: not a readable parquet file")
        elif rows is not None and rows != s.get("rows"):
            problems.append(f"{shown}: {rows} rows, the manifest says {s.get('rows')}")
    return problems


def _signature(data: bytes, manifest: Location, pubkey: Path) -> list[str]:
    from expunge.release import sign

    sig = manifest.parent.join(manifest.name + ".minisig")
    if not fs.exists(sig):
        return [f"{sig.redacted()}: signature missing"]
    blob = fs.read_bytes(sig)
    with tempfile.TemporaryDirectory(prefix="expunge-verify-") as scratch:
        local = Path(scratch) / sig.name
        local.write_bytes(blob)
        try:
            sign.verify(data, local, pubkey)
        except ExpungeError as exc:
            shown = sig.redacted() if exc.path == str(local) else exc.path
            return [ExpungeError(exc.message, shown, exc.where).one_line()]
    return []


def verify_remote(
    release: Location,
    manifest: Location | None = None,
    pubkey: Path | None = None,
    *,
    min_sequence: int | None = None,
    previous: Path | None = None,
) -> list[str]:
    """``verify_release`` for a release under a URL prefix (or a manifest given by URL)."""
    from expunge.release.verify import _check_sequence

    manifest = parse(manifest) if manifest is not None else release.join(mf.MANIFEST)
    where = manifest.redacted()
    man, data = load_manifest(manifest)
    problems: list[str] = []
    if man.get("format") == mf.FORMAT and not mf.is_canonical(data, man):
        problems.append(f"{where}: edited or corrupt (its bytes are not what expunge wrote)")
    if pubkey is not None:
        problems += _signature(data, manifest, pubkey)
    problems += _check_sequence(man, where, min_sequence, previous)
    shards = man.get("shards", [])
    pairs = [(s.get("name"), s.get("sha256")) for s in shards if isinstance(s, dict)]
    if len(pairs) != len(shards) or not all(isinstance(n, str) and isinstance(h, str) for n, h in pairs):
        problems.append(f"{where}: lists a shard that is not a path inside the release")
    else:
        try:
            root = mf.merkle_root([(str(n), str(h)) for n, h in pairs])
        except ValueError:  # a shard hash that is not hex
            root = None
        if root != man.get("merkle_root"):
            problems.append(f"{where}: Merkle root does not match the shards it lists")
    with tempfile.TemporaryDirectory(prefix="expunge-verify-") as scratch:
        rel = _Release(release, Path(scratch))
        problems += check_files(rel, man, where)
        problems += check_shards(rel, shards if isinstance(shards, list) else [], where)
    return problems
