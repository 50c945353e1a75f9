"""Planning triage: what a clean needs beyond its hash banks, and running the dataset-wide parts.

A :class:`TriageRun` is the policy a clean runs under, with the keyword lists, negative banks and
review queue it refers to. :func:`check_available` refuses a policy whose inputs the dataset lacks
before any work (a score column that is not there, keyword lists without captions, neighbours without
embeddings). :func:`soft_tasks` plans the per-shard soft stage (``stages/soft.py``);
:func:`neighbours` seeds the expansion in embedding space from the hash-list findings and confirmed
verdicts and writes the dataset's neighbour findings; :func:`shard_triage` gives each clean task its
part.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from expunge import atomic
from expunge.errors import ExpungeError
from expunge.lists.bank import BankInfo
from expunge.match.stage import read_findings
from expunge.policy.parse import Policy
from expunge.stages import done
from expunge.stages.base import DatasetView
from expunge.stages.decide import NegativeRef, ReviewRows, ShardTriage, _cancel
from expunge.stages.soft import SoftTask
from expunge.store import Store

if TYPE_CHECKING:
    from expunge.review.queue import ReviewQueue
    from expunge.signals.keyword import TermList


@dataclass(frozen=True)
class TriageRun:
    policy: Policy
    keywords: tuple[tuple[str, TermList], ...] = ()  # (list name = file stem, terms)
    negatives: tuple[BankInfo, ...] = ()
    review: ReviewQueue | None = None

    @property
    def negative_refs(self) -> tuple[NegativeRef, ...]:
        return tuple(NegativeRef(b.name, b.version, b.feature) for b in self.negatives)

    def public(self) -> dict[str, object]:
        """What the manifest says of the triage: the policy, the keyword lists (name, file SHA-256 and
        number of terms, never a term) and the negative banks' provenance."""
        return {
            "policy": self.policy.public(),
            "keyword_lists": [
                {"name": n, "sha256": t.sha256, "terms": len(t.terms)} for n, t in self.keywords
            ],
            "negative_banks": [b.public() for b in self.negatives],
            **({"nsfw_model": _nsfw_model()} if self.policy.uses("nsfw") else {}),
        }


def _nsfw_model() -> dict[str, str]:
    """Which model scored nudity: a release says what decided its rows."""
    from expunge.signals import nsfw

    return {"name": nsfw.MODEL_NAME, "sha256": nsfw.model_sha256()}


def load_keywords(paths: tuple[Path, ...]) -> tuple[tuple[str, TermList], ...]:
    from expunge.signals.keyword import read_terms

    out: dict[str, TermList] = {}
    for path in paths:
        name = path.stem
        if name in out:
            raise ExpungeError("two keyword lists share a name (the file stem): rename one", path)
        out[name] = read_terms(path)
    return tuple(sorted(out.items()))


def check_available(ds: DatasetView, run: TriageRun, banks: list[BankInfo]) -> None:
    """Refuse a policy whose inputs the dataset or the run does not have, naming what is missing."""
    policy = run.policy
    names = {n for n, _ in run.keywords}
    for ref in policy.keyword_refs():
        if ref is None and not names:
            raise ExpungeError(
                f"policy {policy.name!r} uses keyword lists: give one with --keywords FILE", policy.source
            )
        if ref is not None and ref not in names:
            raise ExpungeError(
                f"policy {policy.name!r} uses keyword list {ref!r}: no --keywords file has that name",
                policy.source,
            )
    bank_names = {b.name for b in banks}
    for ref in policy.bank_refs():
        if ref is not None and ref not in bank_names:
            raise ExpungeError(
                f"policy {policy.name!r} names bank {ref!r}, which this run does not use", policy.source
            )
    if policy.neighbour is not None:
        for seed in policy.neighbour.seeds:
            if seed.startswith("bank.") and seed[5:] not in bank_names:
                raise ExpungeError(
                    f"policy {policy.name!r} seeds from bank {seed[5:]!r}, which this run does not use",
                    policy.source,
                )
    from expunge.signals.soft import split_ref

    for ref in policy.value_refs():
        try:
            sig, param = split_ref(ref)
        except KeyError as exc:
            raise ExpungeError(f"policy {policy.name!r}: {exc.args[0]}", policy.source) from None
        sig.check(ds, param)
    if policy.keyword_refs() and not ds.columns.caption:
        raise ExpungeError(
            "the policy uses keyword lists, but the dataset has no caption column (give --caption-column)",
            ds.root,
        )


