"""The release manifest: what went in, what came out, and a Merkle root that binds the output shards.

A holder of the old release re-downloads only the shards whose SHA-256 changed; anyone can recompute
every shard's hash and the root from the files; a signature over the manifest binds it to its author.
The manifest names banks by provenance only (name, source, version, count, file hash), never values.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from expunge import __version__

MANIFEST = "MANIFEST.json"
FORMAT = "expunge-manifest/1"


def _leaf(name: str, sha256_hex: str) -> bytes:
    return hashlib.sha256(b"\x00" + name.encode("utf-8") + b"\x00" + bytes.fromhex(sha256_hex)).digest()


def merkle_root(shards: list[tuple[str, str]]) -> str:
    """RFC 6962-style Merkle tree hash over (shard name, sha256) leaves in the given order.

    Leaves and nodes have distinct prefixes (0x00, 0x01), so no leaf can pose as a node; an empty
    release has the hash of the empty string.
    """

    def tree(leaves: list[bytes]) -> bytes:
        if not leaves:
            return hashlib.sha256(b"").digest()
        if len(leaves) == 1:
            return leaves[0]
        split = 1 << ((len(leaves) - 1).bit_length() - 1)
        return hashlib.sha256(b"\x01" + tree(leaves[:split]) + tree(leaves[split:])).digest()

    return tree([_leaf(n, h) for n, h in shards]).hex()


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
        },
        "shards": out_shards,
        "merkle_root": merkle_root([(s["name"], s["sha256"]) for s in out_shards]),
    }


def dumps(manifest: dict[str, Any]) -> bytes:
    """Canonical bytes: what is signed and what is written."""
    return (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8")


def load(path: Path) -> dict[str, Any]:
    from expunge.errors import ExpungeError

    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ExpungeError(f"unreadable manifest ({type(exc).__name__})", path) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ExpungeError(f"not an {FORMAT} manifest", path)
    return data
