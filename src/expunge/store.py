"""The store: one directory holding banks, per-dataset indexes and findings, run ledgers and a key.

```
STORE/
  key                                 32 random bytes (0600): keys the hashes that name removed rows
  banks/NAME/bank.json                provenance and version history; the commit point of an import
  banks/NAME/values-vNNNN.parquet     current values, sorted, binary (the file bank.json names)
  banks/NAME/deltas/vNNNN.added.parquet / .removed.parquet
  datasets/SLUG-ID/dataset.json       shards, fingerprints, columns, what is indexed
  datasets/SLUG-ID/index/SHARD/rows.parquet       per-row quarantine code
  datasets/SLUG-ID/index/SHARD/FEATURE.parquet    per-row feature values
  datasets/SLUG-ID/findings/SHARD.parquet         matches (row, bank, version, signal, value, distance)
  datasets/SLUG-ID/findings/SHARD.state.json      which bank versions the findings reflect
  datasets/SLUG-ID/cover.parquet                  the cover draw's threshold and rows already covered
  datasets/SLUG-ID/private/OUT-TAG/               one release folder's private state (never in OUT):
      shards/NAME.TAG.json / .removed.parquet     per-shard completion marker and removal records
      removed.parquet                             every shard's removal records together
      files.json                                  hashes of the published files, by stat
  lineage/graph/                      the lineage graph built from model and dataset cards
  lineage/marks.json                  marked datasets (history) and derivatives' evidence from apply
  runs/*.json                         ledger: one record per command run
  tmp/                                temporaries, renamed into place
```
Nothing here holds a URL or caption in plaintext: banks and indexes hold digests only.

Every path into the store is built by a method here, so a layout change (or a store elsewhere) is one
module's business. Names are part of the on-disk format: a store written before must still be read.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

from expunge import atomic
from expunge.errors import ExpungeError

BANK_FILE = "bank.json"  # a bank's commit point: it names the current values file
LEGACY_VALUES = "values.parquet"  # the unversioned values file of stores written before bank.json named it
DATASET_FILE = "dataset.json"
COVER_FILE = "cover.parquet"
PRIVATE_RECORDS = "removed.parquet"


def _pair(folder: Path, stem: str) -> tuple[Path, Path]:
    """``STEM.parquet`` and ``STEM.state.json`` in ``folder``, the stem kept whole.

    Not ``Path.with_suffix``: a shard id keeps the dots of its name (``laion.part1-HASH``), and
    ``with_suffix`` would cut it at the last dot, so ``laion.part1`` and ``laion.part2`` shared one
    findings file (stores written that way are matched again: their files are simply not found).
    """
    return folder / f"{stem}.parquet", folder / f"{stem}.state.json"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:60] or "x"


class Store:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).absolute()

    def ensure(self) -> Store:
        for sub in ("banks", "datasets", "runs", "tmp"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        return self

    @property
    def tmp(self) -> Path:
        path = self.root / "tmp"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def lock(self) -> contextlib.AbstractContextManager[None]:
        """Hold the store for one command: two runs writing one store would race on its metadata."""
        return _locked(self)

    def key(self) -> bytes:
        """The store's secret, created on first use. Keyed hashes of removed rows cannot be reversed
        by guessing URLs without it."""
        path = self.root / "key"
        if not path.exists():
            self.ensure()
            atomic.write_bytes(path, secrets.token_bytes(32), self.tmp)
            os.chmod(path, 0o600)
        return path.read_bytes()

    # banks
    def bank_dir(self, name: str) -> Path:
        return self.root / "banks" / _safe(name)

    def bank_file(self, name: str) -> Path:
        return self.bank_dir(name) / BANK_FILE

    def bank_deltas(self, name: str) -> Path:
        return self.bank_dir(name) / "deltas"

    def bank_delta(self, name: str, version: int, change: str) -> Path:
        """The values a version ``added`` or ``removed``."""
        return self.bank_deltas(name) / f"v{version:04d}.{change}.parquet"

    @staticmethod
    def bank_values_name(version: int) -> str:
        """The values file of a version, relative to its bank (``bank.json`` records it)."""
        return f"values-v{version:04d}.parquet"

    def bank_names(self) -> list[str]:
        base = self.root / "banks"
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir() if (p / BANK_FILE).is_file())

    # datasets
    def dataset_dir(self, dataset_id: str) -> Path:
        return self.root / "datasets" / dataset_id

    @staticmethod
    def shard_id(name: str) -> str:
        """File-system-safe, collision-free id for a shard's relative name."""
        digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:16]
        return f"{_safe(Path(name).stem)[:40]}-{digest}"

    def dataset_file(self, dataset_id: str) -> Path:
        """The dataset model: shards, fingerprints, columns, what is indexed."""
        return self.dataset_dir(dataset_id) / DATASET_FILE

    def index_dir(self, dataset_id: str, shard: str) -> Path:
        return self.dataset_dir(dataset_id) / "index" / self.shard_id(shard)

    def findings(self, dataset_id: str, shard: str) -> tuple[Path, Path]:
        """A shard's findings and the state file saying which bank versions they reflect."""
        return _pair(self.dataset_dir(dataset_id) / "findings", self.shard_id(shard))

    def soft_findings(self, dataset_id: str, shard: str) -> tuple[Path, Path]:
        """A shard's soft findings (scores, keywords, nudity) and their completion record."""
        return _pair(self.dataset_dir(dataset_id) / "soft", self.shard_id(shard))

    def neighbours(self, dataset_id: str) -> tuple[Path, Path]:
        """The dataset's neighbour findings (rows near a seed in embedding space) and their record."""
        return _pair(self.dataset_dir(dataset_id), "neighbours")

    def flood_state(self, dataset_id: str) -> Path:
        """Rows each bank and rule decided in the dataset's last clean (the flood guard's baseline)."""
        return self.dataset_dir(dataset_id) / "flood.json"

    def cover_state(self, dataset_id: str) -> Path:
        return self.dataset_dir(dataset_id) / COVER_FILE

    def review_dir(self, dataset_id: str) -> Path:
        return self.dataset_dir(dataset_id) / "review"

    def private_dir(self, dataset_id: str, out: Path) -> Path:
        """Where one release folder's markers and per-row records live (never in OUT itself): keyed by
        the folder's resolved path."""
        tag = hashlib.sha256(str(out.resolve()).encode("utf-8")).hexdigest()[:16]
        return self.dataset_dir(dataset_id) / "private" / tag

    @staticmethod
    def private_shards(private: Path) -> Path:
        return private / "shards"

    @staticmethod
    def clean_marker(private: Path, shard: str) -> tuple[Path, Path]:
        """A shard's completion marker and removal records in a release's private folder."""
        tag = hashlib.sha256(shard.encode("utf-8")).hexdigest()[:12]
        base = f"{Path(shard).name}.{tag}"
        shards = Store.private_shards(private)
        return shards / f"{base}.json", shards / f"{base}.removed.parquet"

    @staticmethod
    def private_records(private: Path) -> Path:
        return private / PRIVATE_RECORDS

    @staticmethod
    def files_cache(private: Path) -> Path:
        return private / "files.json"

    # lineage
    def lineage_dir(self) -> Path:
        """The lineage graph (``graph/``) and the marks and evidence (``marks.json``)."""
        return self.root / "lineage"

    # run ledger
    @property
    def runs(self) -> Path:
        return self.root / "runs"

    def run_record(self, stamp: str, command: str) -> Path:
        return self.runs / f"{stamp}-{command}.json"