def soft_tasks(store: Store, ds: DatasetView, run: TriageRun) -> list[SoftTask]:
    """One task per shard when the policy compares a value measured per shard or uses keyword lists."""
    from expunge.signals.soft import split_ref

    policy = run.policy
    values = []
    for ref, lowest in policy.value_refs().items():
        sig, _param = split_ref(ref)
        if sig.scope == "shard":
            values.append((ref, lowest, sig.fingerprint()))
    keywords = run.keywords if policy.keyword_refs() else ()
    if not values and not keywords:
        return []
    tasks = []
    for shard in ds.shards:
        out, state = store.soft_findings(ds.id, shard.name)
        tasks.append(
            SoftTask(
                shard=shard,
                shard_sha256=ds.state[shard.name]["sha256"],
                index_dir=str(store.index_dir(ds.id, shard.name)),
                out_path=str(out),
                state_path=str(state),
                tmp_dir=str(store.tmp),
                values=tuple(values),
                caption_column=ds.columns.caption,
                keywords=keywords,
            )
        )
    return tasks


def _embeddings(ds: DatasetView, shard_name: str) -> np.ndarray:
    """The shard's image embeddings (``img_emb`` when there are several kinds), memory-mapped."""
    from expunge.formats.embeddings import check_aligned, find_aligned

    shard = next(s for s in ds.shards if s.name == shard_name)
    found = find_aligned(shard.metadata, ds.root) if shard.metadata else []
    if not found:
        raise ExpungeError(
            "the policy uses neighbour, but this shard has no aligned embeddings (img_emb/*.npy)",
            shard.location,
        )
    emb = next((e for e in found if e.kind == "img_emb"), found[0])
    check_aligned(emb, int(ds.state[shard_name]["rows"]))
    arr: np.ndarray = np.load(emb.path, mmap_mode="r")
    return arr


def seeds(store: Store, ds: DatasetView, banks: list[BankInfo], run: TriageRun) -> dict[str, np.ndarray]:
    """Seed rows per shard: rows found by the seeding banks (after negative banks) and rows a hotline
    confirmed."""
    spec = run.policy.neighbour
    assert spec is not None
    use_all = "bank" in spec.seeds
    named = {s[5:] for s in spec.seeds if s.startswith("bank.")}
    chosen = [b for b in banks if use_all or b.name in named]
    features = {b.name: b.feature for b in chosen}
    triage = ShardTriage(run.policy, negatives=run.negative_refs, store_root=str(store.root))
    confirmed = run.review.confirmed() if run.review is not None and "confirmed" in spec.seeds else {}
    stale = stale_shards(store, ds, run)
    out: dict[str, np.ndarray] = {}
    for shard in ds.shards:
        rows: list[np.ndarray] = []
        if chosen:
            findings = read_findings(store.findings(ds.id, shard.name)[0])
            if findings.num_rows:
                mask = np.isin(findings.column("bank").to_numpy(zero_copy_only=False), list(features))
                findings = _cancel(findings.filter(pa.array(mask)), features, triage, {})
                rows.append(findings.column("row").to_numpy())
        if shard.name in confirmed and shard.name not in stale:
            # A stale shard's verdicts name rows of its old content: never a seed here.
            rows.append(np.asarray(confirmed[shard.name], dtype=np.int64))
        if rows:
            got = np.unique(np.concatenate(rows))
            if len(got):
                out[shard.name] = got
    return out


