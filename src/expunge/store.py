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
  runs/*.json                         ledger: one record per command run
  tmp/                                temporaries, renamed into place
```
Nothing here holds a URL or caption in plaintext: banks and indexes hold digests only.
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

    def bank_names(self) -> list[str]:
        base = self.root / "banks"
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir() if (p / "bank.json").is_file())

    # datasets
    def dataset_dir(self, dataset_id: str) -> Path:
        return self.root / "datasets" / dataset_id

    @staticmethod
    def shard_id(name: str) -> str:
        """File-system-safe, collision-free id for a shard's relative name."""
        digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:16]
        return f"{_safe(Path(name).stem)[:40]}-{digest}"


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
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ExpungeError(f"{what} is in use by another expunge process", folder) from None
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def dataset_id(root: str) -> str:
    digest = hashlib.sha256(os.path.abspath(root).encode("utf-8")).hexdigest()[:12]
    return f"{_safe(Path(root).name)[:40]}-{digest}"
