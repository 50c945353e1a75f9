"""A cleaned release as a keep-list, so derivative copies can follow it (``expunge apply``).

The release is indexed like any dataset; the exact-URL digests of its rows become a ``release_keep``
bank, whose *absence* from it is what a derivative row is removed for. Exact bytes, not a canonical
form: a keep-list must never keep a spelling the release did not keep.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from expunge.config import RunConfig
from expunge.index.build import read_feature
from expunge.lists.bank import BankInfo, import_list, load_info, sorted_unique
from expunge.matchers.exact import fixed_to_numpy
from expunge.pipeline.dataset import open_dataset
from expunge.pipeline.run import Pipeline
from expunge.signals import get_signal
from expunge.store import Store

SIGNAL = "release_keep"
RECIPE = "raw"


def keep_bank(
    store: Store, pipeline: Pipeline, release: Path, manifest: dict[str, Any], url_column: str | None
) -> BankInfo:
    """The bank of ``release``'s exact-URL digests (imported once per release, by its Merkle root)."""
    signal = get_signal(SIGNAL)
    feature = signal.feature(RECIPE)
    probe = BankInfo("release-keep", SIGNAL, RECIPE, "release", feature.name, signal.width)
    shards = [str(release / sh["name"]) for sh in manifest["shards"]]
    rel = open_dataset(store, shards, RunConfig(url_column=url_column))
    pipeline.index(rel, [probe])
    parts = []
    for shard in rel.shards:
        column = read_feature(store.index_dir(rel.id, shard.name), feature.name)
        values, valid = fixed_to_numpy(column, signal.width)
        parts.append(values[valid])
    values = sorted_unique(np.concatenate(parts)) if parts else np.empty(0, dtype=f"S{signal.width}")
    name = f"release-{manifest['merkle_root'][:12]}"
    with tempfile.TemporaryDirectory(prefix="expunge-keep-", dir=store.tmp) as tmp:
        listing = Path(tmp) / f"{name}.txt"
        # One hex line per digest, built in C: a release has as many digests as rows.
        hexed = np.frombuffer(np.ascontiguousarray(values).tobytes().hex().encode(), dtype=np.uint8)
        newline = np.full((len(values), 1), ord("\n"), np.uint8)
        lines = np.concatenate([hexed.reshape(len(values), 2 * signal.width), newline], axis=1)
        listing.write_bytes(lines.tobytes())
        import_list(
            store,
            listing,
            name,
            SIGNAL,
            RECIPE,
            f"release {manifest['merkle_root']}",
            "release",
            allow_empty=True,  # an empty release keeps nothing: the safe direction
        )
    return load_info(store, name)
