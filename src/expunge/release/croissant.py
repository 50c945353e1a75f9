"""Machine-readable descriptions of a cleaned release: Croissant 1.1 JSON-LD (and, re-exported from
:mod:`expunge.release.card`, the Hugging Face dataset card).

A cleaned release is only useful if the people who load it can tell what it is: which files, with which
checksums, derived from which source, and what was taken out and why. Croissant (with its Responsible-AI
vocabulary) is what dataset hubs and loaders read; a dataset card is what maintainers paste into a hub.
Both are built from the manifest and summary alone (no clock, no file access), so the same release always
yields the same bytes, and both name banks by provenance only (name, signal, version, count) — a listed
hash value never leaves the list file, so neither document can leak one.
"""

from __future__ import annotations

import glob
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from expunge.release.card import bank_key, counts_text, dataset_card, release_notes

CROISSANT_1_1 = "http://mlcommons.org/croissant/1.1"
RAI_1_0 = "http://mlcommons.org/croissant/RAI/1.0"

# The Croissant 1.1 @context (spec appendix 1), plus the keys mlcroissant's own 1.1 context carries (so
# it does not warn about a "non-standard" context), plus PROV-O for `prov:wasDerivedFrom`. schema.org is
# given as https, which is what mlcroissant and the published example datasets use.
_CONTEXT: dict[str, Any] = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "sc": "https://schema.org/",
    "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "dct": "http://purl.org/dc/terms/",
    "prov": "http://www.w3.org/ns/prov#",
    "annotation": "cr:annotation",
    "arrayShape": "cr:arrayShape",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "containedIn": "cr:containedIn",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "description": {"@container": "@language"},
    "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "excludes": "cr:excludes",
    "extract": "cr:extract",
    "field": "cr:field",
    "fileObject": "cr:fileObject",
    "fileProperty": "cr:fileProperty",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isArray": "cr:isArray",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "name": {"@container": "@language"},
    "parentField": "cr:parentField",
    "path": "cr:path",
    "readLines": "cr:readLines",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "samplingRate": "cr:samplingRate",
    "sdVersion": "cr:sdVersion",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
    "unArchive": "cr:unArchive",
    "value": "cr:value",
}

_PARQUET = "application/x-parquet"
_TAR = "application/x-tar"
_SHARDS_FILESET = "metadata-shards"
_RECORDSET = "rows"


def _guess_encoding(shard_name: str) -> str:
    """For a manifest given without its shards' media types: a tar, else parquet (folders need the types)."""
    return _TAR if shard_name.endswith(".tar") else _PARQUET


def _data_type(arrow_type: str) -> str | None:
    """schema.org type for an Arrow type string, or None for types Croissant cannot read from a column.

    Nested and binary columns are left out rather than guessed: a wrong dataType makes loaders fail,
    a missing field only makes the record set narrower.
    """
    t = arrow_type.strip().lower()
    if t in ("string", "large_string", "utf8", "large_utf8"):
        return "sc:Text"
    if t.startswith(("int", "uint")):
        return "sc:Integer"
    if t in ("float", "double", "halffloat", "float16", "float32", "float64") or t.startswith("decimal"):
        return "sc:Float"
    if t in ("bool", "boolean"):
        return "sc:Boolean"
    if t.startswith("date"):
        return "sc:Date"
    if t.startswith("timestamp"):
        return "sc:DateTime"
    return None


def parquet_columns(path: str | Path) -> list[tuple[str, str]]:
    """(name, arrow type) of a parquet shard's columns, for ``croissant(columns=...)``.

    Kept apart from :func:`croissant` so that the document itself stays a pure function of its inputs.
    """
    import pyarrow.parquet as pq

    schema = pq.read_schema(str(path))
    return [(f.name, str(f.type)) for f in schema]


def _banks_text(banks: list[dict[str, Any]], removed_by_bank: dict[str, int]) -> str:
    parts = []
    for b in banks:
        hits = removed_by_bank.get(bank_key(b))
        thr = f", threshold {b['threshold']}" if b.get("threshold") is not None else ""
        hit_text = f", {hits} rows matched" if hits is not None else ""
        parts.append(
            f"{b['name']} v{b['version']} ({b['signal']}{thr}; {b['count']} entries; "
            f"source: {b.get('source') or 'unstated'}{hit_text})"
        )
    return "; ".join(parts) if parts else "none"


