"""The release manifest: what went in, what came out, and Merkle roots that bind the output.

A holder of the old release re-downloads only the shards whose SHA-256 changed; anyone can recompute
every shard's hash and the root from the files; a signature over the manifest binds it to its author.
The manifest names banks by provenance only (name, source, version, count, file hash), never values.

Beyond the shards, ``files`` lists every file of the release (path, SHA-256, size) except the manifest
and its signature, bound by ``files_root``: ``verify`` rejects any file not listed, so nothing can ride
along unchecked. The human-facing files (report, Croissant, card) are written first and listed like any
other; they quote the shard root, never the manifest's own hash. ``release`` carries a sequence number
and the previous release's roots, so an older (even validly signed) release cannot pose as the current
one: ``verify --min-sequence N`` or ``--previous OLD/MANIFEST.json`` rejects it.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

from expunge import __version__

MANIFEST = "MANIFEST.json"
SIGNATURE = MANIFEST + ".minisig"
FORMAT = "expunge-manifest/2"
SELF_DIGEST = "manifest_sha256"  # the SHA-256 of the manifest's other fields
FORMATS = ("expunge-manifest/1", FORMAT)  # /1 (no file list) still loads for diff-release and apply


def _leaf(name: str, sha256_hex: str) -> bytes:
    return hashlib.sha256(b"\x00" + name.encode("utf-8") + b"\x00" + bytes.fromhex(sha256_hex)).digest()


def merkle_root(shards: list[tuple[str, str]]) -> str:
    """RFC 6962-style Merkle tree hash over (shard name, sha256) leaves in the given order.

    Leaves and nodes have distinct prefixes (0x00, 0x01), so no leaf can pose as a node; an empty
    release has the hash of the empty string. Built bottom-up, pairing neighbours and carrying an odd
    last node up a level, which gives RFC 6962's tree (left subtrees of power-of-two size) without its
    recursive list slicing: linear in shards.
    """
    level = [_leaf(n, h) for n, h in shards]
    if not level:
        return hashlib.sha256(b"").hexdigest()
    while len(level) > 1:
        paired = [
            hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)
        ]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0].hex()


def build(summary: dict[str, Any], input_shards: list[dict[str, Any]], dataset_id: str) -> dict[str, Any]:
    """The manifest of a release, from the clean stage's summary (deterministic: no clock, no paths of
    this machine beyond the dataset's own root)."""
    out_shards = [
        {"name": s["name"], "sha256": s["sha256"], "rows": s["rows_kept"], "action": s["action"]}
        for s in summary["shards"]
    ]
    return {
        "format": FORMAT,
        "tool": f"expunge {__version__}",
        "input": {"dataset": dataset_id, "rows": summary["rows_in"], "shards": input_shards},
        "banks": summary["banks"],
        "policy": {
            "remove": "any finding of a listed bank",
            "quarantine": "rows that cannot be checked (URL null, empty, not UTF-8, unparseable; bad image)",
        },
        "counts": {
            "rows_in": summary["rows_in"],
            "rows_kept": summary["rows_kept"],
            "rows_removed": summary["rows_removed"],
            "rows_quarantined": summary["rows_quarantined"],
            "removed_by_signal": summary["removed_by_signal"],
            **(
                {
                    "removed_by_rule": summary["removed_by_rule"],
                    "negative_cancelled": summary["negative_cancelled"],
                }
                if "removed_by_rule" in summary
                else {}
            ),
        },
        "shards": out_shards,
        "merkle_root": merkle_root([(s["name"], s["sha256"]) for s in out_shards]),
    }


def with_files(manifest: dict[str, Any], files: list[dict[str, Any]]) -> dict[str, Any]:
    """The manifest with every file of the release listed (sorted by path) and bound by a root."""
    listed = sorted(files, key=lambda f: str(f["path"]))
    return {
        **manifest,
        "files": listed,
        "files_root": merkle_root([(f["path"], f["sha256"]) for f in listed]),
    }


def content(manifest: dict[str, Any]) -> dict[str, Any]:
    """What a release is, without its place in the sequence: two runs that write the same release
    agree on it, so a rerun keeps the sequence number instead of counting itself as a new release."""
    return {k: v for k, v in manifest.items() if k not in ("release", SELF_DIGEST)}


