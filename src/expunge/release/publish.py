"""Making a release staged in a local folder visible under a remote prefix, manifest last.

Object stores have no rename, so a release cannot appear at once. What a reader relies on instead is
the order: every file is written (each object visible through its one final PUT, or copied server-side
from where it already is), and only then the manifest and its signature, the completion marker. A
reader that sees the new manifest therefore sees every file it lists. Objects the new release does not
contain (shards of an earlier release) are deleted after that, so a reader of the old manifest keeps
its files until the new one is in place.

A file is not sent again when the remote object is the one this publisher wrote last time: the state
file (``published.json`` in a folder the caller names) records each path's size, SHA-256 and ETag, and
a file is skipped only when the staged bytes have that SHA-256 and the object's listing still shows
that size and ETag. A remote object that this publisher did not write is never trusted to hold
anything; it is overwritten.

A run stopped at any point can be run again: uploads are idempotent, the state is saved as it goes,
and the second run ends with the same objects.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from expunge import atomic
from expunge.errors import ExpungeError
from expunge.release import manifest as mf
from expunge.storage import fs
from expunge.storage.errors import BUCKET_NOT_FOUND, classify, storage_errors
from expunge.storage.location import Location, parse

STATE_FILE = "published.json"
STATE_FORMAT = "expunge-published/1"
_SAVE_EVERY = 64  # files between two saves of the state (a stopped run loses at most these uploads)


@dataclass
class PublishReport:
    """What a publish did, path by path (relative POSIX paths, sorted)."""

    uploaded: list[str] = field(default_factory=list)
    copied: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "uploaded": len(self.uploaded),
            "copied": len(self.copied),
            "skipped": len(self.skipped),
            "deleted": len(self.deleted),
        }


def _staged_files(staged: Path) -> dict[str, Path]:
    """Every regular file of the staged release. A link or special file is refused: what is published
    must be exactly what ``verify`` will accept, and a link's target is not part of the folder."""
    if not staged.is_dir():
        raise ExpungeError("not a folder", staged)
    found: dict[str, Path] = {}
    with storage_errors(str(staged)):
        for top, dirs, names in os.walk(staged, followlinks=False):
            for name in sorted(dirs + names):
                path = Path(top, name)
                mode = os.lstat(path).st_mode
                if stat.S_ISDIR(mode):
                    continue
                if not stat.S_ISREG(mode):
                    raise ExpungeError("not a regular file (a release holds regular files only)", path)
                found[path.relative_to(staged).as_posix()] = path
    return found


def _digest(path: Path) -> tuple[int, str]:
    with storage_errors(str(path)):
        return mf.file_digest(path)


def _tag(info: Mapping[str, Any]) -> str | None:
    """The object's version tag from a listing or HEAD: S3's ETag (other stores: their own tag)."""
    for key in ("ETag", "etag", "md5Hash", "content_md5", "version_id"):
        value = info.get(key)
        if value:
            return str(value).strip('"')
    return None


def _listing(out: Location) -> dict[str, tuple[int, str | None]]:
    """Every object under ``out``, hidden ones too: relative path → (size, tag), from one listing."""
    prefix = out.path.rstrip("/") + "/"
    found: dict[str, tuple[int, str | None]] = {}
    with storage_errors(out):
        if out.is_local:
            for loc in fs.walk_all(out) if os.path.isdir(out.path) else []:
                st = os.lstat(loc.path)
                rel = os.path.relpath(loc.path, out.path).replace(os.sep, "/")
                found[rel] = (st.st_size, f"{st.st_mtime_ns}:{st.st_ino}")
            return found
        filesystem = fs.filesystem(out)
        try:
            entries = filesystem.find(out.url, withdirs=False, detail=True)
        except FileNotFoundError as exc:
            if classify(exc) == BUCKET_NOT_FOUND:
                raise ExpungeError(BUCKET_NOT_FOUND, out.redacted()) from None
            return found
        for key, info in entries.items():
            # Keys are kept as they are: a folder marker ("sub/") or a key with an empty segment is
            # deleted by its own name, never by a cleaned-up name that would miss it.
            key = str(key).lstrip("/")
            if key.startswith(prefix):
                found[key[len(prefix) :]] = (int(info.get("size") or 0), _tag(info))
    return found


