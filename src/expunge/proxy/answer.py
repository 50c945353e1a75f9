"""The hotline's side: match a query package against its own lists and write an answer package.

The lists are read with the project's list readers into memory and never written anywhere. The answer
holds, per signal and recipe, only digests taken from the query itself (the query's own array is
indexed, never a list value), each with the label of the list that matched it, the list's category for
it when the list has categories (CSV), and for PDQ the Hamming distance to the nearest list hash within
the list's threshold. A list value that is not in the query never reaches the answer, not even as a
count: the manifest names the lists by label, signal, recipe and threshold only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from expunge import __version__
from expunge.errors import ExpungeError
from expunge.lists.readers import read_list, read_tokens
from expunge.matchers.exact import SortedSet
from expunge.matchers.hamming import HammingIndex
from expunge.proxy import package as pkg
from expunge.proxy.query import open_query, query_parts
from expunge.signals import get_signal

MAX_LABEL = 100
MAX_CATEGORY = 200
#: Rich markup would be read from these where the holder's CLI prints a bank's source.
_MARKUP = frozenset("[]\\")


def answer_schema(width: int) -> pa.Schema:
    """An answer part: a query digest, the list that matched it, the list's category, the distance."""
    return pa.schema(
        [
            pa.field("value", pa.binary(width), nullable=False),
            pa.field("bank", pa.string(), nullable=False),
            pa.field("category", pa.string()),
            pa.field("distance", pa.int16()),
        ]
    )


@dataclass(frozen=True)
class HotlineList:
    """``FILE:SIGNAL[:RECIPE]`` as given to ``proxy match --list``; its label is the file's stem."""

    path: Path
    signal: str | None
    recipe: str | None


@dataclass(frozen=True)
class _Loaded:
    label: str
    part: pkg.Part
    values: np.ndarray  # S{width}, in file order (duplicates possible)
    categories: list[str | None] | None  # per value, when the list has a category column
    threshold: int | None


@dataclass(frozen=True)
class AnswerResult:
    answer_id: str
    query_id: str
    out: Path
    matched: dict[str, int]  # distinct query digests matched, per signal:recipe
    by_list: dict[str, int]  # distinct query digests matched, per list label
    signed: bool
    query_signed: bool


def check_label(text: object, where: Path | str) -> str:
    """A list or hotline label: short printable text (it is shown and stored on the holder's side, and
    the hotline's becomes a bank's source, printed by ``lists ls``: no markup brackets)."""
    if (
        not isinstance(text, str)
        or not 0 < len(text) <= MAX_LABEL
        or not text.isprintable()
        or not _MARKUP.isdisjoint(text)
    ):
        raise ExpungeError(
            f"a label must be 1 to {MAX_LABEL} printable characters, without brackets or backslashes",
            where,
        )
    return text


def check_category(text: object) -> bool:
    """A list's category as an answer may carry it: short printable text (no control, format or line
    separator character: it is stored and may be shown on the holder's side). Both sides apply it, so
    the hotline is refused a list the holder would refuse the answer of."""
    return text is None or (isinstance(text, str) and len(text) <= MAX_CATEGORY and text.isprintable())


def _load(spec: HotlineList, label: str, threshold: int | None) -> _Loaded:
    tokens = read_tokens(spec.path)
    signal = spec.signal or tokens.signal
    if signal is None:
        raise ExpungeError("signal type unknown: give it (e.g. FILE:url_md5)", spec.path)
    if spec.signal is not None and tokens.signal not in (None, spec.signal):
        raise ExpungeError(
            f"the file names signal type {tokens.signal}, but {spec.signal} was asked for", spec.path
        )
    try:
        st = get_signal(signal)
    except KeyError as exc:
        raise ExpungeError(exc.args[0], spec.path) from None
    recipe = spec.recipe or st.default_recipe
    if recipe not in st.recipes:
        raise ExpungeError(
            f"recipe {recipe!r} does not apply to {signal} (use {' / '.join(st.recipes)})", spec.path
        )
    values = st.parse_values(tokens)
    if len(values) == 0:
        raise ExpungeError("the list holds no values (only comments, blank lines or a header?)", spec.path)
    categories = None
    if tokens.format == "csv" and tokens.categories:
        entries = read_list(spec.path, "csv").entries
        categories = [e.category for e in entries]
        if len(categories) != len(values):  # pragma: no cover - one reader under both
            raise ExpungeError("list changed while it was read", spec.path)
        bad = next((e.line for e in entries if not check_category(e.category)), None)
        if bad is not None:
            raise ExpungeError(
                f"a category must be at most {MAX_CATEGORY} printable characters",
                spec.path,
                f"line {bad}",
            )
    t = None
    if st.thresholded:  # --threshold applies to PDQ lists only
        t = st.default_threshold if threshold is None else threshold
        if t is None or not 0 <= t <= 128:
            raise ExpungeError("a Hamming threshold must be between 0 and 128", spec.path)
    # The query is in terms of features: a plaintext URL list is matched as SHA-256 of canonical URLs.
    p = pkg.Part(signal, recipe)
    return _Loaded(label, p, values, categories, t)


def _labels(specs: list[HotlineList]) -> list[str]:
    """Each list's label: its file's stem, made unique (``stem-2``...) when two files share one."""
    out: list[str] = []
    for spec in specs:
        base = check_label(spec.path.stem or "list", spec.path)
        label, n = base, 1
        while label in out:
            n += 1
            label = f"{base[: MAX_LABEL - 4]}-{n}"
        out.append(label)
    return out


