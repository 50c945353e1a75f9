"""The two packages of matching by proxy, on disk: a query (the holder's distinct digests) and an answer
(the hotline's matches among them).

A package is a folder with one manifest (``query.json`` or ``answer.json``), one parquet file per signal
and recipe, and optionally the manifest's minisign signature (``MANIFEST.minisig``). The manifest lists
every other file with its SHA-256 and size, so signing the manifest signs the package; reading a
package checks that the folder holds exactly those files with exactly those bytes, before any value is
read. Digests are stored as ``fixed_size_binary`` in the order of the bytes (sorted, distinct): that
order is a function of the set alone, so it says nothing of shards or rows, and it makes the file
smaller than the raw digests (byte-stream-split, zstd).

Errors name the package and the file, never a value.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from expunge import atomic
from expunge.arrow import read_parquet
from expunge.errors import ExpungeError
from expunge.features.base import parse_feature
from expunge.release import sign as release_sign
from expunge.signals import SIGNALS, get_signal
from expunge.signals.base import PlaintextSignal
from expunge.store import Store

QUERY_MANIFEST = "query.json"
ANSWER_MANIFEST = "answer.json"
SIG_SUFFIX = ".minisig"
QUERY_FORMAT = "expunge-proxy-query"
ANSWER_FORMAT = "expunge-proxy-answer"
FORMAT_VERSION = 1
#: Signals whose values can be matched by proxy: a digest (or PDQ hash) the index holds per row.
MATCHERS = ("exact", "hamming")
_ID = re.compile(r"^[0-9a-f]{32}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
#: A manifest lists a few files; anything larger is not one (and is not read into memory).
MAX_MANIFEST_BYTES = 1 << 20


def new_id() -> str:
    """A package id: 128 random bits, hex. It names a package, never the data in it."""
    return secrets.token_hex(16)


def is_id(text: object) -> bool:
    return isinstance(text, str) and _ID.fullmatch(text) is not None


@dataclass(frozen=True)
class Part:
    """One signal and recipe of a package: which feature of the index it is, and its file."""

    signal: str
    recipe: str

    @property
    def feature(self) -> str:
        return get_signal(self.signal).feature(self.recipe).name

    @property
    def width(self) -> int:
        return get_signal(self.signal).width

    @property
    def thresholded(self) -> bool:
        return get_signal(self.signal).matcher == "hamming"

    @property
    def file(self) -> str:
        return f"{self.signal}-{self.recipe}.parquet"

    @property
    def key(self) -> str:
        return f"{self.signal}:{self.recipe}"


def part(signal: str, recipe: str | None, where: str | Path | None = None) -> Part:
    """A signal (and recipe, else its default) that can go into a query; anything else is refused."""
    try:
        st = get_signal(signal)
    except KeyError as exc:
        raise ExpungeError(exc.args[0], where) from None
    plaintext = isinstance(st, PlaintextSignal)  # its list values are hashed on import, not hex digests
    if st.matcher not in MATCHERS or plaintext or parse_feature(st.feature(st.default_recipe).name).multi:
        raise ExpungeError(
            f"signal {signal} cannot be matched by proxy (digests and PDQ hashes of rows only)", where
        )
    recipe = recipe or st.default_recipe
    if recipe not in st.recipes:
        raise ExpungeError(
            f"recipe {recipe!r} does not apply to {signal} (use {' / '.join(st.recipes)})", where
        )
    return Part(signal, recipe)


def parse_signals(text: str) -> list[Part]:
    """``url_md5,url_sha1:canonical,image_md5,pdq`` → parts, each once, in the order given."""
    parts: list[Part] = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        name, _, recipe = item.partition(":")
        p = part(name, recipe or None, "--signals")
        if p in parts:
            raise ExpungeError(f"{p.key} is asked for twice", "--signals")
        parts.append(p)
    if not parts:
        raise ExpungeError(
            f"no signals given (e.g. url_md5,pdq; known: {', '.join(sorted(SIGNALS))})", "--signals"
        )
    return parts


# ---- files -----------------------------------------------------------------------------------------


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 22):
            h.update(block)
    return h.hexdigest()


def binary_array(values: np.ndarray, width: int) -> pa.Array:
    """An ``S{width}`` array as Arrow ``fixed_size_binary`` with every byte kept (zero-copy)."""
    buf = pa.py_buffer(np.ascontiguousarray(values).tobytes()) if len(values) else pa.py_buffer(b"")
    return pa.Array.from_buffers(pa.binary(width), len(values), [None, buf])


def write_table(path: Path, table: pa.Table) -> None:
    """Fixed settings (so the same values give the same bytes); digests split byte-stream-wise."""
    encodings = {f.name: "BYTE_STREAM_SPLIT" for f in table.schema if pa.types.is_fixed_size_binary(f.type)}
    pq.write_table(
        table,
        path,
        compression="zstd",
        use_dictionary=[f.name for f in table.schema if not pa.types.is_fixed_size_binary(f.type)],
        column_encoding=encodings or None,
        row_group_size=1 << 20,
        write_statistics=False,
        store_schema=False,
    )


_ROWS = "a parquet file's rows or metadata are not what the manifest says"


def read_table(path: Path, schema: pa.Schema, where: Path, rows: object) -> pa.Table:
    """A package's parquet file, refused unless it has exactly ``schema``, no key-value metadata (a
    package carries nothing its format does not name) and the ``rows`` its manifest says; the footer
    is checked before any column is read, so a file claiming more rows is not loaded."""
    if not isinstance(rows, int) or isinstance(rows, bool) or rows < 0:
        raise ExpungeError("malformed row count in the manifest", where, path.name)
    try:
        meta = pq.read_metadata(path)
        if meta.metadata or meta.num_rows != rows:
            raise ExpungeError(_ROWS, where, path.name)
        table = read_parquet(path)
    except (OSError, pa.ArrowException):
        raise ExpungeError("unreadable parquet file in the package", where, path.name) from None
    if not table.schema.equals(schema, check_metadata=False):
        raise ExpungeError("unexpected columns in the package's parquet file", where, path.name)
    if table.num_rows != rows:
        raise ExpungeError(_ROWS, where, path.name)
    return table


def fixed_values(column: pa.ChunkedArray | pa.Array, width: int, where: Path, name: str) -> np.ndarray:
    """A non-null ``fixed_size_binary`` column as ``S{width}`` (a null is refused)."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if arr.null_count:
        raise ExpungeError("a null digest in the package", where, name)
    if len(arr) == 0:
        return np.empty(0, dtype=f"S{width}")
    return np.frombuffer(
        arr.buffers()[1], dtype=f"S{width}", count=len(arr), offset=arr.offset * width
    ).copy()