def _head(loc: Location) -> tuple[int, str | None] | None:
    """Size and tag of one object (None if absent)."""
    with storage_errors(loc):
        if loc.is_local:
            try:
                st = os.lstat(loc.path)
            except FileNotFoundError:
                return None
            return st.st_size, f"{st.st_mtime_ns}:{st.st_ino}"
        try:
            info = fs.filesystem(loc).info(loc.url)
        except FileNotFoundError:
            return None
        return int(info.get("size") or 0), _tag(info)


class _State:
    """``published.json``: what this publisher last wrote under ``out``, path → record."""

    def __init__(self, folder: Path | None, out: Location) -> None:
        self.path = folder / STATE_FILE if folder is not None else None
        self.out = out.url
        self.records: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.unsaved = 0
        if self.path is not None and self.path.is_file():
            try:
                data = json.loads(self.path.read_bytes())
            except (OSError, ValueError):
                data = None  # an unreadable state only costs uploads: nothing is trusted from it
            if isinstance(data, dict) and data.get("format") == STATE_FORMAT and data.get("out") == self.out:
                files = data.get("files")
                if isinstance(files, dict):
                    self.records = {str(k): v for k, v in files.items() if isinstance(v, dict)}

    def get(self, rel: str) -> dict[str, Any] | None:
        with self.lock:
            return self.records.get(rel)

    def put(self, rel: str, record: dict[str, Any] | None) -> None:
        with self.lock:
            if record is None:
                self.records.pop(rel, None)
            else:
                self.records[rel] = record
            self.unsaved += 1
            due = self.unsaved >= _SAVE_EVERY
        if due:
            self.save()

    def save(self) -> None:
        if self.path is None:
            return
        with self.lock:
            data = {"format": STATE_FORMAT, "out": self.out, "files": dict(sorted(self.records.items()))}
            self.unsaved = 0
            atomic.write_bytes(self.path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())


@dataclass
class _Job:
    rel: str
    local: Path | None = None  # upload this file
    source: Location | None = None  # or copy this object
    source_head: tuple[int, str | None] | None = None  # the source's size and tag, read before any write


def _same(record: dict[str, Any] | None, remote: tuple[int, str | None] | None) -> bool:
    """Whether the object is still the one recorded: same size and the same (known) tag."""
    if record is None or remote is None or remote[1] is None:
        return False
    return bool(record.get("size") == remote[0] and record.get("etag") == remote[1])


