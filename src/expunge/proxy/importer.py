"""The holder's side, last step: take a hotline's answer in as banks, so the next clean removes the rows.

The answer is checked whole before anything is recorded: its files against its manifest, its signature
when a public key is given, that it answers a query this store exported (the store keeps a copy of
every query, ``proxy/ID/``) with that very manifest, and that every digest it names was in that query.
An answer that fails any check is refused whole: an answer naming digests the holder never asked about
is not an answer to this query.

Each signal and recipe of the answer becomes one bank (signal type and recipe from the query; source:
the hotline's label; version label: the answer's id), through the ordinary list import of a CSV file the
store keeps (``proxy/lists/BANK.csv``: hex digests and categories), so banks from answers have versions,
deltas and provenance like any other. PDQ banks get threshold 0: the answer names the holder's own
hashes, so only rows with exactly those hashes are meant.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from expunge import atomic
from expunge.errors import ExpungeError
from expunge.lists.bank import import_list, load_info
from expunge.matchers.exact import SortedSet
from expunge.proxy import package as pkg
from expunge.proxy.answer import MAX_CATEGORY, answer_schema, check_category, check_label
from expunge.proxy.query import open_query, query_parts
from expunge.store import Store


@dataclass(frozen=True)
class BankResult:
    name: str
    signal: str
    recipe: str
    count: int  # distinct digests in the bank's current version
    version: int
    unchanged: bool


@dataclass(frozen=True)
class AnswerImport:
    answer_id: str
    query_id: str
    hotline: str
    banks: list[BankResult]
    signed: bool


#: Every key an answer's manifest, its signal entries and its list entries may hold. The store keeps a
#: copy of the manifest: a key the format does not name could carry anything (even list values that
#: were never in the query), so it is refused, not kept.
_ANSWER_KEYS = {
    "format",
    "format_version",
    "answer_id",
    "query_id",
    "query_manifest_sha256",
    "hotline",
    "tool_version",
    "lists",
    "signals",
}
_ENTRY_KEYS = {"signal", "recipe", "feature", "width", "matched", "rows", "file", "sha256", "bytes"}
_LIST_KEYS = {"label", "signal", "recipe", "threshold"}


def _checked_answer(answer: Path, pubkey: Path | None) -> pkg.Opened:
    opened = pkg.open_package(answer, pkg.ANSWER_MANIFEST, pkg.ANSWER_FORMAT, pubkey)
    m = opened.manifest
    where = answer / pkg.ANSWER_MANIFEST
    lists_: list[Any] = m["lists"] if isinstance(m.get("lists"), list) else []
    if (
        set(m) - _ANSWER_KEYS
        or any(set(e) - _ENTRY_KEYS for e in m["signals"])  # dicts: open_package checked
        or any(isinstance(x, dict) and set(x) - _LIST_KEYS for x in lists_)
    ):
        raise ExpungeError("the answer's manifest holds keys its format does not name", where)
    if not isinstance(m.get("tool_version"), str) or len(m["tool_version"]) > 40:
        raise ExpungeError("malformed tool version in the answer's manifest", where)
    if not (pkg.is_id(m.get("answer_id")) and pkg.is_id(m.get("query_id"))):
        raise ExpungeError("malformed package ids in the answer's manifest", where)
    sha = m.get("query_manifest_sha256")
    if not isinstance(sha, str) or len(sha) != 64:
        raise ExpungeError("the answer's manifest does not name its query's manifest", where)
    check_label(m.get("hotline"), where)
    lists = m.get("lists")
    if not isinstance(lists, list) or not all(isinstance(x, dict) for x in lists):
        raise ExpungeError("the answer's manifest lists no lists", where)
    seen: set[str] = set()
    for x in lists:
        label = check_label(x.get("label"), where)
        if label in seen:
            raise ExpungeError("the answer's manifest names a list twice", where)
        seen.add(label)
        signal, recipe, t = x.get("signal"), x.get("recipe"), x.get("threshold")
        if not isinstance(signal, str) or not isinstance(recipe, str):
            raise ExpungeError("malformed list entry in the answer's manifest", where)
        p = pkg.part(signal, recipe, where)
        in_range = isinstance(t, int) and not isinstance(t, bool) and 0 <= t <= 128
        ok = in_range if p.thresholded else t is None
        if not ok:
            raise ExpungeError(f"malformed threshold for a {p.key} list in the answer's manifest", where)
    return opened


def _stored_query(store: Store, answer: pkg.Opened, query: Path | None) -> pkg.Opened:
    m = answer.manifest
    record = pkg.query_record(store, m["query_id"])
    if not (record / pkg.QUERY_MANIFEST).is_file():
        raise ExpungeError(
            f"the answer is to query {m['query_id']}, which this store did not export (or has forgotten)",
            answer.folder,
        )
    stored = open_query(record)
    if stored.sha256 != m["query_manifest_sha256"] or stored.manifest["package_id"] != m["query_id"]:
        raise ExpungeError("the answer names this store's query id but another query manifest", answer.folder)
    if query is not None:
        given = open_query(query)
        if given.sha256 != stored.sha256:
            raise ExpungeError("the query package given is not the one the answer answers", query)
    return stored


def _categories(cats: list[Any], where: Path, name: str) -> None:
    if not all(check_category(c) for c in set(cats)):
        raise ExpungeError(
            f"a malformed category in the answer (at most {MAX_CATEGORY} printable characters)", where, name
        )


def _answer_parts(
    answer: pkg.Opened, stored: pkg.Opened
) -> list[tuple[pkg.Part, np.ndarray, list[str | None]]]:
    """Every part of the answer, each checked against the stored query: (part, distinct digests, the
    category of each digest's first line)."""
    where = answer.folder
    queried = dict(query_parts(stored))
    labels = {x["label"]: x for x in answer.manifest["lists"]}
    out: list[tuple[pkg.Part, np.ndarray, list[str | None]]] = []
    seen: set[pkg.Part] = set()
    for entry in answer.manifest["signals"]:
        p = pkg.entry_part(entry, where / pkg.ANSWER_MANIFEST)
        if p in seen:
            raise ExpungeError(f"the answer lists {p.key} twice", where)
        seen.add(p)
        if p not in queried:
            raise ExpungeError(f"the answer holds {p.key} digests, which the query did not ask for", where)
        # At most one line per query digest and list: a manifest claiming more is refused unread.
        n_lists = sum(1 for x in labels.values() if pkg.part(x["signal"], x["recipe"]).feature == p.feature)
        rows = entry.get("rows")
        if isinstance(rows, int) and rows > len(queried[p]) * n_lists:
            raise ExpungeError("an answer part has more lines than the query has digests", where, p.file)
        table = pkg.read_table(where / p.file, answer_schema(p.width), where, rows)
        values = pkg.fixed_values(table.column("value"), p.width, where, p.file)
        if table.column("bank").null_count:
            raise ExpungeError("an answer line names no list", where, p.file)
        banks = table.column("bank").to_pylist()
        if any(b not in labels for b in set(banks)):
            raise ExpungeError("an answer line names a list the manifest does not", where, p.file)
        for b in set(banks):
            x = labels[b]
            try:
                feature = pkg.Part(str(x.get("signal")), str(x.get("recipe"))).feature
            except (KeyError, ExpungeError):
                feature = None
            if feature != p.feature:
                raise ExpungeError("an answer line names a list of another signal", where, p.file)
        dist = table.column("distance")
        if p.thresholded:
            if dist.null_count:
                raise ExpungeError("a PDQ answer line without a distance", where, p.file)
            d = dist.to_numpy()
            limits = np.array([labels[b]["threshold"] for b in banks], dtype=np.int64)
            if len(d) and (d.min() < 0 or np.any(d > limits)):
                raise ExpungeError("an answer line's distance exceeds its list's threshold", where, p.file)
        elif dist.null_count != len(dist):
            raise ExpungeError("a distance on an exact match", where, p.file)
        cats = table.column("category").to_pylist()
        _categories(cats, where, p.file)
        pairs = list(zip(values.tolist(), banks, strict=True))
        if len(set(pairs)) != len(pairs):
            raise ExpungeError("an answer line repeats", where, p.file)
        distinct = np.unique(values)
        if table.num_rows != entry.get("rows") or len(distinct) != entry.get("matched"):
            raise ExpungeError("an answer part's lines are not what its manifest says", where, p.file)
        inside = SortedSet.build(queried[p]).contains(distinct)
        if not inside.all():
            raise ExpungeError(
                f"{int((~inside).sum())} answered {p.key} digest(s) were not in the query: refusing the whole"
                " answer",
                where,
                p.file,
            )
        # One category per digest for the bank's record: the first line's (lines are sorted by value, list).
        first: dict[bytes, str | None] = {}
        for v, c in zip(values.tolist(), cats, strict=True):
            first.setdefault(v, c)
        out.append((p, values, [first[v] for v in distinct.tolist()]))
    return out


def _bank_names(answer: pkg.Opened, stored: pkg.Opened, parts: list[pkg.Part], name: str | None) -> list[str]:
    if name is None:
        ds = str(stored.manifest.get("dataset_id", ""))
        name = f"proxy-{pkg.slug(answer.manifest['hotline'], 16)}-{pkg.slug(ds.rsplit('-', 1)[-1], 12)}"
    if len(parts) == 1:
        return [name]
    return [f"{name}-{p.signal}-{p.recipe}" for p in parts]


def _list_file(store: Store, bank: str) -> Path:
    return pkg.proxy_dir(store) / "lists" / f"{pkg.slug(bank, 80)}.csv"


def _csv_text(values: np.ndarray, cats: list[str | None]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["hash", "category"])
    # Row by row from the raw bytes: a numpy element drops its trailing NUL bytes.
    width = values.dtype.itemsize
    rows = np.ascontiguousarray(values).view(np.uint8).reshape(-1, width)
    for v, c in zip(rows, cats, strict=True):
        w.writerow([v.tobytes().hex(), c or ""])
    return buf.getvalue()


def import_answer(
    store: Store,
    answer: Path,
    *,
    pubkey: Path | None = None,
    query: Path | None = None,
    name: str | None = None,
) -> AnswerImport:
    """Check ``answer`` whole, then record each of its parts as a bank version."""
    if name is not None:
        check_label(name, "--name")  # a bank name is printed as a label is (one line, no markup)
    opened = _checked_answer(answer, pubkey)
    stored = _stored_query(store, opened, query)
    parts = _answer_parts(opened, stored)
    names = _bank_names(opened, stored, [p for p, _, _ in parts], name)
    record = atomic.read_json(pkg.record_file(store, opened.manifest["query_id"]))
    exported = int(record["exported_ns"])
    imports_path = pkg.imports_file(store)
    imports: dict[str, Any] = atomic.read_json(imports_path) if imports_path.is_file() else {}
    answer_id = str(opened.manifest["answer_id"])
    for bank in names:
        origin = str(_list_file(store, bank).resolve())
        if store.bank_file(bank).is_file() and load_info(store, bank).origin != origin:
            raise ExpungeError(
                f"bank {bank!r} exists and does not hold proxy answers: give another --name", answer
            )
        last = imports.get(bank)
        if last is not None and int(last["exported_ns"]) > exported:
            raise ExpungeError(
                f"bank {bank!r} holds the answer to a later query; this older answer would undo its matches"
                " (give --name for a bank of its own)",
                answer,
            )
        if last is not None and answer_id != last["answer_id"] and answer_id in last.get("superseded", []):
            # A replayed answer: its signature still holds, but a later one replaced it in this bank.
            raise ExpungeError(
                f"bank {bank!r} took this answer in before and a later one since; importing it again would"
                " undo the later one (give --name for a bank of its own)",
                answer,
            )
    hotline = str(opened.manifest["hotline"])
    results: list[BankResult] = []
    for bank, (p, values, cats) in zip(names, parts, strict=True):
        path = _list_file(store, bank)
        atomic.write_bytes(path, _csv_text(values, cats).encode("utf-8"), store.tmp)
        res = import_list(
            store,
            path,
            bank,
            p.signal,
            p.recipe,
            hotline,
            answer_id,
            "csv",
            "hash",
            0 if p.thresholded else None,
            allow_empty=True,
        )
        last = imports.get(bank)
        superseded = list(last.get("superseded", [])) if last is not None else []
        if last is not None and last["answer_id"] != answer_id:
            superseded.append(last["answer_id"])
        imports[bank] = {
            "exported_ns": exported,
            "query_id": opened.manifest["query_id"],
            "answer_id": answer_id,
            "superseded": superseded,
        }
        results.append(BankResult(res.name, p.signal, p.recipe, res.count, res.version, res.unchanged))
    atomic.write_json(imports_path, imports, store.tmp)
    atomic.write_bytes(pkg.proxy_dir(store) / "answers" / f"{answer_id}.json", opened.data, store.tmp)
    return AnswerImport(answer_id, opened.manifest["query_id"], hotline, results, opened.signed)
