"""Reading and writing a Location, local or remote, with the guarantees the pipeline relies on.

- Every write becomes visible through one final operation, so a reader sees the old object, the whole
  new one, or nothing: locally temp + fsync + rename (``expunge.atomic``); on an object store a single
  PUT, or the completion of a multipart upload. An object store stores an object under its key only
  when that request completes, and a half-sent PUT or an uncompleted multipart upload is never listed
  or readable under the key: this is why no rename is needed there.
- Copies inside one object store are server-side (``CopyObject`` / ``UploadPartCopy``): the bytes never
  pass through this process.
- The lock primitive is a conditional write (:func:`create_if_absent`); a backend without one refuses.
- Failures are one line naming the redacted URL (``storage.errors``).

``fsspec``, ``s3fs`` and Arrow's S3 layer are imported inside the functions that need them, so that
importing this module (and starting the CLI) costs nothing when every path is local.

Endpoints and credentials are never passed through here by value except the S3 endpoint, read from
``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` as botocore reads them; credentials come from the
backends' own chains (environment, profiles, instance roles).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from expunge.atomic import TMP_PREFIX, atomic_path, fsync_dir
from expunge.atomic import write_bytes as _atomic_write_bytes
from expunge.errors import ExpungeError
from expunge.storage.errors import BUCKET_NOT_FOUND, storage_errors, to_expunge_error
from expunge.storage.location import LOCAL, Location, parse, redact

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.fs as pafs

# The package a user installs for each protocol (fsspec itself comes with every one of them).
_PACKAGES = {"s3": "s3fs", "gs": "gcsfs", "az": "adlfs", "abfs": "adlfs", "hf": "huggingface_hub"}

_cache: dict[tuple[str, ...], Any] = {}
_cache_lock = threading.Lock()


def clear_cache() -> None:
    """Forget every filesystem object made so far.

    Filesystems keep connection pools; after the endpoint changed (or a test server was stopped and
    started again) the old pools would fail or talk to the wrong place. Called by the test fixture
    around every test; the pipeline may call it when a run starts.
    """
    with _cache_lock:
        _cache.clear()


def s3_endpoint() -> str | None:
    """The S3 endpoint botocore would use from the environment: the service-specific variable first."""
    if os.environ.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "").lower() == "true":
        return None
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def _cached(key: tuple[str, ...], make: Any) -> Any:
    # Keyed by process too: a connection pool (and fsspec's event loop thread) does not survive a fork,
    # and a forked worker must make its own.
    key = (str(os.getpid()), *key)
    with _cache_lock:
        made = _cache.get(key)
        if made is None:
            made = _cache[key] = make()
        return made


def _missing_backend(loc: Location) -> ExpungeError:
    package = _PACKAGES.get(loc.protocol, "fsspec")
    return ExpungeError(
        f"{loc.protocol}:// needs the {package} package (pip install 'expunge[remote]' {package})",
        loc.redacted(),
    )


def filesystem(loc: Location | str | Path) -> Any:
    """The ``fsspec.AbstractFileSystem`` for ``loc``'s protocol (and, for S3, the current endpoint).

    Listing caches are off for S3: another worker may have written since, and a stale listing must
    never decide what is present. fsspec's own instance cache is skipped so :func:`clear_cache` really
    drops the connection pools.
    """
    loc = parse(loc)
    endpoint = s3_endpoint() if loc.protocol == "s3" else None

    def make() -> Any:
        try:
            import fsspec  # type: ignore[import-untyped]
        except ImportError:
            raise _missing_backend(loc) from None
        options: dict[str, Any] = {}
        if loc.protocol == "s3":
            options = {"use_listings_cache": False, "skip_instance_cache": True}
            if endpoint:
                options["client_kwargs"] = {"endpoint_url": endpoint}
        elif loc.protocol != LOCAL:
            options = {"skip_instance_cache": True}
        try:
            return fsspec.filesystem(loc.protocol, **options)
        except ImportError:
            raise _missing_backend(loc) from None

    return _cached(("fsspec", loc.protocol, endpoint or ""), make)


def _arrow_s3(loc: Location) -> pafs.FileSystem:
    from urllib.parse import urlsplit

    import pyarrow.fs as pafs

    endpoint = s3_endpoint()
    options: dict[str, Any] = {}
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if endpoint:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ExpungeError("AWS_ENDPOINT_URL is not an http(s) URL", redact(endpoint))
        host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
        options = {"endpoint_override": host, "scheme": parts.scheme}
    elif region is None:
        # Arrow does not follow AWS's redirect to a bucket's region by itself: ask once per bucket.
        bucket = loc.path.split("/", 1)[0]
        with contextlib.suppress(OSError):
            region = pafs.resolve_s3_region(bucket)
    if region:
        options["region"] = region
    # botocore's retry budget, so both clients give up alike (Arrow ignores the variable itself).
    attempts = os.environ.get("AWS_MAX_ATTEMPTS", "")
    if attempts.isdigit() and int(attempts) > 0:
        options["retry_strategy"] = pafs.AwsStandardS3RetryStrategy(max_attempts=int(attempts))
    key = ("arrow", "s3", endpoint or "", region or "", attempts)
    made: pafs.FileSystem = _cached(key, lambda: pafs.S3FileSystem(**options))
    return made


def arrow_filesystem(loc: Location | str | Path) -> tuple[pafs.FileSystem, str]:
    """A pyarrow filesystem and the path to give it: Arrow's own C++ S3 client for ``s3://`` (faster
    than going through Python), the local filesystem for paths, and fsspec wrapped for the rest."""
    import pyarrow.fs as pafs

    loc = parse(loc)
    if loc.is_local:
        return pafs.LocalFileSystem(), loc.path
    if loc.protocol == "s3":
        return _arrow_s3(loc), loc.path
    fs = filesystem(loc)
    wrapped = _cached(
        ("arrow", loc.protocol, s3_endpoint() or ""),
        lambda: pafs.PyFileSystem(pafs.FSSpecHandler(fs)),
    )
    return wrapped, str(fs._strip_protocol(loc.url))


def _diagnosed(loc: Location, exc: BaseException) -> ExpungeError:
    """Arrow reports a missing bucket as a missing file; say which it is (one more request, on the
    error path only)."""
    error = to_expunge_error(exc, loc)
    if loc.protocol == "s3" and isinstance(exc, FileNotFoundError):
        bucket = Location("s3", loc.path.split("/", 1)[0])
        with contextlib.suppress(Exception):
            if not filesystem(bucket).exists(bucket.url):
                return ExpungeError(BUCKET_NOT_FOUND, loc.redacted())
    return error


def open_input(loc: Location | str | Path) -> pa.NativeFile:
    """A random-access file for ``pq.ParquetFile`` and tar readers: reads become ranged GETs, so
    reading one column fetches that column's pages and the footer, not the object.

    Errors while opening are one line; reads afterwards may raise backend errors, which callers wrap
    in :func:`storage.errors.storage_errors`.
    """
    loc = parse(loc)
    fs, path = arrow_filesystem(loc)
    try:
        return fs.open_input_file(path)
    except ExpungeError:
        raise
    except Exception as exc:
        raise _diagnosed(loc, exc) from None


def _hidden(name: str) -> bool:
    return name.startswith((".", "_"))


def _remote_location(loc: Location, path: str) -> Location:
    return Location(loc.protocol, path.strip("/"))


def _keys_below(loc: Location) -> list[tuple[str, str]]:
    """Every object at or below a remote ``loc``: ``(key, path below loc)`` ("" for ``loc`` itself)."""
    fs = filesystem(loc)
    root = str(fs._strip_protocol(loc.url)).strip("/")
    out: list[tuple[str, str]] = []
    for key in fs.find(loc.url, withdirs=False):
        key = str(key).strip("/")
        if key == root:
            out.append((key, ""))
        elif key.startswith(root + "/"):
            out.append((key, key[len(root) + 1 :]))
    return out


def _local_start(loc: Location) -> list[Location] | None:
    """A local ``loc`` that is a file is itself; a missing one is refused; a folder is walked (None)."""
    if os.path.isfile(loc.path):
        return [loc]
    if not os.path.isdir(loc.path):
        raise ExpungeError("not found", loc.redacted())
    return None


def walk(loc: Location | str | Path) -> list[Location]:
    """Every file at or below ``loc``, sorted: a file is itself; a folder (prefix) is walked recursively.

    Hidden and ``_`` folders hold tool state (``.expunge``, Spark's ``_temporary``), not data, and are
    skipped like ``formats.paths.walk`` does; hidden files are skipped too, because on an object store
    the temporaries of unfinished writes are hidden keys beside their destination. A missing local
    path is an error; a remote prefix with nothing under it is empty (object stores have no folders).
    """
    loc = parse(loc)
    with storage_errors(loc):
        if loc.is_local:
            start = _local_start(loc)
            if start is not None:
                return start
            found: list[str] = []
            for dirpath, dirnames, filenames in os.walk(loc.path):
                dirnames[:] = [d for d in dirnames if not d.startswith((".", "_"))]
                found.extend(os.path.join(dirpath, f) for f in filenames if not f.startswith("."))
            return [Location(LOCAL, p) for p in sorted(found)]
        out: list[Location] = []
        for key, below in _keys_below(loc):
            if below:
                *folders, name = below.split("/")
                if name.startswith(".") or any(_hidden(f) for f in folders):
                    continue
            out.append(_remote_location(loc, key))
        return sorted(out, key=lambda x: x.path)


def walk_all(loc: Location | str | Path) -> list[Location]:
    """Every file at or below ``loc``, sorted, hidden and ``_`` names included: what ``verify`` must
    account for, since a file nobody listed is a problem whatever its name. Locally, symbolic links
    are listed, never followed (a link to a folder is not walked into); remote prefixes list every
    object.
    """
    loc = parse(loc)
    with storage_errors(loc):
        if loc.is_local:
            start = _local_start(loc)
            if start is not None:
                return start
            found: list[str] = []
            for dirpath, dirnames, filenames in os.walk(loc.path, followlinks=False):
                found.extend(os.path.join(dirpath, f) for f in filenames)
                # a link to a folder is an entry too (listed, not walked into)
                found.extend(
                    os.path.join(dirpath, d) for d in dirnames if os.path.islink(os.path.join(dirpath, d))
                )
            return [Location(LOCAL, p) for p in sorted(found)]
        return sorted((_remote_location(loc, key) for key, _ in _keys_below(loc)), key=lambda x: x.path)


def listdir(loc: Location | str | Path) -> list[Location]:
    """The files directly in folder ``loc`` (not below), sorted, hidden files skipped."""
    loc = parse(loc)
    with storage_errors(loc):
        if loc.is_local:
            with os.scandir(loc.path) as entries:
                names = [e.path for e in entries if e.is_file() and not e.name.startswith(".")]
            return [Location(LOCAL, p) for p in sorted(names)]
        fs = filesystem(loc)
        out = [
            _remote_location(loc, str(info["name"]))
            for info in fs.ls(loc.url, detail=True)
            if info.get("type") == "file"
        ]
        return sorted((x for x in out if not x.name.startswith(".")), key=lambda x: x.path)


def exists(loc: Location | str | Path) -> bool:
    """Whether a file (or, remotely, anything under the prefix) is there. A missing bucket is
    ``False``; a denied or unreachable one is an error, never ``False`` (that could lead a caller to
    write where it must not, or to skip what it must check)."""
    loc = parse(loc)
    with storage_errors(loc):
        if loc.is_local:
            return os.path.exists(loc.path)
        try:
            filesystem(loc).info(loc.url)
        except FileNotFoundError:
            return False
        return True


def size(loc: Location | str | Path) -> int:
    loc = parse(loc)
    with storage_errors(loc):
        if loc.is_local:
            return os.path.getsize(loc.path)
        return int(filesystem(loc).info(loc.url)["size"])


def read_bytes(loc: Location | str | Path) -> bytes:
    loc = parse(loc)
    with storage_errors(loc):
        if loc.is_local:
            return Path(loc.path).read_bytes()
        data: bytes = filesystem(loc).cat_file(loc.url)
        return data


def put_bytes(loc: Location | str | Path, data: bytes) -> None:
    """Write ``data`` to ``loc``, visible only once complete (see the module docstring for why one PUT
    or one multipart completion is atomic for readers)."""
    loc = parse(loc)
    with storage_errors(loc):
        if loc.is_local:
            _atomic_write_bytes(Path(loc.path), data)
            return
        filesystem(loc).pipe_file(loc.url, bytes(data))


def _copy_local(src: Path, final: Path) -> None:
    with atomic_path(final) as tmp:
        shutil.copyfile(src, tmp)


def put_file(local_path: str | Path, loc: Location | str | Path) -> None:
    """Upload a local file, visible only once complete: one PUT, or a multipart upload that s3fs
    completes at the end (and aborts on failure, so no part is ever readable under the key)."""
    loc = parse(loc)
    with storage_errors(loc):
        if loc.is_local:
            _copy_local(Path(local_path), Path(loc.path))
            return
        filesystem(loc).put_file(str(local_path), loc.url)


def download(src: Location | str | Path, final: Path, tmp_dir: Path | None = None) -> None:
    """A remote object as the local file ``final``, which appears whole or not at all (temporaries in
    ``tmp_dir``, else beside ``final``)."""
    src = parse(src)
    with storage_errors(src), atomic_path(final, tmp_dir) as tmp:
        filesystem(src).get_file(src.url, str(tmp))


def _same_store(src: Location, dst: Location) -> bool:
    if src.protocol != dst.protocol or src.is_local:
        return False
    return bool(filesystem(src) is filesystem(dst))


def copy(src: Location | str | Path, dst: Location | str | Path) -> None:
    """Place an exact copy of ``src`` at ``dst``, atomically for readers of ``dst``.

    Inside one object store the copy is server-side (S3 ``CopyObject``, or ``UploadPartCopy`` parts
    completed at once above 5 GB): nothing is downloaded. Across stores the object goes through a local
    temporary file, then one upload.
    """
    src, dst = parse(src), parse(dst)
    if src == dst:
        return  # S3 refuses a copy onto itself; the bytes are already there
    where = src if not src.is_local else dst
    with storage_errors(where):
        if src.is_local and dst.is_local:
            _copy_local(Path(src.path), Path(dst.path))
        elif _same_store(src, dst):
            with storage_errors(src):
                filesystem(src).cp_file(src.url, dst.url)
        elif src.is_local:
            with storage_errors(dst):
                filesystem(dst).put_file(src.path, dst.url)
        elif dst.is_local:
            download(src, Path(dst.path))
        else:
            with tempfile.TemporaryDirectory(prefix=TMP_PREFIX) as scratch:
                staged = Path(scratch) / "object"
                with storage_errors(src):
                    filesystem(src).get_file(src.url, str(staged))
                with storage_errors(dst):
                    filesystem(dst).put_file(str(staged), dst.url)


def delete(loc: Location | str | Path) -> None:
    """Remove one file or object; one that is already gone is not an error (reruns delete again)."""
    loc = parse(loc)
    with storage_errors(loc):
        if loc.is_local:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(loc.path)
            return
        with contextlib.suppress(FileNotFoundError):
            filesystem(loc).rm_file(loc.url)


def _create_local(path: Path, data: bytes) -> bool:
    """Write to a temporary, then hard-link it to the final name: ``link`` fails if the name exists,
    and the name appears with its full content (``O_EXCL`` alone would show an empty file first)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f"{TMP_PREFIX}{path.name}.{os.getpid()}.{threading.get_ident()}"
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.EXDEV):
                raise
            return _create_excl(path, data)
        fsync_dir(path.parent)
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _create_excl(path: Path, data: bytes) -> bool:
    """For filesystems without hard links: ``O_CREAT | O_EXCL`` (the content follows the name)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    fsync_dir(path.parent)
    return True


def _is_conflict(exc: BaseException) -> bool:
    """S3's answer when two conditional writes of one key race (409): the other writer won."""
    for link in (exc, exc.__cause__, exc.__context__):
        response = getattr(link, "response", None)
        if isinstance(response, dict) and response.get("Error", {}).get("Code") in (
            "ConditionalRequestConflict",
            "PreconditionFailed",
        ):
            return True
    return False