def _md5(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with storage_errors(str(path)), open(path, "rb") as fh:
        while block := fh.read(8 << 20):
            h.update(block)
    return h.hexdigest()


def _holds(head: tuple[int, str | None] | None, size: int, md5: str) -> bool:
    """Whether an object holds the staged bytes, as far as its listing shows: same size and, when its
    tag is a plain MD5 (S3's ETag of a one-part object, which a server-side copy makes), that MD5.
    A tag of another form proves nothing, so it does not count as a match."""
    if head is None or head[0] != size or head[1] is None:
        return False
    tag = head[1].lower()
    return len(tag) == 32 and all(c in "0123456789abcdef" for c in tag) and tag == md5


def _run(job: _Job, out: Location, state: _State, remote: dict[str, tuple[int, str | None]]) -> str:
    """Upload, copy or skip one file; returns which it did."""
    dst = out.join(job.rel)
    record = state.get(job.rel)
    if job.source is not None:
        source_head = job.source_head
        staged = _digest(job.local) if job.local is not None else None
        if (
            record is not None
            and record.get("source") == job.source.url
            and _same(record, remote.get(job.rel))
            and (source_head is None or record.get("source_etag") == source_head[1])
            and (staged is None or record.get("sha256") == staged[1])
        ):
            return "skipped"
        if source_head is None:
            raise ExpungeError("copy source not found", job.source.redacted())
        if job.local is not None and staged is not None:
            # The manifest hashes the staged bytes. The source may have been replaced since they were
            # read (same key, other bytes): copy it only when it still holds them, and check the copy.
            md5 = _md5(job.local)
            if not _holds(source_head, staged[0], md5):
                return _upload(job.rel, job.local, dst, staged, state)
            fs.copy(job.source, dst)
            written = _head(dst)
            if not _holds(written, staged[0], md5):
                return _upload(job.rel, job.local, dst, staged, state)
        else:
            fs.copy(job.source, dst)
            written = _head(dst)
        state.put(
            job.rel,
            None
            if written is None or source_head[1] is None
            else {
                "size": written[0],
                "etag": written[1],
                "source": job.source.url,
                "source_etag": source_head[1],
                **({"sha256": staged[1]} if staged is not None else {}),
            },
        )
        return "copied"
    assert job.local is not None
    size, sha = _digest(job.local)
    if record is not None and record.get("sha256") == sha and _same(record, remote.get(job.rel)):
        return "skipped"
    return _upload(job.rel, job.local, dst, (size, sha), state)


def _upload(rel: str, local: Path, dst: Location, digest: tuple[int, str], state: _State) -> str:
    size, sha = digest
    state.put(rel, None)  # from here the object may be half replaced: trust nothing about it
    fs.put_file(local, dst)
    written = _head(dst)
    if written is not None and written[0] == size:
        state.put(rel, {"size": size, "sha256": sha, "etag": written[1]})
    return "uploaded"


def _run_all(
    jobs: list[_Job],
    out: Location,
    state: _State,
    remote: dict[str, tuple[int, str | None]],
    report: PublishReport,
    workers: int,
) -> None:
    if not jobs:
        return
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(jobs)))) as pool:
        futures = {pool.submit(_run, job, out, state, remote): job.rel for job in jobs}
        _done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for f in pending:
            f.cancel()
        wait(pending)
    for f, rel in futures.items():
        if f.cancelled():
            continue
        exc = f.exception()
        if exc is not None:
            raise exc
        getattr(report, f.result()).append(rel)


def _check_copies(copies: Mapping[str, Location], out: Location, targets: set[str]) -> None:
    """Refuse a copy whose source is another file of the new release under ``out``: that object may
    be replaced during this publish (or by the run before it), and a copy of it would then hold the
    wrong bytes with nothing to notice."""
    prefix = out.path.rstrip("/") + "/"
    for rel, src in copies.items():
        if src.protocol == out.protocol and src.path.startswith(prefix):
            inner = src.path[len(prefix) :]
            if inner != rel and inner in targets:
                raise ExpungeError(
                    "a copy source may not be another file of the release being published",
                    src.redacted(),
                )