def _record_set(manifest: dict[str, Any], columns: list[tuple[str, str]]) -> list[dict[str, Any]]:
    fields = []
    skipped = []
    for col, arrow_type in columns:
        dt = _data_type(arrow_type)
        if dt is None:
            skipped.append(f"{col} ({arrow_type})")
            continue
        fields.append(
            {
                "@type": "cr:Field",
                "@id": f"{_RECORDSET}/{col}",
                "name": col,
                "description": f"Column '{col}' ({arrow_type}) of the metadata parquet shards.",
                "dataType": dt,
                "source": {"fileSet": {"@id": _SHARDS_FILESET}, "extract": {"column": col}},
            }
        )
    if not fields:
        return []
    desc = f"One record per kept row ({manifest['counts']['rows_kept']} rows) of the cleaned metadata shards."
    if skipped:
        desc += " Columns not described (nested or binary): " + ", ".join(skipped) + "."
    return [
        {
            "@type": "cr:RecordSet",
            "@id": _RECORDSET,
            "name": _RECORDSET,
            "description": desc,
            "field": fields,
        }
    ]


def croissant(
    manifest: dict[str, Any],
    summary: dict[str, Any],
    *,
    name: str,
    source_url: str | None = None,
    description: str | None = None,
    license: str | None = None,
    columns: list[tuple[str, str]] | None = None,
    version: str | None = None,
    cite_as: str | None = None,
    date_published: str | None = None,
    media_types: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A Croissant 1.1 (+ RAI 1.0) JSON-LD document describing a cleaned release.

    ``contentUrl`` values are the shard names relative to the release folder, so the document is
    meant to sit beside the shards (``croissant.json``) and stays valid wherever the folder is copied.
    ``columns`` ((name, arrow type) pairs, e.g. from :func:`parquet_columns`) adds a record set over
    the parquet shards; without it the document describes files only. ``version``, ``cite_as`` and
    ``date_published`` are passed through when given (Croissant recommends them); there is no default
    date, because a clock would make the document differ between identical releases. ``media_types``
    (shard name → its format's media type) labels each shard; without it the type is guessed from the name.
    """
    counts = manifest["counts"]
    banks: list[dict[str, Any]] = manifest.get("banks", [])
    removed_by_bank: dict[str, int] = summary.get("removed_by_bank", {})
    quarantined: dict[str, int] = summary.get("quarantined_by_reason", {})
    policy = manifest.get("policy", {})
    source = source_url or manifest["input"]["dataset"]
    # Without a URL the input is only known by expunge's local dataset id; a relative IRI would be
    # resolved against wherever the document is published, so name it with a URN instead.
    derived_from: dict[str, Any] = (
        {"@id": source_url}
        if source_url
        else {"@id": f"urn:expunge:dataset:{source}", "@type": "prov:Entity", "prov:label": source}
    )

    types = media_types or {}

    def encoding(shard_name: str) -> str:
        return types.get(shard_name) or _guess_encoding(shard_name)

    distribution: list[dict[str, Any]] = [
        {
            "@type": "cr:FileObject",
            "@id": s["name"],
            "name": s["name"],
            "description": f"Cleaned shard: {s['rows']} rows kept ({s['action']}).",
            "contentUrl": s["name"],
            "encodingFormat": encoding(s["name"]),
            "sha256": s["sha256"],
        }
        for s in manifest["shards"]
    ]
    parquet = [s["name"] for s in manifest["shards"] if encoding(s["name"]) == _PARQUET]
    record_sets: list[dict[str, Any]] = []
    if parquet:
        distribution.append(
            {
                "@type": "cr:FileSet",
                "@id": _SHARDS_FILESET,
                "name": _SHARDS_FILESET,
                "description": "All cleaned metadata parquet shards of this release.",
                "encodingFormat": _PARQUET,
                # Exact names (escaped), not a wildcard: removed.parquet may sit in the same folder.
                "includes": [glob.escape(n) for n in parquet],
            }
        )
        if columns:
            record_sets = _record_set(manifest, columns)

    banks_text = _banks_text(banks, removed_by_bank)
    doc: dict[str, Any] = {
        "@context": _CONTEXT,
        "@type": "sc:Dataset",
        "name": name,
        "description": description
        or (
            f"Cleaned release of {source}: {counts['rows_removed']} rows matching known-abuse hash lists "
            f"removed and {counts['rows_quarantined']} unverifiable rows quarantined by {manifest['tool']}."
        ),
        "conformsTo": [CROISSANT_1_1, RAI_1_0],
        "keywords": ["expunge", "cleaned"],
        "identifier": f"merkle-sha256:{manifest['merkle_root']}",
        "prov:wasDerivedFrom": derived_from,
        "prov:wasGeneratedBy": {
            "@type": "prov:Activity",
            "prov:label": f"hash-list cleaning by {manifest['tool']}",
        },
        "distribution": distribution,
        "rai:dataCollection": (
            f"Derived from {source} ({counts['rows_in']} rows in {len(manifest['input']['shards'])} "
            f"shards). No new data was collected; rows were only removed."
        ),
        "rai:dataPreprocessingProtocol": [
            f"Every row was checked against these hash lists (banks): {banks_text}.",
            f"Removal policy: {policy.get('remove', 'any finding of a listed bank')}. "
            f"{counts['rows_removed']} rows removed; matches by signal (a row can match several): "
            f"{counts_text(counts.get('removed_by_signal', {}))}.",
            f"Quarantine policy: {policy.get('quarantine', 'rows that cannot be checked')}. "
            f"{counts['rows_quarantined']} rows quarantined; by reason: {counts_text(quarantined)}.",
            f"{counts['rows_kept']} of {counts['rows_in']} rows kept. The shards are bound by a Merkle root "
            f"({manifest['merkle_root']}) in MANIFEST.json; `expunge verify` recomputes it.",
        ],
        "rai:dataManipulationProtocol": (
            "Rows were deleted whole; kept rows are unchanged, and shards without any removed or "
            "quarantined row are byte-identical copies of the source shards."
        ),
        "rai:dataLimitations": [
            "Hash lists only catch material already known to and listed by the list providers; new or "
            "unlisted material, and copies whose hash differs (re-encoded, resized, other URL forms not "
            "covered by the listed signals), are not detected.",
            f"{counts['rows_quarantined']} rows could not be checked ({counts_text(quarantined)}) and "
            "were held out of the release rather than kept unverified; they are not known to be abusive.",
            "The release is only as current as the list versions named above; re-run against newer lists.",
        ],
        "rai:personalSensitiveInformation": [
            "Rows flagged by a hash list were removed without being accessed by anyone: matching compares "
            "hashes computed automatically (of URLs, or of image bytes for image signals), no person "
            "views any row, and flagged content is not copied anywhere. Per-row records of what was "
            "removed name rows by keyed hash and position only, never their content or the matched hash "
            "values; " + str(summary.get("records", "they stay with the publisher")) + ".",
            *release_notes(summary),
        ],
        "rai:dataUseCases": [
            "A drop-in replacement for the source dataset with known-abuse material removed.",
        ],
        "rai:dataReleaseMaintenancePlan": (
            "Re-run the cleaning when the hash lists are updated; only shards whose SHA-256 changes in "
            "MANIFEST.json need to be re-downloaded."
        ),
    }
    if source_url:
        doc["url"] = source_url
    for key, value in (
        ("license", license),
        ("version", version),
        ("citeAs", cite_as),
        ("datePublished", date_published),
    ):
        if value:
            doc[key] = value
    if record_sets:
        doc["recordSet"] = record_sets
    return doc


def dumps(doc: dict[str, Any]) -> str:
    """Canonical JSON text of a document (stable key order), so identical releases give identical files."""
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


__all__ = ["croissant", "dataset_card", "dumps", "parquet_columns"]
