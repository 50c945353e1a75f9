"""Adversarial inputs against triage in the flow (issue 10): each test is an attack that found a hole;
each is fixed, and the test keeps it fixed. Attacks that found nothing are in the adversary's report.

Small synthetic data through the Python API (one worker): a few shards of a few dozen rows, neutral
words, "known-bad" lists of SYNTHETIC URLs.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from expunge import api
from expunge.config import RunConfig
from expunge.errors import ExpungeError

N = 30
BAD_URL = "https://example.org/0/3.jpg"


def _dataset(
    root: Path,
    shards: int = 1,
    punsafe: Callable[[int], np.ndarray] | None = None,
    captions: Callable[[int], pa.Array] | None = None,
    dim: int = 8,
) -> Path:
    (root / "metadata").mkdir(parents=True)
    (root / "img_emb").mkdir()
    rng = np.random.default_rng(7)
    for s in range(shards):
        cols: dict[str, Any] = {
            "url": [f"https://example.org/{s}/{i}.jpg" for i in range(N)],
            "caption": captions(s) if captions else [f"plain words {i}" for i in range(N)],
            "punsafe": punsafe(s) if punsafe else np.full(N, 0.1),
        }
        pq.write_table(pa.table(cols), root / "metadata" / f"metadata_{s:04d}.parquet")
        emb = rng.standard_normal((N, dim)).astype(np.float16)
        np.save(root / "img_emb" / f"img_emb_{s:04d}.npy", emb)
    return root


def _list(tmp: Path, name: str = "synthetic-bad", urls: tuple[str, ...] = (BAD_URL,)) -> str:
    path = tmp / f"{name}.txt"
    path.write_text("# SYNTHETIC\n" + "".join(hashlib.md5(u.encode()).hexdigest() + "\n" for u in urls))
    return f"{path}:url_md5"


def _policy(tmp: Path, text: str, name: str = "pol") -> str:
    path = tmp / f"{name}.toml"
    path.write_text(text)
    return str(path)


def _config(tmp: Path, **kw: Any) -> RunConfig:
    return RunConfig(store=tmp / "store", workers=1, flood_min_rows=10**6, **kw)


def _clean(ds: Path, out: Path, config: RunConfig, **kw: Any) -> dict[str, Any]:
    return api.clean([str(ds)], out, lists=kw.pop("lists", ()), opts=config, **kw)


# Stale review state (published a row nobody reviewed): the review queue names rows by (shard, row);
# when a shard's bytes change (a row inserted at the top), a "not" verdict given for old row 10 was
# applied to new row 10, another row the review rule flags, and it was published; the "confirmed"
# verdict removed an innocent row while the confirmed one went back to pending. A shard whose content
# changed after its review rows were recorded is now withheld whole (review:stale), its confirmed rows
# seed nothing, and `review export` refuses to name its pending rows (its URLs file would hold other
# rows' URLs).
def test_a_changed_shard_never_takes_its_old_verdicts(tmp_path: Path) -> None:
    def punsafe(_s: int) -> np.ndarray:
        v = np.full(N, 0.1)
        v[[10, 15, 20]] = 0.99
        return v

    ds = _dataset(tmp_path / "ds", punsafe=punsafe)
    lists = [_list(tmp_path)]
    config = _config(
        tmp_path,
        policy=_policy(tmp_path, '[[rules]]\nname="hi"\naction="review"\nwhen="score.punsafe > 0.9"\n'),
    )
    _clean(ds, tmp_path / "o1", config, lists=lists)
    api.review_export([str(ds)], tmp_path / "pkg", opts=config)
    with (tmp_path / "pkg" / "candidates.csv").open() as fh:
        candidates = list(csv.DictReader(fh))
    verdict = {"10": "not", "15": "", "20": "confirmed"}  # row 15: not reviewed yet
    verdicts = tmp_path / "verdicts.csv"
    verdicts.write_text(
        "review_id,verdict\n" + "".join(f"{c['review_id']},{verdict[c['row']]}\n" for c in candidates)
    )
    api.review_import([str(ds)], verdicts, opts=config)
    shard = ds / "metadata" / "metadata_0000.parquet"
    cols = pq.read_table(shard).to_pydict()
    for values in cols.values():
        values.insert(0, values[0])
    cols["url"][0] = "https://example.org/0/inserted.jpg"
    cols["punsafe"][10] = 0.97  # old row 9, never reviewed, now at the index the "not" names
    pq.write_table(pa.table(cols), shard)
    emb = np.load(ds / "img_emb" / "img_emb_0000.npy")
    np.save(ds / "img_emb" / "img_emb_0000.npy", np.concatenate([emb[:1], emb]))

    summary = _clean(ds, tmp_path / "o2", config, lists=lists)
    published = pq.read_table(tmp_path / "o2" / "metadata_0000.parquet").column("punsafe").to_pylist()
    assert max(published, default=0) < 0.9
    assert summary["quarantined_by_reason"] == {"review:stale": N}  # N + 1 rows, one removed by the list
    assert summary["rows_removed"] == 1
    with pytest.raises(ExpungeError, match="changed since"):
        api.review_export([str(ds)], tmp_path / "pkg2", include_urls=True, opts=config)
    assert not (tmp_path / "pkg2").exists()

    # The way forward is explicit: forget the shard's review rows (its confirmed verdict only when told
    # to), and the next clean reviews the new content afresh instead of withholding it whole.
    name = "metadata_0000.parquet"  # shard names are relative to the dataset root (ds/metadata)
    with pytest.raises(ExpungeError, match="confirmed"):
        api.review_forget([str(ds)], name, opts=config)
    dropped = api.review_forget([str(ds)], name, drop_confirmed=True, opts=config)
    assert (dropped["confirmed"], dropped["not"], dropped["queued"] + dropped["exported"]) == (1, 1, 1)
    again = _clean(ds, tmp_path / "o3", config, lists=lists)
    assert "review:stale" not in again["quarantined_by_reason"]
    assert again["quarantined_by_reason"]["review:pending"] == 4  # 0.97 (old 9) + old 10, 15, 20
    published = pq.read_table(tmp_path / "o3" / "metadata_0000.parquet").column("punsafe").to_pylist()
    assert max(published, default=0) < 0.9


# Keyword bypass: the matcher reads a caption that is not valid UTF-8 as null, and a null caption
# matches nothing, so one stray byte anywhere in a caption ("... teapot \xff") hid every term in it and
# the row was published under a `keyword` remove rule. The soft stage now replaces the bad bytes
# (U+FFFD) before matching.
def test_a_stray_byte_does_not_hide_a_keyword(tmp_path: Path) -> None:
    def captions(_s: int) -> pa.Array:
        caps = [f"plain words {i}".encode() for i in range(N)]
        caps[5] = b"a teapot \xff here"
        caps[6] = b"\xfe\xfdteapot"
        return pa.array(caps, pa.binary())

    ds = _dataset(tmp_path / "ds", captions=captions)
    terms = tmp_path / "terms.txt"
    terms.write_text("teapot\n")
    config = _config(
        tmp_path,
        policy=_policy(tmp_path, '[[rules]]\nname="kw"\naction="remove"\nwhen="keyword"\n'),
        keywords=(terms,),
    )
    summary = _clean(ds, tmp_path / "out", config, lists=[_list(tmp_path)])
    assert summary["removed_by_rule"] == {"hash-lists": 1, "kw": 2}
    assert summary["rows_kept"] == N - 3


# Neighbour bypass: a row whose embedding is NaN (or zero) is never anyone's neighbour, so an exact
# copy of a seed with its embedding blanked was published as "not a neighbour". Once there are seeds,
# such a row's cosine is missing (NaN), so a remove rule quarantines it and a review rule queues it.
def test_a_row_without_a_usable_embedding_is_missing_not_safe(tmp_path: Path) -> None:
    ds = _dataset(tmp_path / "ds", shards=2)
    a = np.load(ds / "img_emb" / "img_emb_0000.npy")
    b = np.load(ds / "img_emb" / "img_emb_0001.npy")
    b[5] = a[3]  # a near copy of the seed (row 3 of shard 0 is on the list)
    b[6] = np.nan
    b[7] = 0
    np.save(ds / "img_emb" / "img_emb_0001.npy", b)
    near = '[[rules]]\nname="near"\naction="remove"\nwhen="neighbour >= 0.95"\n'
    config = _config(tmp_path, policy=_policy(tmp_path, near))
    summary = _clean(ds, tmp_path / "out", config, lists=[_list(tmp_path)])
    assert summary["removed_by_rule"] == {"hash-lists": 1, "near": 1}
    assert summary["quarantined_by_reason"] == {"missing:near": 2}
    # Without seeds nothing is anyone's neighbour: blank embeddings are then no reason to withhold.
    none = _list(tmp_path, "synthetic-none", ("https://nowhere.example/x",))
    summary = _clean(ds, tmp_path / "out2", config, lists=[none])
    assert summary["rows_kept"] == 2 * N


# Crash: an empty allow-list (imported with --allow-empty) made the negative-bank cancel index an
# empty array (IndexError traceback) as soon as a positive finding of the same feature existed.
def test_an_empty_negative_list_cancels_nothing(tmp_path: Path) -> None:
    ds = _dataset(tmp_path / "ds")
    empty = tmp_path / "cleared.txt"
    empty.write_text("# SYNTHETIC, nothing cleared yet\n")
    config = _config(tmp_path, allow_empty=True)
    summary = _clean(
        ds, tmp_path / "out", config, lists=[_list(tmp_path)], negative_lists=[f"{empty}:url_md5"]
    )
    assert summary["rows_removed"] == 1
    assert summary["negative_cancelled"] == {}


# Silent no-op: --accept-flood with a misspelt bank or rule name let nothing past the guard and said
# nothing; the user believes the flood was accepted. A name that is no bank of the run and no rule of
# its policy is refused before any work.
def test_accept_flood_of_an_unknown_name_is_refused(tmp_path: Path) -> None:
    ds = _dataset(tmp_path / "ds")
    config = _config(tmp_path, accept_flood=("synthetic-bda",))
    with pytest.raises(ExpungeError, match="--accept-flood 'synthetic-bda' names no bank"):
        _clean(ds, tmp_path / "out", config, lists=[_list(tmp_path)])
    ok = _config(tmp_path, accept_flood=("synthetic-bad",))
    assert _clean(ds, tmp_path / "out", ok, lists=[_list(tmp_path)])["rows_removed"] == 1


# Misinformation to the hotline: a candidate raised by a keyword whose punsafe was known but below
# every threshold was exported with `"score.punsafe": null`, which the package defines as missing.
# A score below the stored thresholds is now left out; null stays for a row that truly has none.
def test_review_signals_do_not_call_a_low_score_missing(tmp_path: Path) -> None:
    def punsafe(_s: int) -> np.ndarray:
        v = np.full(N, 0.1)
        v[9] = np.nan
        return v

    def captions(_s: int) -> pa.Array:
        caps = [f"plain words {i}" for i in range(N)]
        caps[8] = caps[9] = "a teapot"
        return pa.array(caps)

    ds = _dataset(tmp_path / "ds", punsafe=punsafe, captions=captions)
    terms = tmp_path / "terms.txt"
    terms.write_text("teapot\n")
    rules = (
        '[[rules]]\nname="r"\naction="remove"\nwhen="score.punsafe > 0.9 and keyword"\n'
        '[[rules]]\nname="v"\naction="review"\nwhen="keyword"\n'
    )
    config = _config(tmp_path, policy=_policy(tmp_path, rules), keywords=(terms,))
    summary = _clean(ds, tmp_path / "out", config, lists=[_list(tmp_path)])
    assert summary["quarantined_by_reason"] == {"missing:r": 1, "review:pending": 1}
    api.review_export([str(ds)], tmp_path / "pkg", opts=config)
    with (tmp_path / "pkg" / "candidates.csv").open() as fh:
        (row,) = list(csv.DictReader(fh))
    assert row["row"] == "8"
    assert json.loads(row["signals"]) == {"keyword": 1, "keyword.terms": 1}