def publish(
    staged: Path,
    out: Location | str,
    *,
    copies: Mapping[str, Location | str] | None = None,
    last: Sequence[str] = (mf.MANIFEST, mf.SIGNATURE),
    state_dir: Path | None = None,
    workers: int = 8,
    refuse_foreign: bool = False,
) -> PublishReport:
    """Make the release staged in ``staged`` (plus the objects in ``copies``: relative path → source,
    copied server-side) the content of the prefix ``out``: files in ``last`` written after all others,
    then every other object under ``out`` deleted.

    ``state_dir`` keeps ``published.json`` between runs, so a file whose object is unchanged since
    this publisher wrote it is not sent again; without it every file is sent.

    ``refuse_foreign``: an object under ``out`` that the new release does not hold, that this
    publisher never wrote and that the manifest there does not list is someone else's: refuse before
    writing anything, and never delete it (what ``expunge clean`` uses; a local release folder is
    swept the same way). Without it every such object is deleted.
    """
    out = parse(out)
    sources = {rel: parse(src) for rel, src in (copies or {}).items()}
    files = _staged_files(staged)
    targets = set(files) | set(sources)
    for rel in targets:
        out.join(rel)  # refuses '..', absolute and empty names before anything is written
    _check_copies(sources, out, targets)
    state = _State(state_dir, out)
    report = PublishReport()
    remote = _listing(out)
    ours = _ours(out, state, remote) if refuse_foreign else None
    strangers = sorted(set(remote) - targets - ours) if ours is not None else []
    if strangers:
        # What the release does not hold is deleted after the manifest; an object that no earlier
        # release listed and this publisher never wrote is someone else's: refuse, delete nothing.
        raise ExpungeError(
            "this object is not part of the release being written: move it away or choose another --out",
            Location(out.protocol, out.path + "/" + strangers[0]).redacted(),
        )
    if ours is not None:
        # Remember which stale objects are ours before the manifest replaces the one that listed
        # them: a rerun after a stop between the manifest and the deletes still deletes them.
        for rel in sorted((set(remote) - targets) & ours):
            if state.get(rel) is None:
                state.put(rel, {"stale": True})
        state.save()
    jobs = [
        _Job(rel, local=files.get(rel), source=sources[rel])
        if rel in sources
        else _Job(rel, local=files[rel])
        for rel in targets
    ]
    _read_sources([j for j in jobs if j.source is not None], state, remote, workers)
    order = [name for name in last if name in targets]
    try:
        _run_all(
            sorted((j for j in jobs if j.rel not in order), key=lambda j: j.rel),
            out,
            state,
            remote,
            report,
            workers,
        )
        for name in order:  # the completion markers, one at a time, in the order given
            _run_all([j for j in jobs if j.rel == name], out, state, remote, report, 1)
        stale = set(_listing(out)) - targets
        if ours is not None:
            stale &= ours  # an object that appeared during this publish is not ours to delete
        for rel in sorted(stale):
            fs.delete(out.join(rel) if _joinable(rel) else Location(out.protocol, out.path + "/" + rel))
            state.put(rel, None)
            report.deleted.append(rel)
        if out.is_local:
            _prune_folders(Path(out.path), report.deleted)
    finally:
        state.save()
    for paths in (report.uploaded, report.copied, report.skipped, report.deleted):
        paths.sort()
    return report


def _ours(out: Location, state: _State, remote: Mapping[str, tuple[int, str | None]]) -> set[str]:
    """The objects under ``out`` that an expunge release put there: those this publisher recorded,
    and those the release now under ``out`` lists in its manifest (with its signature). Empty folder
    markers (``sub/``, made by consoles) hold nothing and count too."""
    found = set(state.records)
    found.update(rel for rel, (size, _) in remote.items() if size == 0 and (not rel or rel.endswith("/")))
    if mf.MANIFEST in remote:
        found.add(mf.SIGNATURE)
        try:
            data = json.loads(fs.read_bytes(out.join(mf.MANIFEST)))
        except ValueError:
            data = None  # unreadable: it vouches for nothing but itself
        found.add(mf.MANIFEST)
        if isinstance(data, dict):
            for key, field_name in (("files", "path"), ("shards", "name")):
                entries = data.get(key)
                for entry in entries if isinstance(entries, list) else []:
                    if isinstance(entry, dict) and isinstance(entry.get(field_name), str):
                        found.add(entry[field_name])
    return found


def _read_sources(
    jobs: list[_Job], state: _State, remote: dict[str, tuple[int, str | None]], workers: int
) -> None:
    """HEAD every copy source before anything is written: a missing source stops the publish while
    the prefix still holds the previous release untouched. A copy the state already vouches for may
    have lost its source since (the source was a stale object deleted by the run that copied it)."""
    if not jobs:
        return
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(jobs)))) as pool:
        heads = list(pool.map(lambda j: _head(j.source) if j.source is not None else None, jobs))
    for job, head in zip(jobs, heads, strict=True):
        job.source_head = head
        record = state.get(job.rel)
        vouched = (
            record is not None
            and job.source is not None
            and record.get("source") == job.source.url
            and _same(record, remote.get(job.rel))
        )
        if head is None and not vouched:
            assert job.source is not None
            raise ExpungeError("copy source not found", job.source.redacted())


def _prune_folders(out: Path, deleted: list[str]) -> None:
    """Remove the local folders that deleting stale files left empty (``verify`` rejects an empty
    folder the manifest does not need)."""
    folders = {parent for rel in deleted for parent in Path(rel).parents if str(parent) != "."}
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            (out / folder).rmdir()


def _joinable(rel: str) -> bool:
    return all(seg not in ("", ".", "..") for seg in rel.split("/"))