@contextlib.contextmanager
def _locked(store: Store) -> Iterator[None]:
    store.ensure()
    path = store.root / "lock"
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            raise ExpungeError(
                f"store is in use by another expunge process (pid {holder})", store.root
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        # Holding the lock, leftovers in tmp/ can only be from runs that died: clear them.
        for leftover in (store.root / "tmp").iterdir():
            if leftover.is_file():
                leftover.unlink(missing_ok=True)
        try:
            yield
        finally:
            fh.seek(0)
            fh.truncate()
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


@contextlib.contextmanager
def folder_lock(folder: Path, what: str) -> Iterator[None]:
    """Hold ``folder`` for one run (an advisory lock on the folder itself, so no file is left in it).

    Two runs writing one release folder, even from two stores, would tear it; the second is refused.
    """
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ExpungeError(f"{what} is in use by another expunge process", folder) from None
        try:
            yield
        except BaseException:
            # A run refused before it wrote anything (the flood guard, a policy error) leaves no trace:
            # the folder it made only to lock goes again, if it is still empty.
            if created:
                with contextlib.suppress(OSError):
                    folder.rmdir()
            raise
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def dataset_id(root: str) -> str:
    """A dataset's folder name in the store, from where it lives: a local root by its absolute path, a
    remote one by its URL (the same on every machine, so a store shared through object storage finds
    the dataset's index wherever the command runs)."""
    from expunge.storage.location import is_remote, parse

    where = parse(root).url.rstrip("/") if is_remote(root) else os.path.abspath(root)
    name = where.rsplit("/", 1)[-1] if is_remote(root) else Path(root).name
    digest = hashlib.sha256(where.encode("utf-8")).hexdigest()[:12]
    return f"{_safe(name)[:40]}-{digest}"