def next_release(new: dict[str, Any], candidates: list[tuple[dict[str, Any], bytes]]) -> dict[str, Any]:
    """The ``release`` block for ``new`` given earlier manifests (with their bytes).

    The same release written again keeps its block (reruns are byte-identical); otherwise it follows
    the newest candidate: sequence + 1, and that manifest's roots and hash.
    """
    for man, _ in candidates:
        if content(man) == content(new) and isinstance(man.get("release"), dict):
            return dict(man["release"])
    if not candidates:
        return {"sequence": 1, "previous": None}
    man, data = max(candidates, key=lambda c: sequence_of(c[0]))
    return {
        "sequence": sequence_of(man) + 1,
        "previous": {
            "sequence": sequence_of(man),
            "merkle_root": man.get("merkle_root"),
            "files_root": man.get("files_root"),
            "manifest_sha256": hashlib.sha256(data).hexdigest(),
        },
    }


def sequence_of(manifest: dict[str, Any]) -> int:
    """A manifest's release sequence number; manifests from before sequences count as 0."""
    release = manifest.get("release")
    seq = release.get("sequence") if isinstance(release, dict) else None
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else 0


def walk(release: Path) -> tuple[list[str], list[str], list[str]]:
    """Every regular file (relative POSIX path), every folder, and every other entry (symlinks, pipes,
    sockets, devices) under ``release``: hidden and ``_`` names included, symlinks never followed."""
    files: list[str] = []
    folders: list[str] = []
    odd: list[str] = []

    def unreadable(exc: OSError) -> None:  # a folder that cannot be listed is never passed over
        odd.append(os.path.relpath(str(exc.filename), release).replace(os.sep, "/"))

    for top, dirs, names in os.walk(release, onerror=unreadable, followlinks=False):
        rel_top = os.path.relpath(top, release)
        for name in sorted(dirs + names):
            rel = name if rel_top == "." else f"{rel_top}/{name}".replace(os.sep, "/")
            mode = os.lstat(os.path.join(top, name)).st_mode
            if stat.S_ISLNK(mode):
                odd.append(rel)
                if name in dirs:
                    dirs.remove(name)
            elif stat.S_ISDIR(mode):
                folders.append(rel)
            elif stat.S_ISREG(mode):
                files.append(rel)
            else:
                odd.append(rel)
    return sorted(files), sorted(folders), sorted(odd)


def is_own(rel: str) -> bool:
    """The manifest and its signature: the only files a manifest cannot list."""
    return rel in (MANIFEST, SIGNATURE)


def file_digest(path: Path) -> tuple[int, str]:
    """Size and SHA-256 of one file, streamed."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()


def digest_files(paths: list[str]) -> list[tuple[str, int, str]]:
    """A task: (path, size, SHA-256) of each file (many per task, so small files do not cost a task)."""
    return [(p, *file_digest(Path(p))) for p in paths]


def _plain(obj: dict[str, Any]) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode("utf-8")


def _object(members: dict[str, str]) -> bytes:
    """``_plain`` of a dict whose values are already encoded (each at the top level's indent)."""
    if not members:
        return b"{}\n"
    body = ",\n".join(f"  {json.dumps(k)}: {members[k]}" for k in sorted(members))
    return ("{\n" + body + "\n}\n").encode("utf-8")


def dumps(manifest: dict[str, Any]) -> bytes:
    """Canonical bytes: what is signed and what is written.

    The manifest carries the SHA-256 of its own other fields, so ``verify`` notices any corruption or
    hand edit of an unsigned manifest (a forger can recompute it: only a signature stops a forger).
    Each field is encoded once and the two texts (without and with the digest) are joined from the
    same pieces: the same bytes as ``_plain`` of each, at half the cost for a manifest of 100,000
    shards. JSON escapes every newline inside a string, so indenting a piece is a plain replace.
    """
    members = {
        str(k): json.dumps(v, indent=2, sort_keys=True).replace("\n", "\n  ")
        for k, v in manifest.items()
        if k != SELF_DIGEST
    }
    digest = hashlib.sha256(_object(members)).hexdigest()
    return _object({**members, SELF_DIGEST: json.dumps(digest)})


def is_canonical(data: bytes, manifest: dict[str, Any]) -> bool:
    """Whether ``data`` is exactly what expunge writes for ``manifest`` (its self-digest included)."""
    return SELF_DIGEST in manifest and dumps(manifest) == data


def load(path: Path) -> dict[str, Any]:
    from expunge.errors import ExpungeError

    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ExpungeError(f"unreadable manifest ({type(exc).__name__})", path) from None
    if not isinstance(data, dict) or data.get("format") not in FORMATS:
        raise ExpungeError(f"not an {FORMAT} manifest", path)
    return data
