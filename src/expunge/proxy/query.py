"""The holder's side, first step: a query package of the dataset's distinct digests, for a hotline.

The values come from the store's index (the index stage has computed them; the dataset is not read
again): per signal and recipe, every digest any row (or image member) has, once, in byte order. No
shard, row, URL, caption or sample key goes in; the manifest names the signals, their counts, the tool
version and the dataset's id (keyed by the store's secret: no path or folder name). PDQ hashes below
the quality floor are left out: the holder's clean never matches them, so asking about them would only
tell the hotline more.

A copy of the package stays in the store (``proxy/ID/``): the answer is later checked against it, so
an answer can only name digests this store asked about.
"""

from __future__ import annotations

import hashlib
import hmac
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from expunge import __version__, atomic
from expunge.errors import ExpungeError
from expunge.features.base import DIHEDRAL, parse_feature
from expunge.index.build import read_feature
from expunge.index.images import quality_mask, read_images
from expunge.lists.bank import sorted_unique
from expunge.matchers.exact import fixed_to_numpy
from expunge.proxy import package as pkg
from expunge.stages.base import DatasetView
from expunge.store import Store


def value_schema(width: int) -> pa.Schema:
    """A query part's one column: the digests, ``fixed_size_binary(width)``, never null."""
    return pa.schema([pa.field("value", pa.binary(width), nullable=False)])


@dataclass(frozen=True)
class QueryResult:
    package_id: str
    out: Path
    counts: dict[str, int]  # distinct digests per signal:recipe
    signed: bool


def _shard_values(store: Store, ds: DatasetView, shard: str, p: pkg.Part, floor: int) -> Iterator[np.ndarray]:
    index_dir = store.index_dir(ds.id, shard)
    feature = parse_feature(p.feature)
    if not feature.is_image:
        values, valid = fixed_to_numpy(read_feature(index_dir, feature.name), p.width)
        yield values[valid]
        return
    if not (index_dir / feature.file).is_file():
        raise ExpungeError(f"{p.signal} needs image shards: this shard has none", shard)
    images = read_images(index_dir)
    values, valid = fixed_to_numpy(images.column(feature.column).combine_chunks(), p.width)
    if p.thresholded:  # PDQ: decoded members at or above the quality floor, as the holder's match reads them
        ok = quality_mask(images, floor)
        yield values[ok]
        if ds.dihedral and DIHEDRAL.column in images.column_names:
            dih = images.column(DIHEDRAL.column).combine_chunks().filter(pa.array(ok))
            flat, fvalid = fixed_to_numpy(dih.flatten(), p.width)
            yield flat[fvalid]
        return
    yield values[valid]


def query_dataset_id(store: Store, ds: DatasetView) -> str:
    """The dataset's id as a query names it: keyed by the store's secret. The store's own id is the
    folder name and a hash of the absolute path, which a hotline could test guessed paths against
    (user names, mount points); this one is stable for one store and dataset, and says nothing else."""
    return hmac.new(store.key(), f"proxy-dataset:{ds.id}".encode(), hashlib.sha256).hexdigest()[:32]


def collect(store: Store, ds: DatasetView, p: pkg.Part, floor: int) -> np.ndarray:
    """Every distinct value of one part across the dataset's shards, in byte order."""
    chunks: list[np.ndarray] = []
    for shard in ds.shards:
        if shard.name not in ds.state:
            raise ExpungeError("shard is not indexed", shard.name)
        chunks.extend(_shard_values(store, ds, shard.name, p, floor))
    if not chunks:
        return np.empty(0, dtype=f"S{p.width}")
    return sorted_unique(np.concatenate(chunks))


def export_query(
    store: Store,
    ds: DatasetView,
    parts: list[pkg.Part],
    out: Path,
    *,
    quality_floor: int,
    sign_key: Path | None = None,
) -> QueryResult:
    """Write the query package to ``out`` (absent or an empty folder) and keep a copy in the store."""
    pkg.check_out(out)
    package_id = pkg.new_id()
    record = pkg.query_record(store, package_id)
    counts: dict[str, int] = {}
    with pkg.staged(out) as stage:
        entries = []
        for p in parts:
            values = collect(store, ds, p, quality_floor)
            path = stage / p.file
            pkg.write_table(
                path, pa.table({"value": pkg.binary_array(values, p.width)}, schema=value_schema(p.width))
            )
            entry = {"signal": p.signal, "recipe": p.recipe, "feature": p.feature, "width": p.width}
            entry.update({"count": len(values), **pkg.file_entry(path)})
            entries.append(entry)
            counts[p.key] = len(values)
        manifest = {
            "format": pkg.QUERY_FORMAT,
            "format_version": pkg.FORMAT_VERSION,
            "package_id": package_id,
            "dataset_id": query_dataset_id(store, ds),
            "tool_version": __version__,
            "signals": entries,
        }
        if any(p.thresholded for p in parts):
            manifest["quality_floor"] = quality_floor
            manifest["dihedral"] = ds.dihedral
        comment = f"expunge proxy query package_id={package_id}"
        pkg.write_manifest(stage, pkg.QUERY_MANIFEST, manifest, sign_key, comment)
        # The store's copy first (its manifest last: the commit point of the record), then OUT.
        record.mkdir(parents=True, exist_ok=True)
        atomic.write_json(pkg.record_file(store, package_id), {"exported_ns": time.time_ns()}, store.tmp)
        # Copies, not links: an edit of OUT in place must not reach the record it is checked against.
        for name in [p.file for p in parts] + [pkg.QUERY_MANIFEST]:
            atomic.write_bytes(record / name, (stage / name).read_bytes(), store.tmp)
    return QueryResult(package_id, out, counts, sign_key is not None)


def open_query(folder: Path, pubkey: Path | None = None) -> pkg.Opened:
    """A query package whose files check out (and signature, when ``pubkey`` is given)."""
    opened = pkg.open_package(folder, pkg.QUERY_MANIFEST, pkg.QUERY_FORMAT, pubkey)
    if not pkg.is_id(opened.manifest.get("package_id")):
        raise ExpungeError("malformed package id in the manifest", folder / pkg.QUERY_MANIFEST)
    seen: set[pkg.Part] = set()
    for entry in opened.manifest["signals"]:
        p = pkg.entry_part(entry, folder / pkg.QUERY_MANIFEST)
        if p in seen:
            raise ExpungeError(f"the manifest lists {p.key} twice", folder / pkg.QUERY_MANIFEST)
        seen.add(p)
    return opened


def query_parts(opened: pkg.Opened) -> Iterator[tuple[pkg.Part, np.ndarray]]:
    """Each part of a checked query and its values (distinct, in byte order, as many as the manifest
    says: anything else is refused)."""
    where = opened.folder
    for entry in opened.manifest["signals"]:
        p = pkg.entry_part(entry, where / pkg.QUERY_MANIFEST)
        table = pkg.read_table(where / p.file, value_schema(p.width), where, entry.get("count"))
        values = pkg.fixed_values(table.column("value"), p.width, where, p.file)
        if len(values) != entry.get("count") or not pkg.is_sorted_unique(values):
            raise ExpungeError("a query part's values are not what its manifest says", where, p.file)
        yield p, values


def drop_record(store: Store, package_id: str) -> None:
    """Forget a query the store exported (its answers can no longer be imported)."""
    shutil.rmtree(pkg.query_record(store, package_id), ignore_errors=True)
    pkg.record_file(store, package_id).unlink(missing_ok=True)