def create_if_absent(loc: Location | str | Path, data: bytes) -> bool:
    """Write ``data`` at ``loc`` only if nothing is there: ``True`` if this call created it, ``False``
    if it already existed (or a concurrent writer won). The store's lock is built on this.

    S3 uses ``PutObject`` with ``If-None-Match: *``. A backend without a conditional write refuses
    rather than pretending: two runs racing on one store would corrupt it.
    """
    loc = parse(loc)
    with storage_errors(loc):
        if loc.is_local:
            return _create_local(Path(loc.path), bytes(data))
        if loc.protocol != "s3":
            raise ExpungeError(
                f"{loc.protocol}:// does not support conditional writes; refusing to run without a lock "
                "(put the store on a local path or s3://)",
                loc.redacted(),
            )
        try:
            filesystem(loc).pipe_file(loc.url, bytes(data), mode="create")
        except FileExistsError:
            return False
        except OSError as exc:
            if _is_conflict(exc):
                return False
            raise
        return True


def iter_chunks(loc: Location | str | Path, chunk: int = 8 << 20) -> Iterator[bytes]:
    """Stream an object in chunks (for hashing a remote file without holding it in memory)."""
    loc = parse(loc)
    with storage_errors(loc):
        if loc.is_local:
            with open(loc.path, "rb") as fh:
                while block := fh.read(chunk):
                    yield block
            return
        with filesystem(loc).open(loc.url, "rb", block_size=chunk) as fh:
            while block := fh.read(chunk):
                yield block


