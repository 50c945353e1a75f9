"""Synthetic, entirely benign LAION-style shards and hash lists for expunge's demo, tests and benchmarks.

Real inputs (abuse hash lists, web-scale scrapes) can never be shipped or used in tests, yet every stage
of expunge has to be exercised end to end on realistic shapes and sizes. This module makes both sides
from nothing (word pools and string kernels: ``synth_pools``; rows, captions and URLs: ``synth_urls``;
list files: ``synth_lists``; schema and ground truth: ``synth_model``):

* parquet shards whose captions come from neutral word lists ("a red ceramic mug on a wooden table")
  and whose URLs point at made-up hosts under reserved TLDs (``.example``, ``.test``, ``.example.net``);
* list files whose "flagged" entries are ordinary generated rows picked at random, plus decoys that
  match nothing. Each list file carries a header comment saying it is synthetic wherever its format
  has comments at all.

Ground truth is exact by construction rather than by checking afterwards, so tests can assert exact
counts:

* every URL's last path segment holds exactly one run of exactly ten decimal digits, a token that is a
  bijection of the row's global index, so no two rows share a canonical URL;
* most stored URLs are already in Safe Browsing canonical form; every other http(s) form is derived
  from a canonical base by edits whose canonical result is known (host case, default port, fragment,
  dot segments, escaped unreserved letters, surrounding spaces, scheme case).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from expunge.atomic import atomic_path
from expunge.demo.synth_lists import random_digests, write_digest_list, write_lists
from expunge.demo.synth_model import (
    HEADER_COMMENT,
    LIST_NAMES,
    QUARANTINE_KINDS,
    SCHEMA,
    URL_LIST_COMMENT,
    FlaggedRow,
    ListedForm,
    SynthDataset,
)
from expunge.demo.synth_pools import (
    _LICENSE_WEIGHTS,
    _LICENSES,
    _NO_HOST_TEXTS,
    _NSFW_LABELS,
    _NSFW_WEIGHTS,
    IntArray,
    _check_pools,
    _pool,
    _take,
)
from expunge.demo.synth_urls import (
    _NONCANONICAL,
    _TOKEN_SPACE,
    _build_captions,
    _build_urls,
    _draw_features,
    _Hosts,
    _make_hosts,
    _noncanonical,
    _tokens,
    _transform,
    _variant_kinds,
)

__all__ = [
    "HEADER_COMMENT",
    "LIST_NAMES",
    "QUARANTINE_KINDS",
    "SCHEMA",
    "URL_LIST_COMMENT",
    "FlaggedRow",
    "ListedForm",
    "SynthDataset",
    "generate_dataset",
    "random_digests",
    "write_digest_list",
    "write_lists",
]

# Shares of the dataset; small datasets still get every quarantine kind so tests see each one.
_QUARANTINE_SHARE: Final = 0.001
_NONCANONICAL_SHARE: Final = 0.02
_VARIANT_SHARE: Final = 1 / 3

_MAX_ROWS: Final = 10**9


# --------------------------------------------------------------------------------------------------
# Planning: which rows are flagged, quarantined or non-canonical, decided once for the whole dataset.


@dataclass(frozen=True)
class _Plan:
    bounds: IntArray
    names: list[str]
    token_offset: int
    sample_id_base: int
    hosts: _Hosts
    flagged: list[FlaggedRow]
    flagged_global: IntArray
    variant_ordinal: dict[int, int]
    quarantine_global: IntArray
    quarantine_kind: IntArray
    noncanonical_global: IntArray


def _split_evenly(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def _plan(rows: int, shards: int, seed: int, flagged: int, utf8_only: bool = False) -> _Plan:
    rng = np.random.default_rng([seed, 0x5EED])
    sizes = _split_evenly(rows, shards)
    bounds = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    names = [f"part-{i:05d}.parquet" for i in range(shards)]

    picked: list[IntArray] = []
    for i, (size, k) in enumerate(zip(sizes, _split_evenly(flagged, shards), strict=True)):
        if k:
            picked.append(np.sort(rng.choice(size, k, replace=False)) + bounds[i])
    flagged_global = np.concatenate(picked) if picked else np.empty(0, dtype=np.int64)

    lists = np.empty(len(flagged_global), dtype=np.int64)
    lists[rng.permutation(len(flagged_global))] = np.arange(len(flagged_global)) % len(LIST_NAMES)
    variant = np.zeros(len(flagged_global), dtype=bool)
    for name in ("c3p", "urls"):
        members = np.flatnonzero(lists == LIST_NAMES.index(name))
        count = round(len(members) * _VARIANT_SHARE)
        variant[rng.choice(members, count, replace=False)] = True
    variant_ordinal = {int(g): j for j, g in enumerate(flagged_global[variant])}

    shard_of = np.searchsorted(bounds, flagged_global, side="right") - 1
    flagged_rows = [
        FlaggedRow(names[s], int(g - bounds[s]), LIST_NAMES[int(lst)], bool(v))
        for g, s, lst, v in zip(flagged_global, shard_of, lists, variant, strict=True)
    ]

    free = np.ones(rows, dtype=bool)
    free[flagged_global] = False
    candidates = np.flatnonzero(free)
    n_quarantine = min(len(candidates), max(len(QUARANTINE_KINDS), round(rows * _QUARANTINE_SHARE)))
    n_noncanonical = min(len(candidates) - n_quarantine, round(rows * _NONCANONICAL_SHARE))
    chosen = rng.choice(candidates, n_quarantine + n_noncanonical, replace=False)
    quarantine = chosen[:n_quarantine]
    kinds = rng.permutation(np.arange(n_quarantine) % len(QUARANTINE_KINDS))
    if utf8_only:
        # Drop the rows only after every draw, so the rest of the plan (and every other row) is the
        # same as without the option; the dropped rows simply keep their canonical URL.
        keep = kinds != QUARANTINE_KINDS.index("not-utf8")
        quarantine, kinds = quarantine[keep], kinds[keep]
    order = np.argsort(quarantine)

    return _Plan(
        bounds=bounds,
        names=names,
        token_offset=int(rng.integers(0, _TOKEN_SPACE)),
        sample_id_base=int(rng.integers(10**9, 4 * 10**9)),
        hosts=_make_hosts(rng, 320),
        flagged=flagged_rows,
        flagged_global=flagged_global,
        variant_ordinal=variant_ordinal,
        quarantine_global=quarantine[order],
        quarantine_kind=kinds[order],
        noncanonical_global=np.sort(chosen[n_quarantine:]),
    )


def _in_shard(values: IntArray, start: int, end: int) -> slice:
    return slice(int(np.searchsorted(values, start)), int(np.searchsorted(values, end)))


def _quarantine_value(kind: str, canonical: str, rng: np.random.Generator) -> bytes | None:
    if kind == "null":
        return None
    if kind == "empty":
        return b""
    if kind == "data-uri":
        payload = b"\x89PNG\r\n\x1a\n" + rng.bytes(int(rng.integers(12, 48)))
        return b"data:image/png;base64," + base64.b64encode(payload)
    if kind == "no-host":
        return _NO_HOST_TEXTS[int(rng.integers(len(_NO_HOST_TEXTS)))]
    raw = canonical.encode()
    style = int(rng.integers(4))
    if style == 0:  # latin-1 e-acute followed by ASCII: never valid UTF-8
        cut = raw.rindex(b"/") + 1
        return raw[:cut] + b"caf\xe9-" + raw[cut:]
    if style == 1:  # UTF-16 with its byte-order mark; 0xFF never occurs in UTF-8
        return b"\xff\xfe" + canonical.encode("utf-16-le")
    if style == 2:  # truncated two-byte sequence at the end
        return raw + b"\xc3"
    return b"\x80" + raw  # lone continuation byte


# --------------------------------------------------------------------------------------------------
# Public API.


def generate_dataset(
    root: Path,
    rows: int = 200_000,
    shards: int = 8,
    seed: int = 0,
    flagged: int = 400,
    row_group_size: int = 10_000,
    compression: str = "zstd",
    progress: Callable[[int], None] | None = None,
    *,
    utf8_only: bool = False,
) -> SynthDataset:
    """Write ``root/part-00000.parquet`` ... and return the ground truth of what was written.

    Same arguments give byte-identical files; each shard draws from its own seeded stream, so a shard's
    content does not depend on how the others were produced.

    ``utf8_only`` leaves out the ``not-utf8`` quarantine rows (those rows keep their ordinary canonical
    URL instead), because some readers the benchmarks compare against, DuckDB among them, refuse a
    parquet ``string`` column holding invalid UTF-8. The flagged rows and every other URL stay as they
    would be without it.
    """
    if rows < 0 or rows > _MAX_ROWS:
        raise ValueError(f"rows must be between 0 and {_MAX_ROWS}, got {rows}")
    if shards < 1:
        raise ValueError(f"shards must be at least 1, got {shards}")
    if not 0 <= flagged <= rows:
        raise ValueError(f"flagged must be between 0 and rows ({rows}), got {flagged}")
    if row_group_size < 1:
        raise ValueError(f"row_group_size must be at least 1, got {row_group_size}")
    _check_pools()
    plan = _plan(rows, shards, seed, flagged, utf8_only)
    root.mkdir(parents=True, exist_ok=True)
    listed: dict[FlaggedRow, ListedForm] = {}
    paths: list[Path] = []
    by_global = dict(zip((int(g) for g in plan.flagged_global), plan.flagged, strict=True))
    for index, name in enumerate(plan.names):
        path = root / name
        table, shard_listed = _shard_table(plan, index, seed, by_global)
        listed.update(shard_listed)
        with atomic_path(path) as tmp, pq.ParquetWriter(tmp, SCHEMA, compression=compression) as writer:
            for offset in range(0, table.num_rows, row_group_size):
                chunk = table.slice(offset, row_group_size)
                writer.write_table(chunk, row_group_size=row_group_size)
                if progress is not None:
                    progress(chunk.num_rows)
        paths.append(path)
    return SynthDataset(
        root=root,
        shards=paths,
        rows=rows,
        flagged=list(plan.flagged),
        quarantine_rows=len(plan.quarantine_global),
        listed=listed,
    )


def _shard_table(
    plan: _Plan, index: int, seed: int, by_global: dict[int, FlaggedRow]
) -> tuple[Any, dict[FlaggedRow, ListedForm]]:
    start, end = int(plan.bounds[index]), int(plan.bounds[index + 1])
    n = end - start
    rng = np.random.default_rng([seed, 0xDA7A, index])
    global_rows = np.arange(start, end, dtype=np.int64)
    feats = _draw_features(rng, n)
    tokens = _tokens(global_rows, plan.token_offset)
    canonical = _build_urls(rng, feats, tokens, plan.hosts)
    captions = _build_captions(feats)

    edits: dict[int, bytes | None] = {}
    listed: dict[FlaggedRow, ListedForm] = {}
    fl = plan.flagged_global[_in_shard(plan.flagged_global, start, end)]
    fl_canonical = canonical.take(pa.array(fl - start)).to_pylist()
    for g, canon in zip(fl, fl_canonical, strict=True):
        flagged_row = by_global[int(g)]
        stored = canon
        if flagged_row.variant:
            stored = _transform(canon, _variant_kinds(plan.variant_ordinal[int(g)], rng), rng)
            edits[int(g) - start] = stored.encode()
        listed[flagged_row] = ListedForm(raw=stored.encode(), canonical=canon)

    nc = plan.noncanonical_global[_in_shard(plan.noncanonical_global, start, end)]
    nc_kinds = rng.integers(0, len(_NONCANONICAL), len(nc))
    for g, canon, k in zip(nc, canonical.take(pa.array(nc - start)).to_pylist(), nc_kinds, strict=True):
        edits[int(g) - start] = _noncanonical(canon, _NONCANONICAL[int(k)], rng).encode()

    q_slice = _in_shard(plan.quarantine_global, start, end)
    q = plan.quarantine_global[q_slice]
    q_canonical = canonical.take(pa.array(q - start)).to_pylist()
    for g, kind, canon in zip(q, plan.quarantine_kind[q_slice], q_canonical, strict=True):
        edits[int(g) - start] = _quarantine_value(QUARANTINE_KINDS[int(kind)], canon, rng)

    urls = canonical
    if edits:
        at = sorted(edits)
        mask = np.zeros(n, dtype=bool)
        mask[at] = True
        replaced = pc.replace_with_mask(
            canonical.cast(pa.binary()), pa.array(mask), pa.array([edits[i] for i in at], pa.binary())
        )
        # Bytes that are not UTF-8 must reach the file as a ``string`` column, as scrapes really do.
        urls = pa.Array.from_buffers(
            pa.string(), len(replaced), replaced.buffers(), replaced.null_count, replaced.offset
        )

    license_idx = rng.choice(len(_LICENSES), n, p=_LICENSE_WEIGHTS)
    nsfw_idx = rng.choice(len(_NSFW_LABELS), n, p=_NSFW_WEIGHTS)
    table = pa.Table.from_arrays(
        [
            pa.array(global_rows + plan.sample_id_base, pa.int64()),
            urls,
            captions,
            pa.array(feats["height"].astype(np.int32), pa.int32()),
            pa.array(feats["width"].astype(np.int32), pa.int32()),
            _take(_pool(_LICENSES), license_idx),
            _take(_pool(_NSFW_LABELS), nsfw_idx),
            pa.array(np.clip(rng.normal(0.32, 0.035, n), 0.28, 0.5), pa.float64()),
            pa.array(rng.beta(0.5, 12.0, n).astype(np.float32), pa.float32()),
            pa.array(rng.beta(0.7, 2.5, n).astype(np.float32), pa.float32()),
            pa.array(rng.integers(-(2**63), 2**63 - 1, n, dtype=np.int64, endpoint=True), pa.int64()),
        ],
        schema=SCHEMA,
    )
    return table, listed
