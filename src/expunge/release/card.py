"""The Hugging Face dataset card (README.md) of a release, and the prose it shares with croissant.json.

Built from the manifest and summary alone, like :mod:`expunge.release.croissant`: the same release always
yields the same bytes, and banks are named by provenance only (name, signal, version, count).
"""

from __future__ import annotations

import json
from typing import Any


def bank_key(bank: dict[str, Any]) -> str:
    """The key summary.json's ``removed_by_bank`` uses for a bank."""
    return f"{bank['name']}@v{bank['version']}"


def release_notes(summary: dict[str, Any]) -> list[str]:
    """What a diff against the previous release reveals: the cover's promise, or the warning that
    there is none."""
    notes = []
    cover = summary.get("cover")
    if isinstance(cover, dict):
        notes.append(
            f"Cover set (k = {cover.get('k')}): removed rows include rows that were not flagged, so that "
            f"{cover.get('rule')}."
        )
    if summary.get("notice"):
        text = str(summary["notice"])
        notes.append("Note: " + text[:1].upper() + text[1:])
    return notes


def counts_text(by: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(by.items())) or "none"


def _size_category(rows: int) -> str:
    """The Hugging Face ``size_categories`` bucket for a row count."""
    for limit, label in (
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
        (10_000_000, "1M<n<10M"),
        (100_000_000, "10M<n<100M"),
        (1_000_000_000, "100M<n<1B"),
        (10_000_000_000, "1B<n<10B"),
    ):
        if rows < limit:
            return label
    return "n>1T" if rows >= 1_000_000_000_000 else "10B<n<100B"


def _yaml_str(value: str) -> str:
    """A YAML scalar for any string: JSON strings are valid YAML double-quoted scalars."""
    return json.dumps(value, ensure_ascii=False)


def dataset_card(manifest: dict[str, Any], summary: dict[str, Any], *, name: str) -> str:
    """A Hugging Face dataset-card snippet: YAML front matter plus a short section on the cleaning.

    The YAML is written by hand (every string JSON-quoted, which YAML accepts) so the package needs no
    YAML library, and the output is byte-stable.
    """
    counts = manifest["counts"]
    banks: list[dict[str, Any]] = manifest.get("banks", [])
    removed_by_bank: dict[str, int] = summary.get("removed_by_bank", {})
    quarantined: dict[str, int] = summary.get("quarantined_by_reason", {})
    lines = [
        "---",
        f"pretty_name: {_yaml_str(name)}",
        "tags:",
        "  - expunge",
        "  - cleaned",
        "size_categories:",
        f"  - {_size_category(int(counts['rows_kept']))}",
        "expunge:",
        f"  tool: {_yaml_str(manifest['tool'])}",
        f"  source: {_yaml_str(manifest['input']['dataset'])}",
        f"  merkle_root: {_yaml_str(manifest['merkle_root'])}",
        f"  rows_in: {int(counts['rows_in'])}",
        f"  rows_kept: {int(counts['rows_kept'])}",
        f"  rows_removed: {int(counts['rows_removed'])}",
        f"  rows_quarantined: {int(counts['rows_quarantined'])}",
    ]
    if banks:
        lines.append("  banks:")
        for b in banks:
            lines += [
                f"    - name: {_yaml_str(str(b['name']))}",
                f"      version: {_yaml_str(str(b['version']))}",
                f"      signal: {_yaml_str(str(b['signal']))}",
                f"      entries: {int(b['count'])}",
                f"      rows_matched: {int(removed_by_bank.get(bank_key(b), 0))}",
            ]
    else:
        lines.append("  banks: []")
    lines.append("---")
    bank_rows = [
        f"| {b['name']} | {b['version']} | {b['signal']} | {b['count']} | "
        f"{removed_by_bank.get(bank_key(b), 0)} |"
        for b in banks
    ]
    body = [
        "",
        "## Known-abuse material removed",
        "",
        f"This release was cleaned with `{manifest['tool']}` from `{manifest['input']['dataset']}`: "
        f"{counts['rows_removed']} of {counts['rows_in']} rows matched a known-abuse hash list and were "
        f"removed, and {counts['rows_quarantined']} rows that could not be checked "
        f"({counts_text(quarantined)}) were quarantined. {counts['rows_kept']} rows remain.",
        "",
        "| bank | version | signal | entries | rows matched |",
        "|---|---|---|---|---|",
        *bank_rows,
        "",
        "A row can match more than one bank; every matching row was removed.",
        "",
        *[line + "\n" for line in release_notes(summary)],
        "Flagged rows were removed without being accessed by anyone: matching compares automatically "
        "computed hashes, and no flagged content is copied into the release. Hash lists only catch "
        "material already known to the list providers, so this is not a guarantee that no harmful content "
        "remains.",
        "",
        "### Verify",
        "",
        f"`MANIFEST.json` lists every shard's SHA-256 and binds them with the Merkle root "
        f"`{manifest['merkle_root']}`. To check the files you downloaded and the publisher's signature:",
        "",
        "```",
        "expunge verify RELEASE --pubkey KEY",
        "```",
        "",
    ]
    return "\n".join(lines + body)
