"""Checking a release against its manifest: signature, roots, every file's hash and size, nothing
unlisted, every shard's row count, its place in the release sequence and (given banks) no row that
matches them.

The whole folder is walked, hidden and ``_`` names included: a file the manifest does not list is a
problem, whatever its name, and so is a symbolic link or any other non-regular entry. Every problem is
reported, each as one line naming the path; nothing here prints row content.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Any

from expunge.formats.registry import release_format
from expunge.index.build import content_sha256
from expunge.release import manifest as mf
from expunge.release import sign
from expunge.storage.location import Location, parse


def shard_files(release: Path, name: str) -> tuple[list[str], int | None]:
    """The files a shard consists of in the release, and its row count where it can be read."""
    return release_format(release, name).release_files(release, name)


def _safe_path(rel: object) -> bool:
    """A listed path must name a file inside the release: relative, normalised, no ``..``."""
    if not isinstance(rel, str) or not rel or "\\" in rel or "\x00" in rel:
        return False
    p = PurePosixPath(rel)
    return not p.is_absolute() and ".." not in p.parts and str(p) == rel and "." not in p.parts


def listed_files(man: dict[str, Any], where: object) -> tuple[dict[str, dict[str, Any]] | None, list[str]]:
    """The files a manifest vouches for (path -> entry), and the problems of the list itself: an older
    format (None: nothing can be checked file by file), a root that does not match, unsafe paths.
    Shared by the local and the remote check, so both read a manifest the same way."""
    files = man.get("files")
    if man.get("format") != mf.FORMAT or not isinstance(files, list):
        return None, [
            f"{where}: the manifest lists no files (older format), so it cannot vouch for every file"
        ]
    problems: list[str] = []
    if mf.merkle_root([(str(f.get("path")), str(f.get("sha256"))) for f in files]) != man.get("files_root"):
        problems.append(f"{where}: files root does not match the files it lists")
    listed: dict[str, dict[str, Any]] = {}
    for f in files:
        rel = f.get("path") if isinstance(f, dict) else None
        if not _safe_path(rel) or mf.is_own(str(rel)):
            problems.append(f"{where}: lists a path that is not a file of the release")
            continue
        assert isinstance(rel, str)
        listed[rel] = f
    return listed, problems


def _check_files(release: Path, man: dict[str, Any], where: Path) -> list[str]:
    found, problems = listed_files(man, where)
    if found is None:
        return problems
    listed = found
    present, folders, odd = mf.walk(release)
    for rel in odd:
        problems.append(f"{release / rel}: not a regular file or folder (symlinks are not allowed)")
    present_set = set(present)
    for rel in present:
        if mf.is_own(rel) or rel in listed:
            continue
        problems.append(f"{release / rel}: not in the manifest")
    needed = {str(parent) for rel in listed for parent in PurePosixPath(rel).parents if str(parent) != "."}
    for rel in folders:
        if rel not in needed and not any(p.startswith(rel + "/") for p in present_set):
            problems.append(f"{release / rel}: folder not in the manifest")
    for rel, f in sorted(listed.items()):
        if rel not in present_set:
            problems.append(f"{release / rel}: missing")
            continue
        try:
            size, sha = mf.file_digest(release / rel)
        except OSError as exc:
            problems.append(f"{release / rel}: unreadable ({exc.strerror or type(exc).__name__})")
            continue
        if sha != f.get("sha256") or size != f.get("size"):
            problems.append(f"{release / rel}: SHA-256 differs from the manifest")
    return problems


def _check_sequence(
    man: dict[str, Any], where: Path | str, min_sequence: int | None, previous: Path | None
) -> list[str]:
    problems: list[str] = []
    seq = mf.sequence_of(man)
    if min_sequence is not None and seq < min_sequence:
        problems.append(f"{where}: release {seq} is older than the minimum {min_sequence} (a rollback?)")
    if previous is not None:
        old = mf.load(previous)
        old_seq = mf.sequence_of(old)
        if seq <= old_seq:
            problems.append(
                f"{where}: release {seq} is not newer than the previous release {old_seq} (a rollback?)"
            )
        elif seq == old_seq + 1:
            prev = man.get("release", {}).get("previous") or {}
            if prev.get("files_root") != old.get("files_root") or prev.get("merkle_root") != old.get(
                "merkle_root"
            ):
                problems.append(f"{where}: release {seq} does not follow the previous release given")
    return problems


def verify_release(
    release: Path | Location | str,
    manifest_path: Path | Location | str | None = None,
    pubkey: Path | None = None,
    *,
    min_sequence: int | None = None,
    previous: Path | None = None,
) -> list[str]:
    """Every mismatch found, as one line each; an empty list means the release checks out.

    A release (or manifest) given by URL is checked where it is, without downloading it
    (``verify_remote``). Re-matching the rows against lists is ``api.verify``'s part: this layer
    never calls up."""
    release_loc = parse(release)
    manifest_loc = parse(manifest_path) if manifest_path is not None else None
    if not release_loc.is_local or (manifest_loc is not None and not manifest_loc.is_local):
        from expunge.release.verify_remote import verify_remote

        return verify_remote(release_loc, manifest_loc, pubkey, min_sequence=min_sequence, previous=previous)
    # Local paths keep the spelling they were given: problems name them as the user wrote them.
    folder = _as_given(release, release_loc)
    man_path = folder / mf.MANIFEST if manifest_loc is None else _as_given(manifest_path, manifest_loc)
    return _verify_local(folder, man_path, pubkey, min_sequence=min_sequence, previous=previous)


def _as_given(spec: Path | Location | str | None, loc: Location) -> Path:
    """A local path spelled as the user gave it (``file://`` URLs and Locations by their path)."""
    if isinstance(spec, Path) or (isinstance(spec, str) and "://" not in spec):
        return Path(spec)
    return Path(loc.path)


def _verify_local(
    release: Path,
    manifest_path: Path,
    pubkey: Path | None,
    *,
    min_sequence: int | None,
    previous: Path | None,
) -> list[str]:
    problems: list[str] = []
    man = mf.load(manifest_path)
    data = manifest_path.read_bytes()
    if man.get("format") == mf.FORMAT and not mf.is_canonical(data, man):
        problems.append(f"{manifest_path}: edited or corrupt (its bytes are not what expunge wrote)")
    if pubkey is not None:
        sig = manifest_path.with_name(manifest_path.name + ".minisig")
        if not sig.is_file():
            problems.append(f"{sig}: signature missing")
        else:
            try:
                sign.verify(data, sig, pubkey)
            except Exception as exc:  # an ExpungeError carries the precise reason
                problems.append(str(exc))
    problems += _check_sequence(man, manifest_path, min_sequence, previous)
    shards = man.get("shards", [])
    root = mf.merkle_root([(s["name"], s["sha256"]) for s in shards])
    if root != man.get("merkle_root"):
        problems.append(f"{manifest_path}: Merkle root does not match the shards it lists")
    problems += _check_files(release, man, manifest_path)
    for s in shards:
        if not _safe_path(s.get("name")):
            problems.append(f"{manifest_path}: lists a shard that is not a path inside the release")
            continue
        files, rows = shard_files(release, s["name"])
        if not files or not all(os.path.isfile(f) and not os.path.islink(f) for f in files):
            problems.append(f"{release / s['name']}: shard missing")
            continue
        if content_sha256(files) != s["sha256"]:
            problems.append(f"{release / s['name']}: SHA-256 differs from the manifest")
        if rows == -1:
            problems.append(f"{release / s['name']}: not a readable parquet file")
        elif rows is not None and rows != s["rows"]:
            problems.append(f"{release / s['name']}: {rows} rows, the manifest says {s['rows']}")
    return problems