def neighbours(
    store: Store, ds: DatasetView, banks: list[BankInfo], run: TriageRun
) -> tuple[Path | None, dict[str, int]]:
    """Expand the seeds to their neighbours in embedding space; the dataset's neighbour findings file
    (None when the policy uses no neighbours) and what was done."""
    bind_review(store, ds, run)  # the triage stage runs before every clean that reads the queue
    spec = run.policy.neighbour
    if spec is None or not run.policy.uses("neighbour"):
        return None, {}
    from expunge.signals.neighbour import NeighbourParams, search

    path, state = store.neighbours(ds.id)
    seed_rows = seeds(store, ds, banks, run)
    embs = {s.name: _embeddings(ds, s.name) for s in ds.shards}
    ident = hashlib.sha256(
        json.dumps(sorted((k, v.tolist()) for k, v in seed_rows.items())).encode()
    ).hexdigest()
    fingerprint = {
        "format": 2,  # 2: rows without a usable embedding are written as missing (NaN)
        "seeds": ident,
        "k": spec.k,
        "min_cosine": spec.min_cosine,
        "shards": [[s.name, ds.state[s.name]["sha256"]] for s in ds.shards],
        "embeddings": [[s.name, _stat(embs[s.name])] for s in ds.shards],
    }
    record = done.read_record(state)
    n_seeds = int(sum(len(v) for v in seed_rows.values()))
    if record is not None and done.is_done(record, fingerprint, [path]):
        return path, {"seeds": n_seeds, "current": 1}
    names = [s.name for s in ds.shards]
    if n_seeds:
        mats = [np.asarray(embs[name][rows], dtype=np.float32) for name, rows in seed_rows.items()]
        seed_matrix = np.concatenate(mats)
        hits = search(
            seed_matrix, [embs[n] for n in names], NeighbourParams(k=spec.k, min_cosine=spec.min_cosine)
        )
        shard_col = [names[i] for i in hits.shard.tolist()]
        rows_col, seed_col, cos_col = [hits.row], [hits.seed], [hits.cosine]
        # A row whose embedding is zero, NaN or inf cannot be compared with the seeds: its cosine is
        # missing (NaN, seed -1), never "not a neighbour", so a policy quarantines or reviews it.
        for name in names:
            bad = _invalid_rows(embs[name])
            shard_col += [name] * len(bad)
            rows_col.append(bad)
            seed_col.append(np.full(len(bad), -1, dtype=np.int32))
            cos_col.append(np.full(len(bad), np.nan, dtype=np.float32))
        table = pa.table(
            {
                "shard": pa.array(shard_col, pa.string()),
                "row": pa.array(np.concatenate(rows_col), pa.int64()),
                "seed": pa.array(np.concatenate(seed_col), pa.int32()),
                "cosine": pa.array(np.concatenate(cos_col), pa.float32()),
            }
        ).sort_by([("shard", "ascending"), ("row", "ascending"), ("seed", "ascending")])
    else:
        table = pa.table(
            {
                "shard": pa.array([], pa.string()),
                "row": pa.array([], pa.int64()),
                "seed": pa.array([], pa.int32()),
                "cosine": pa.array([], pa.float32()),
            }
        )
    with atomic.atomic_path(path, store.tmp) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    done.mark_done(state, fingerprint, store.tmp)
    missing = int(pc.sum(pc.is_nan(table.column("cosine"))).as_py() or 0)
    return path, {"seeds": n_seeds, "neighbours": table.num_rows - missing, "no_embedding": missing}


def _invalid_rows(arr: np.ndarray, chunk: int = 65_536) -> np.ndarray:
    """Rows whose embedding is zero or holds NaN or inf (read in chunks through the memory map)."""
    out: list[np.ndarray] = []
    for start in range(0, arr.shape[0], chunk):
        block = np.asarray(arr[start : start + chunk], dtype=np.float32)
        with np.errstate(over="ignore", invalid="ignore"):
            norm2 = np.einsum("ij,ij->i", block, block)
        bad = ~(np.isfinite(norm2) & (norm2 > 1e-30))
        out.append(np.flatnonzero(bad).astype(np.int64) + start)
    return np.concatenate(out) if out else np.empty(0, dtype=np.int64)


def _stat(arr: np.ndarray) -> list[int]:
    filename = getattr(arr, "filename", None)
    if not filename:
        return [int(arr.shape[0])]
    st = os.stat(filename)
    return [st.st_size, st.st_mtime_ns]


