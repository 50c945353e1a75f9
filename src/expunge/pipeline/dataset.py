"""The dataset model: its shards, columns and index records, as the store keeps them in dataset.json."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from expunge import atomic
from expunge.config import MAX_PIXELS, RunConfig
from expunge.formats import Shard, discover, get
from expunge.formats import parquet as pqfmt
from expunge.index.build import INDEX_FORMAT
from expunge.lists.bank import BankInfo, load_info
from expunge.release.outdir import check_out_location as _check_out_location
from expunge.store import Store, dataset_id


@dataclass
class Dataset:
    """A dataset as the store knows it: its shards, columns and what has been indexed."""

    id: str
    root: str
    specs: list[str]
    shards: list[Shard]
    columns: pqfmt.ColumnMap
    state: dict[str, Any] = field(default_factory=dict)  # shard name → fingerprint, rows, features
    kind: str = "parquet"  # "parquet" | "webdataset"
    dihedral: bool = False  # index the 8 PDQ orientations of every image
    max_pixels: int = MAX_PIXELS  # images larger than this are quarantined as decompression bombs

    @property
    def dir_name(self) -> str:
        return self.id


def open_dataset(store: Store, specs: list[str], config: RunConfig | None = None) -> Dataset:
    """The dataset at ``specs`` with the columns, image options and store state ``config`` implies."""
    config = config or RunConfig()
    url_column, caption_column, key_column = config.url_column, config.caption_column, config.key_column
    store.ensure()
    root, shards, kind = discover(specs)
    fmt = get(kind)
    with_meta = next((s.metadata for s in shards if s.metadata), None)
    if with_meta is None:
        columns = pqfmt.ColumnMap(None, None, None)
    else:
        if key_column is None:
            key_column = fmt.default_key_column(with_meta)
        columns = fmt.detect_columns(
            with_meta, url_column, caption_column, key_column, require_url=fmt.requires_url
        )
    ds_id = dataset_id(root)
    path = store.dataset_file(ds_id)
    state: dict[str, Any] = {}
    if path.is_file():
        saved = atomic.read_json(path)
        # An index written by an older layout (say, first-image-only image rows) is rebuilt in full.
        # Features are computed from the URL and caption columns: another column means another index.
        cols = saved.get("columns", {})
        same = cols.get("url") == columns.url and cols.get("caption", columns.caption) == columns.caption
        if same and saved.get("index_format") == INDEX_FORMAT:
            state = saved.get("shards", {})
    return Dataset(ds_id, root, list(specs), shards, columns, state, kind, config.dihedral, config.max_pixels)


def save_dataset(store: Store, ds: Dataset) -> None:
    """dataset.json: the dataset's description and every shard's index completion record."""
    data = {
        "id": ds.id,
        "root": ds.root,
        "specs": ds.specs,
        "index_format": INDEX_FORMAT,
        "columns": asdict(ds.columns),
        "shards": {s.name: ds.state[s.name] for s in ds.shards if s.name in ds.state},
    }
    atomic.write_json(store.dataset_file(ds.id), data, store.tmp)


def bank_infos(store: Store, names: list[str] | None) -> list[BankInfo]:
    chosen = names if names is not None else store.bank_names()
    return [load_info(store, n) for n in chosen]


def check_out_location(store: Store, ds: Dataset, out: Path) -> Path:
    """Refuse an output folder that would overwrite or publish what it must not; returns it resolved."""
    return _check_out_location(store, ds.root, ds.shards, out)
