"""Line-oriented metadata as shards: ``.tsv``, ``.csv`` and ``.jsonl``, plain or ``.gz`` / ``.zst``.

Conceptual Captions (CC3M/CC12M: ``caption<TAB>url``, no header), RedCaps and many web crawls ship their
rows this way. A cleaned shard is the source minus whole records: every kept record, the header, blank
lines and the BOM are copied as the source's bytes (delimiter, quoting, line endings untouched), then
compressed as the source was, so a kept row is byte-identical and a shard that loses nothing is linked.

Decisions: TSV has no quoting (a ``"`` is data, as in CC3M); CSV follows RFC 4180 and a quoted field may
span lines (a record is read whole; a quote still open after ``MAX_RECORD`` bytes refuses the shard).
Text is UTF-8. Without a header, columns are named by 0-based position (``--url-column 1`` is CC3M's
URL) and the URL column is the one whose values mostly look like http(s) URLs. A first line is a header
only when it names a known URL column (``url``, ``URL``, ``image_url``, ...) and holds no URL: any other
first line is a row, so nothing is published unchecked. Empty lines are not rows and are kept. A row that
cannot be parsed (invalid UTF-8, wrong field count, bad quoting, bad JSON, not an object, a duplicate key)
has no URL: it is quarantined (``null_url``) and counted. Reads stream in blocks: memory is bounded by
the batch and the longest record, never by the file.
"""

from __future__ import annotations

import contextlib
import gzip
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from expunge import atomic, storage
from expunge.errors import ExpungeError
from expunge.formats.base import CleanRows, CleanTarget, Shard, ShardFormat, ShardOutputs
from expunge.formats.parquet import ColumnMap
from expunge.formats.paths import is_url, walk
from expunge.formats.text_read import (
    BLANK,
    MEDIA,
    _is_shard,
    _resolve,
    _show,
    count_rows,
    detect,
    iter_values,
    layout,
    records,
    split_name,
)


def rewrite(src: str, dst: Path, gone: Sequence[int]) -> int:
    """The source's bytes minus the records of rows ``gone``, compressed as the source; rows written."""
    lay = layout(src)
    drop = set(gone)
    row = written = 0
    seen_first = False
    with open(src, "rb") as fh:
        mtime = int.from_bytes(fh.read(8)[4:8], "little")  # gzip's header mtime, kept: reruns are identical
    with contextlib.ExitStack() as stack:
        sink: Any
        if lay.compression == "gzip":
            raw = stack.enter_context(open(dst, "wb"))
            sink = stack.enter_context(gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=mtime))
        elif lay.compression == "zstd":
            sink = stack.enter_context(pa.CompressedOutputStream(str(dst), "zstd"))
        else:
            sink = stack.enter_context(open(dst, "wb"))
        for data, what, _ in records(src, lay.kind, lay.compression):
            is_row = what != BLANK and not (lay.header and not seen_first)
            if what != BLANK:
                seen_first = True
            if is_row:
                row += 1
                if row - 1 in drop:
                    continue
                written += 1
            sink.write(data)
    return written


class TextFormat(ShardFormat):
    """TSV, CSV and JSONL metadata files (optionally gzip- or zstd-compressed), one shard each."""

    name = "text"
    requires_url = True
    media_type = "text/plain"

    def claims(self, specs: Sequence[str]) -> bool:
        try:
            _, found = walk(specs, _is_shard, "text")
        except ExpungeError:
            return False
        # walk takes a file named on the command line whatever its suffix: only text names count.
        return any(split_name(p) is not None for p in found)

    def discover(self, specs: Sequence[str]) -> tuple[str, list[Shard]]:
        remote = [s for s in specs if is_url(s)]
        if remote:
            raise ExpungeError(
                "text datasets (.tsv/.csv/.jsonl) on object storage are not supported yet: copy them locally",
                storage.redact(remote[0]),
            )
        root, found = walk(specs, _is_shard, "text")
        for p in found:
            if split_name(p) is None:
                raise ExpungeError("not a .tsv/.csv/.jsonl file (optionally .gz/.zst)", p)
        # Text shards beside parquet ones: publishing either kind unread would be a guess toward publishing.
        try:
            others = walk(specs, lambda f: f.endswith((".parquet", ".pq")), "parquet")[1]
        except ExpungeError:
            others = []
        if any(os.path.basename(p) != "removed.parquet" and not _is_shard(p) for p in others):
            raise ExpungeError("both text (.tsv/.csv/.jsonl) and parquet shards: give one kind", root)
        return root, [Shard(os.path.relpath(p, root).replace(os.sep, "/"), self.name, p, p) for p in found]

    def detect_columns(
        self,
        metadata: str,
        url: str | None = None,
        caption: str | None = None,
        key: str | None = None,
        *,
        require_url: bool = True,
    ) -> ColumnMap:
        return detect(metadata, url, caption, key, require_url)

    def shard_media_type(self, shard: Shard) -> str:
        kind, comp = split_name(shard.location) or ("", None)
        return f"application/{comp}" if comp else MEDIA.get(kind, self.media_type)

    def record_columns(self, shard: Shard) -> list[tuple[str, str]] | None:
        return None  # croissant's record set describes parquet shards only

    def content_files(self, shard: Shard) -> list[str]:
        return [shard.location]

    def rows(self, shard: Shard) -> int:
        return count_rows(shard.location)

    def column_names(self, shard: Shard) -> list[str]:
        return list(layout(shard.location).columns)

    def iter_column(self, shard: Shard, column: str) -> Iterator[pa.Array]:
        return iter_values(shard.location, column)

    def check_url_column(self, shard: Shard, column: str) -> None:
        lay = layout(shard.location)
        if lay.kind == "jsonl" or lay.header or not lay.columns:
            return
        column = _resolve(lay, column, shard.location)
        url_at = lay.url_by_values
        if url_at and column not in url_at:
            raise ExpungeError(
                f"this shard's URLs are in column {_show(url_at)}, not {_show([column])}", shard.location
            )

    def iter_text(self, shard: Shard, column: str) -> Iterator[pa.Array]:
        return iter_values(shard.location, column, text=True)

    def outputs(self, shard: Shard, target: CleanTarget, drop_keys: frozenset[str]) -> ShardOutputs:
        return ShardOutputs([target.out], [target.out])

    def write_clean(self, shard: Shard, target: CleanTarget, rows: CleanRows) -> str:
        if not rows.gone:
            return atomic.copy_or_link(Path(shard.location), target.out, target.tmp_dir)
        with atomic.atomic_path(target.out, target.tmp_dir) as tmp:
            written = rewrite(shard.location, tmp, rows.gone)
        if written != rows.rows_in - len(rows.gone):
            raise RuntimeError(
                f"{shard.name}: wrote {written} rows, expected {rows.rows_in - len(rows.gone)}"
            )
        return "rewritten"

    def owns_release_shard(self, release: Path, name: str) -> bool:
        return split_name(name) is not None and (release / name).is_file()

    def release_files(self, release: Path, name: str) -> tuple[list[str], int | None]:
        main = release / name
        if not main.is_file():
            return [str(main)], None
        try:
            return [str(main)], count_rows(str(main))
        except ExpungeError:
            return [str(main)], -1