class ObjectStat(NamedTuple):
    """What one metadata request says about an object, without reading it."""

    size: int
    #: The backend's tag for this object's content (S3/Azure ETag, GCS generation, Hub blob id), quotes
    #: removed; a rewrite of the object changes it. None locally, or when the backend has none.
    tag: str | None
    #: The backend's modification time as text, when it has one (a weaker change signal than ``tag``).
    modified: str | None


# fsspec ``info`` keys holding a content tag, most specific first (s3fs, adlfs, gcsfs, huggingface_hub).
_TAG_KEYS = ("ETag", "etag", "generation", "blob_id")
_MODIFIED_KEYS = ("LastModified", "last_modified", "mtime", "updated", "created")


def stat(loc: Location | str | Path) -> ObjectStat:
    """Size and content tag of one file from one metadata request (a HEAD on S3): how an index
    recognises an unchanged remote shard without downloading it. Locally the tag is None (callers
    hash local files, which is cheap) and ``modified`` is the mtime in nanoseconds."""
    loc = parse(loc)
    with storage_errors(loc):
        if loc.is_local:
            st = os.stat(loc.path)
            if not os.path.isfile(loc.path):
                raise IsADirectoryError(loc.path)
            return ObjectStat(st.st_size, None, str(st.st_mtime_ns))
        info = filesystem(loc).info(loc.url)
        if info.get("type") != "file":
            raise IsADirectoryError(loc.url)
        tag = next((str(info[k]).strip('"') for k in _TAG_KEYS if info.get(k)), None)
        modified = next((str(info[k]) for k in _MODIFIED_KEYS if info.get(k)), None)
        return ObjectStat(int(info["size"]), tag or None, modified)
