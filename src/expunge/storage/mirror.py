"""A store on object storage, worked on through a local copy under a lock taken by a conditional write.

The store is many small files that the stages read back at once, memory-map (sorted index copies) and
replace atomically; an object store offers none of that cheaply. So a command against
``--store s3://…`` works on a local copy, exactly as on a local store, between three steps:

1. **Lock**: ``lock.json`` is created under the remote prefix with a conditional write
   (``If-None-Match: *``); the backend refuses a second writer, so two runs never race on one store.
   A backend without conditional writes makes the command refuse to run (``storage.fs``). A lock left by
   a run that died on this machine (its process is gone) is taken over; one held elsewhere is reported
   with its host and start time, never broken.
2. **Pull**: objects whose ETag differs from the one this copy last saw are downloaded (another machine
   ran since); files this copy changed and never pushed (a run killed here) are kept, so a rerun resumes.
3. **Push** (also after a failed command, so finished work is never lost): files changed since the last
   sync are uploaded, each in one request; data files first and JSON files (the store's commit points:
   ``bank.json``, ``dataset.json``, completion markers) after them, so a reader of the remote store never
   sees a marker before what it vouches for; then objects whose local file is gone are deleted.

The local copy lives under ``$EXPUNGE_CACHE`` (default ``~/.cache/expunge``), keyed by the store's URL.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from expunge import atomic
from expunge.errors import ExpungeError
from expunge.storage.errors import storage_errors
from expunge.storage.location import Location

LOCK = "lock.json"
STATE = ".mirror.json"
# Never synchronised: temporaries, this copy's own bookkeeping and the local process lock.
_LOCAL_ONLY = frozenset({"tmp", STATE, "lock", LOCK})


def cache_root() -> Path:
    """Where local copies of remote stores (and staged remote releases) are kept."""
    return Path(os.environ.get("EXPUNGE_CACHE") or Path.home() / ".cache" / "expunge")


def local_copy(remote: Location, kind: str = "stores") -> Path:
    """The local folder standing in for ``remote``: the same URL always maps to the same folder."""
    return cache_root() / kind / hashlib.sha256(remote.url.encode("utf-8")).hexdigest()[:20]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RemoteStore:
    """Hold a remote store for one command: lock, pull, then (on exit) push and unlock."""

    def __init__(self, remote: Location) -> None:
        self.remote = remote
        self.local = local_copy(remote)
        self._token = secrets.token_hex(16)
        self._locked = False

    # -- lock ----------------------------------------------------------------------------------------
    def _lock_body(self) -> bytes:
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        body = {"host": socket.gethostname(), "pid": os.getpid(), "since": now, "token": self._token}
        return json.dumps(body, sort_keys=True).encode()

    def _read_lock(self) -> dict[str, Any] | None:
        from expunge.storage import fs

        try:
            data = json.loads(fs.read_bytes(self.remote.join(LOCK)))
        except ExpungeError:
            return None  # gone in the meantime
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    def lock(self) -> None:
        from expunge.storage import fs

        target = self.remote.join(LOCK)
        for _attempt in (1, 2):
            if fs.create_if_absent(target, self._lock_body()):
                self._locked = True
                return
            holder = self._read_lock()
            if holder is None:
                continue  # released between the two requests: try once more
            host, pid = holder.get("host"), holder.get("pid")
            if not isinstance(host, str) or not isinstance(pid, int):
                raise ExpungeError(
                    f"the store's lock ({target.url}) is not one expunge wrote; if no run is using the "
                    "store, delete it and rerun",
                    self.remote.redacted(),
                )
            if host == socket.gethostname() and isinstance(pid, int) and not _alive(pid):
                fs.delete(target)  # left by a run that died on this machine
                continue
            raise ExpungeError(
                f"the store is in use by another expunge run (host {host}, pid {pid}, since "
                f"{holder.get('since', 'unknown')}); if that run is dead, delete {target.url} and rerun",
                self.remote.redacted(),
            )
        raise ExpungeError("could not take the store's lock (it changed hands twice)", self.remote.redacted())

    def unlock(self) -> None:
        from expunge.storage import fs

        if not self._locked:
            return
        holder = self._read_lock()
        if holder is not None and holder.get("token") == self._token:
            fs.delete(self.remote.join(LOCK))
        self._locked = False

    # -- sync ----------------------------------------------------------------------------------------
    def _state(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads((self.local / STATE).read_text())
        except (OSError, ValueError):
            return {}
        objects = data.get("objects") if isinstance(data, dict) else None
        return objects if isinstance(objects, dict) else {}

    def _save_state(self, objects: dict[str, dict[str, Any]]) -> None:
        self.local.mkdir(parents=True, exist_ok=True)
        body = json.dumps({"remote": self.remote.url, "objects": objects}, sort_keys=True, indent=1)
        atomic.write_bytes(self.local / STATE, body.encode(), self.local)

    def _remote_objects(self) -> dict[str, str]:
        """Every object under the prefix (relative key → ETag or another change token)."""
        from expunge.storage import fs

        fsys = fs.filesystem(self.remote)
        root = str(fsys._strip_protocol(self.remote.url)).strip("/")
        out: dict[str, str] = {}
        with storage_errors(self.remote):
            found = fsys.find(self.remote.url, withdirs=False, detail=True)
        for key, info in found.items():
            key = str(key).strip("/")
            if not key.startswith(root + "/"):
                continue
            rel = key[len(root) + 1 :]
            if rel.split("/", 1)[0] in _LOCAL_ONLY:
                continue
            out[rel] = _change_token(info)
        return out

    def pull(self) -> dict[str, int]:
        """Bring the local copy up to date with what other machines pushed; keep unpushed local work."""
        from expunge.storage import fs

        self.local.mkdir(parents=True, exist_ok=True)
        state = self._state()
        remote = self._remote_objects()
        fetched = dropped = 0
        for rel, token in sorted(remote.items()):
            if state.get(rel, {}).get("etag") == token and (self.local / rel).is_file():
                continue
            dst = self.local / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            fs.download(self.remote.join(rel), dst, self.local)
            st = dst.stat()
            state[rel] = {"etag": token, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
            fetched += 1
        for rel in [r for r in state if r not in remote]:
            # Gone remotely since this copy last synced: another run deleted it (an old bank version).
            (self.local / rel).unlink(missing_ok=True)
            del state[rel]
            dropped += 1
        self._save_state(state)
        return {"fetched": fetched, "dropped": dropped}

    def _local_files(self) -> dict[str, os.stat_result]:
        out: dict[str, os.stat_result] = {}
        if not self.local.is_dir():
            return out
        for dirpath, dirnames, filenames in os.walk(self.local):
            rel_dir = os.path.relpath(dirpath, self.local)
            if rel_dir == ".":
                dirnames[:] = [d for d in dirnames if d not in _LOCAL_ONLY]
            for name in filenames:
                rel = name if rel_dir == "." else f"{rel_dir}/{name}".replace(os.sep, "/")
                if rel in _LOCAL_ONLY or name.startswith(atomic.TMP_PREFIX):
                    continue
                out[rel] = os.stat(os.path.join(dirpath, name))
        return out

    def push(self) -> dict[str, int]:
        """Upload what changed here since the last sync (data first, JSON commit points last), then
        delete remote objects whose local file is gone."""
        from expunge.storage import fs

        state = self._state()
        local = self._local_files()

        def synced(rel: str, st: os.stat_result) -> bool:
            seen = state.get(rel, {})
            return bool(seen.get("size") == st.st_size and seen.get("mtime_ns") == st.st_mtime_ns)

        changed = [rel for rel, st in local.items() if not synced(rel, st)]
        changed.sort(key=lambda r: (r.endswith(".json"), r))
        fsys = fs.filesystem(self.remote)
        for rel in changed:
            target = self.remote.join(rel)
            fs.put_file(self.local / rel, target)
            with storage_errors(target):
                token = _change_token(fsys.info(target.url))
            st = local[rel]
            state[rel] = {"etag": token, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
            self._save_state(state)  # a push killed half-way resumes from here
        gone = sorted(r for r in state if r not in local)
        for rel in gone:
            fs.delete(self.remote.join(rel))
            del state[rel]
        self._save_state(state)
        return {"uploaded": len(changed), "deleted": len(gone)}

    @contextlib.contextmanager
    def held(self) -> Iterator[Path]:
        """Lock and pull; yield the local copy; push (even after a failure: finished work is kept) and
        unlock. When the command failed, its error is the one reported: a push or unlock that fails too
        (the endpoint went away) leaves local work for the rerun, which resumes it."""
        self.lock()
        failed = True
        try:
            self.pull()
            try:
                yield self.local
            except BaseException:
                with contextlib.suppress(Exception):
                    self.push()
                raise
            self.push()
            failed = False
        finally:
            if failed:
                with contextlib.suppress(Exception):
                    self.unlock()
            else:
                self.unlock()


def _change_token(info: dict[str, Any]) -> str:
    """What tells that an object changed: its ETag where the backend has one, else size and time."""
    for key in ("ETag", "etag", "md5", "checksum"):
        value = info.get(key)
        if value:
            return str(value).strip('"')
    stamp = info.get("LastModified") or info.get("mtime") or info.get("created") or ""
    return f"{info.get('size')}:{stamp}"