def is_sorted_unique(values: np.ndarray) -> bool:
    return len(values) < 2 or bool(np.all(values[1:] > values[:-1]))


# ---- writing a package -----------------------------------------------------------------------------


def check_out(out: Path) -> None:
    """A package is never mixed with another: OUT must be absent or an empty folder."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise ExpungeError("output exists and is not a plain folder; refusing to write into it", out)
    if out.is_dir() and any(out.iterdir()):
        raise ExpungeError("output folder is not empty; refusing to mix packages", out)


@contextlib.contextmanager
def staged(out: Path) -> Iterator[Path]:
    """A hidden folder beside OUT to write the package in, renamed to OUT in one step on success: OUT
    is never seen half-written, and a failed write leaves nothing."""
    check_out(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = out.parent / f"{atomic.TMP_PREFIX}{out.name}.{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    try:
        os.mkdir(stage, 0o700)
        yield stage
        for p in stage.iterdir():
            with open(p, "rb+") as fh:
                os.fsync(fh.fileno())
        os.chmod(stage, 0o755)
        atomic.publish_folder(stage, out, "output folder")
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def file_entry(path: Path) -> dict[str, Any]:
    return {"file": path.name, "sha256": file_sha256(path), "bytes": path.stat().st_size}


def dumps(manifest: dict[str, Any]) -> bytes:
    """Deterministic JSON: the same package gives the same manifest bytes."""
    return (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8")


def write_manifest(
    folder: Path, name: str, manifest: dict[str, Any], sign_key: Path | None, comment: str
) -> bytes:
    """The manifest, and its minisign signature when a key is given; returns the manifest's bytes."""
    data = dumps(manifest)
    (folder / name).write_bytes(data)
    if sign_key is not None:
        (folder / (name + SIG_SUFFIX)).write_bytes(release_sign.sign(data, sign_key, comment))
    return data