def _exact(query: np.ndarray, lst: _Loaded) -> tuple[np.ndarray, list[str | None], np.ndarray | None]:
    """Query positions whose digest is in the list, and the list's category for each (the least one
    when the list gives it several)."""
    qset = SortedSet.build(query)  # the query is sorted and distinct
    hit = np.flatnonzero(qset.contains(lst.values))
    pos = np.searchsorted(query, lst.values[hit])
    return _per_position(pos, hit, lst, None)


def _per_position(
    pos: np.ndarray, idx: np.ndarray, lst: _Loaded, dist: np.ndarray | None
) -> tuple[np.ndarray, list[str | None], np.ndarray | None]:
    """One line per query position: the nearest match (then the least category) wins."""
    if len(pos) == 0:
        return np.empty(0, dtype=np.int64), [], None if dist is None else np.empty(0, dtype=np.int16)
    d = np.zeros(len(pos), dtype=np.int16) if dist is None else dist.astype(np.int16)
    if lst.categories is None:
        cats: list[str | None] = [None] * len(idx)
        rank = np.zeros(len(idx), dtype=np.int64)
    else:
        cats = [lst.categories[i] for i in idx.tolist()]
        names = sorted({c for c in cats if c is not None})
        code = {c: i for i, c in enumerate(names)}
        rank = np.array([code[c] if c is not None else len(names) for c in cats], dtype=np.int64)
    order = np.lexsort((rank, d, pos))
    first = order[np.concatenate(([True], pos[order][1:] != pos[order][:-1]))]
    return pos[first], [cats[k] for k in first.tolist()], None if dist is None else d[first]


def _hamming(query: np.ndarray, lst: _Loaded) -> tuple[np.ndarray, list[str | None], np.ndarray | None]:
    assert lst.threshold is not None
    index = HammingIndex.build(lst.values)
    qi, bi, dist = index.search(query, threshold=lst.threshold)
    return _per_position(qi, bi, lst, dist)


def match(
    query: Path,
    lists: list[HotlineList],
    out: Path,
    *,
    source: str = "hotline",
    threshold: int | None = None,
    sign_key: Path | None = None,
    pubkey: Path | None = None,
) -> AnswerResult:
    """Match a query package against ``lists`` and write the answer package to ``out``."""
    if not lists:
        raise ExpungeError("no lists given (use --list FILE:SIGNAL)")
    if threshold is not None and not 0 <= threshold <= 128:
        raise ExpungeError("a Hamming threshold must be between 0 and 128", "--threshold")
    check_label(source, "--source")
    pkg.check_out(out)
    opened = open_query(query, pubkey)
    labels = _labels(lists)
    loaded = [_load(spec, label, threshold) for spec, label in zip(lists, labels, strict=True)]
    features = {pkg.Part(e["signal"], e["recipe"]).feature for e in opened.manifest["signals"]}
    for lst in loaded:
        if lst.part.feature not in features:
            raise ExpungeError(
                f"the query holds no digests this list can be matched against ({lst.part.key})",
                lists[labels.index(lst.label)].path,
            )
    answer_id = pkg.new_id()
    query_id = str(opened.manifest["package_id"])
    matched: dict[str, int] = {}
    by_list = dict.fromkeys(labels, 0)
    with pkg.staged(out) as stage:
        entries = []
        for p, values in query_parts(opened):
            mine = [lst for lst in loaded if lst.part.feature == p.feature]
            if not mine:
                continue
            tables = []
            for lst in mine:
                pos, cats, dist = (_hamming if p.thresholded else _exact)(values, lst)
                by_list[lst.label] += len(pos)
                tables.append(
                    pa.table(
                        {
                            "value": pkg.binary_array(values[pos], p.width),
                            "bank": pa.array([lst.label] * len(pos), pa.string()),
                            "category": pa.array(cats, pa.string()),
                            "distance": pa.array(dist, pa.int16())
                            if dist is not None
                            else pa.nulls(len(pos), pa.int16()),
                        },
                        schema=answer_schema(p.width),
                    )
                )
            table = pa.concat_tables(tables).sort_by([("value", "ascending"), ("bank", "ascending")])
            path = stage / p.file
            pkg.write_table(path, table)
            distinct = len(np.unique(pkg.fixed_values(table.column("value"), p.width, stage, p.file)))
            entry = {"signal": p.signal, "recipe": p.recipe, "feature": p.feature, "width": p.width}
            entry.update({"matched": distinct, "rows": table.num_rows, **pkg.file_entry(path)})
            entries.append(entry)
            matched[p.key] = distinct
        manifest = {
            "format": pkg.ANSWER_FORMAT,
            "format_version": pkg.FORMAT_VERSION,
            "answer_id": answer_id,
            "query_id": query_id,
            "query_manifest_sha256": opened.sha256,
            "hotline": source,
            "tool_version": __version__,
            "lists": [
                {
                    "label": lst.label,
                    "signal": lst.part.signal,
                    "recipe": lst.part.recipe,
                    "threshold": lst.threshold,
                }
                for lst in loaded
            ],
            "signals": entries,
        }
        comment = f"expunge proxy answer answer_id={answer_id} query_id={query_id}"
        pkg.write_manifest(stage, pkg.ANSWER_MANIFEST, manifest, sign_key, comment)
    return AnswerResult(answer_id, query_id, out, matched, by_list, sign_key is not None, opened.signed)