def shard_triage(
    store: Store, ds: DatasetView, run: TriageRun, shard: str, neighbour_path: Path | None, soft: bool = True
) -> ShardTriage:
    soft_path = store.soft_findings(ds.id, shard)[0]
    review = ReviewRows()
    if run.review is not None:
        got = run.review.rows_by_verdict(shard)
        review = ReviewRows(
            tuple(int(r) for r in got.get("confirmed", [])),
            tuple(int(r) for r in got.get("not", [])),
            tuple(int(r) for r in got.get("unsure", [])),
            stale=shard in stale_shards(store, ds, run, (shard,)),
        )
    return ShardTriage(
        policy=run.policy,
        soft_path=str(soft_path) if soft and soft_path.is_file() else None,
        neighbour_path=str(neighbour_path) if neighbour_path is not None else None,
        negatives=run.negative_refs,
        review=review,
        store_root=str(store.root),
    )


# ---------------------------------------------------------------------------------------------------
# Review state is bound to the content it names

REVIEW_SHARDS = "shards.json"


def _review_shards(store: Store, ds: DatasetView) -> Path:
    return store.review_dir(ds.id) / REVIEW_SHARDS


def _has_review_rows(review: ReviewQueue, shard: str) -> bool:
    return any(len(v) for v in review.rows_by_verdict(shard).values())


def stale_shards(
    store: Store, ds: DatasetView, run: TriageRun, names: tuple[str, ...] | None = None
) -> frozenset[str]:
    """Shards whose review rows (candidates, verdicts) were recorded against other content.

    The queue names rows by index; once a shard's bytes change, row N is another row, and a "not"
    there would publish a row nobody reviewed. Such a shard is withheld whole (``review:stale``)
    until its reviewed content is back."""
    if run.review is None:
        return frozenset()
    return _stale(store, ds, run.review, names)


def _bound(path: Path) -> dict[str, str]:
    """The binding file, read once per version of it (``shard_triage`` asks once per shard)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return {}
    return _read_bound(str(path), st.st_ino, st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _read_bound(path: str, _ino: int, _size: int, _mtime: int) -> dict[str, str]:
    got: dict[str, str] = atomic.read_json(Path(path))
    return got


def _stale(
    store: Store, ds: DatasetView, review: ReviewQueue, names: tuple[str, ...] | None = None
) -> frozenset[str]:
    bound = _bound(_review_shards(store, ds))
    out = set()
    for name in names if names is not None else [s.name for s in ds.shards]:
        was = bound.get(name)
        if was is not None and was != ds.state[name]["sha256"] and _has_review_rows(review, name):
            out.add(name)
    return frozenset(out)


def check_export(store: Store, ds: DatasetView, review: ReviewQueue) -> None:
    """Refuse a review export naming rows of a shard whose content is not the one they were queued
    from (changed since, or changed on disk since the last clean): the hotline would review, and its
    URLs file would name, other rows."""
    from expunge.index.build import fingerprint

    def exportable(name: str) -> bool:
        got = review.rows_by_verdict(name)
        return bool(len(got["pending"]) or len(got["unsure"]))

    named = [s for s in ds.shards if exportable(s.name)]
    for shard in named:
        known = ds.state.get(shard.name)
        size, mtime = fingerprint(shard.files)
        if known is None or (known.get("size"), known.get("mtime_ns")) != (size, mtime):
            raise ExpungeError(
                "shard changed since the last clean; run clean first (review rows name rows by index)",
                shard.location,
            )
    stale = _stale(store, ds, review, tuple(s.name for s in named))
    if stale:
        where = next(s.location for s in named if s.name in stale)
        raise ExpungeError(
            "shard changed since its review rows were queued: they name rows of the old content;"
            " restore that content to export them",
            where,
        )


def bind_review(store: Store, ds: DatasetView, run: TriageRun) -> None:
    """Record which content each shard's review rows refer to: the current content for a shard the
    queue does not name yet (its rows, if any, are queued by this clean); a bound shard that has rows
    keeps its binding (``stale_shards``)."""
    if run.review is None:
        return
    path = _review_shards(store, ds)
    bound: dict[str, str] = atomic.read_json(path) if path.is_file() else {}
    new = dict(bound)
    for shard in ds.shards:
        sha = str(ds.state[shard.name]["sha256"])
        if shard.name not in bound or not _has_review_rows(run.review, shard.name):
            new[shard.name] = sha
    if new != bound:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_json(path, dict(sorted(new.items())), store.tmp)