# ---- reading a package -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Opened:
    """A package whose files all check out against its manifest (and its signature, if asked)."""

    folder: Path
    manifest: dict[str, Any]
    data: bytes  # the manifest's bytes
    signed: bool  # a signature was checked with the public key given

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def _load_manifest(folder: Path, name: str, fmt: str) -> tuple[dict[str, Any], bytes]:
    path = folder / name
    if not folder.is_dir():
        raise ExpungeError("not a folder", folder)
    if not path.is_file() or path.is_symlink():
        raise ExpungeError(f"not a proxy package (no {name})", folder)
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise ExpungeError("the manifest is too large to be one", path)
    data = path.read_bytes()
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ExpungeError("the manifest is not valid JSON", path) from None
    if not isinstance(manifest, dict) or manifest.get("format") != fmt:
        raise ExpungeError(f"not an {fmt} manifest", path)
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ExpungeError(f"unsupported package format version (this expunge reads {FORMAT_VERSION})", path)
    return manifest, data


def open_package(folder: Path, name: str, fmt: str, pubkey: Path | None) -> Opened:
    """Check a package before anything in it is used: the manifest, the signature when ``pubkey`` is
    given (a package without one is refused then), and that the folder holds exactly the files the
    manifest lists, with their SHA-256 and size. Any difference refuses the whole package."""
    manifest, data = _load_manifest(folder, name, fmt)
    sig = folder / (name + SIG_SUFFIX)
    # Nothing outside the folder is read as part of the package: a link anywhere in it is refused.
    if any(p.is_symlink() for p in folder.iterdir()):
        raise ExpungeError("a symbolic link in the package; refusing to follow it", folder)
    signed = False
    if pubkey is not None:
        if not sig.is_file():
            raise ExpungeError("the package is not signed, and a public key was given: refusing", folder)
        release_sign.verify(data, sig, pubkey)
        signed = True
    entries = manifest.get("signals")
    if not isinstance(entries, list):
        raise ExpungeError("the manifest lists no signals", folder / name)
    listed: dict[str, dict[str, Any]] = {}
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
            raise ExpungeError("malformed signal entry in the manifest", folder / name)
        fname = entry["file"]
        if "/" in fname or fname.startswith(".") or fname in listed or fname in (name, name + SIG_SUFFIX):
            raise ExpungeError("the manifest names a file it may not", folder / name)
        if not isinstance(entry.get("sha256"), str) or not _SHA256.fullmatch(entry["sha256"]):
            raise ExpungeError("malformed SHA-256 in the manifest", folder / name)
        listed[fname] = entry
    present = {p.name for p in folder.iterdir()}
    allowed = set(listed) | {name, name + SIG_SUFFIX}
    extra = sorted(present - allowed)
    if extra:
        raise ExpungeError(f"{len(extra)} file(s) in the package that its manifest does not list", folder)
    for fname, entry in listed.items():
        path = folder / fname
        if path.is_symlink() or not path.is_file():
            raise ExpungeError("a file the manifest lists is missing", folder, fname)
        if path.stat().st_size != entry.get("bytes") or file_sha256(path) != entry["sha256"]:
            raise ExpungeError(
                "a file differs from the manifest (changed after it was written)", folder, fname
            )
    return Opened(folder, manifest, data, signed)


def entry_part(entry: dict[str, Any], where: Path) -> Part:
    """The part a manifest entry describes; its file name and feature must be the ones it implies."""
    signal, recipe = entry.get("signal"), entry.get("recipe")
    if not isinstance(signal, str) or not isinstance(recipe, str):
        raise ExpungeError("malformed signal entry in the manifest", where)
    p = part(signal, recipe, where)
    if entry.get("file") != p.file or entry.get("feature") != p.feature or entry.get("width") != p.width:
        raise ExpungeError(f"the manifest's entry for {p.key} does not match its signal", where)
    return p


# ---- the holder's record of its queries (in the store, which is private) ------------------------------


def proxy_dir(store: Store) -> Path:
    """Where the store keeps every query it exported (a copy of the package) and the answers taken in."""
    return store.root / "proxy"


def query_record(store: Store, package_id: str) -> Path:
    return proxy_dir(store) / package_id


def record_file(store: Store, package_id: str) -> Path:
    """Beside the store's copy of a query: when it was exported (a later query's answer supersedes)."""
    return proxy_dir(store) / f"{package_id}.json"


def imports_file(store: Store) -> Path:
    """Which query each proxy bank's current version answers (so an older answer cannot undo a newer)."""
    return proxy_dir(store) / "imports.json"


def slug(text: str, limit: int) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")[:limit].strip("-") or "x"
