"""A small, deterministic, LAION-shaped dataset for the triage tests, with its ground truth.

``metadata/metadata_NNNN.parquet`` (url, caption, punsafe) beside ``img_emb/img_emb_NNNN.npy`` (float16,
unit rows), as LAION publishes them. Everything is benign and SYNTHETIC: captions are neutral words, the
"known" list holds MD5s of ordinary generated URLs, the keyword list one neutral word.

Planted structure (all rows disjoint):

- ``hashed``: seed rows whose URL MD5 is on ``lists/hashes.txt``;
- ``neighbours``: one row per seed, in another shard, at cosine ``NEAR`` to its seed;
- ``second``: one row at cosine ``NEAR`` to the first planted neighbour but only ``NEAR**2`` (< 0.9) to
  that neighbour's seed: found only once that neighbour is a confirmed seed;
- ``keyword``: rows whose caption holds the neutral term, spread over every punsafe band;
- ``placeholder``: rows sharing one "image unavailable" URL (``lists/partner.txt`` lists it with the
  seeds, ``lists/cleared.txt`` clears it);
- punsafe: mostly in [0, 0.45], some in (0.45, 0.95], some above 0.95, some NaN and some null.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

TERM = "pelican"  # the neutral keyword: no other caption word contains it
NEAR = 0.93  # cosine of a planted neighbour to its seed (threshold 0.9; NEAR**2 ~ 0.865 is below it)
PLACEHOLDER_URL = "https://placeholder.example/image-unavailable.png"
_WORDS = (
    "red", "blue", "green", "mug", "chair", "table", "lamp", "garden", "river", "hill", "bicycle",
    "window", "kettle", "basket", "market", "bridge", "harbour", "orchard", "meadow", "violin",
)  # fmt: skip

Key = tuple[str, int]  # (shard file name, row)


@dataclass
class TriageData:
    base: Path
    root: Path  # the dataset folder (give it to the CLI)
    shards: list[str]  # metadata shard file names, in order
    dim: int
    urls: dict[str, list[str]]
    captions: dict[str, list[str]]
    punsafe: dict[str, list[float | None]]  # None: null; math.nan: NaN
    hashed: set[Key]
    neighbours: dict[Key, Key]  # planted neighbour -> its seed
    second: dict[Key, Key]  # second-round neighbour -> the planted neighbour it is near
    keyword: set[Key]
    placeholder: set[Key]
    lists: dict[str, Path] = field(default_factory=dict)  # hashes, partner, cleared
    keywords: Path = Path()

    @property
    def rows(self) -> int:
        return sum(len(self.urls[s]) for s in self.shards)

    def all_keys(self) -> list[Key]:
        return [(s, i) for s in self.shards for i in range(len(self.urls[s]))]

    def score(self, key: Key) -> float | None:
        return self.punsafe[key[0]][key[1]]

    def missing(self, key: Key) -> bool:
        v = self.score(key)
        return v is None or math.isnan(v)

    def url(self, key: Key) -> str:
        return self.urls[key[0]][key[1]]

    def caption(self, key: Key) -> str:
        return self.captions[key[0]][key[1]]

    def metadata(self, shard: str) -> Path:
        return self.root / "metadata" / shard

    def embedding(self, shard: str) -> Path:
        return self.root / "img_emb" / shard.replace("metadata", "img_emb").replace(".parquet", ".npy")


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _near(rng: np.random.Generator, anchor: np.ndarray, avoid: list[np.ndarray], cos: float) -> np.ndarray:
    """A unit vector at cosine ``cos`` to ``anchor``, its offset orthogonal to every vector in ``avoid``."""
    basis = np.stack([anchor, *avoid]).astype(np.float64)
    u = rng.standard_normal(anchor.shape[0])
    q, _ = np.linalg.qr(basis.T)
    u = _unit(u - q @ (q.T @ u))
    return _unit(cos * anchor + math.sqrt(1 - cos * cos) * u)


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def make_triage_data(
    base: Path,
    *,
    shards: int = 3,
    rows: int = 800,
    dim: int = 64,
    seeds: int = 5,
    embeddings: bool = True,
    seed: int = 10,
) -> TriageData:
    rng = np.random.default_rng(seed)
    root = base / "ds"
    (root / "metadata").mkdir(parents=True)
    names = [f"metadata_{s:04d}.parquet" for s in range(shards)]
    # Distinct planted rows: take them from one shuffled pool of keys.
    pool = [(names[s], i) for s in range(shards) for i in range(rows)]
    order = rng.permutation(len(pool))
    taken = iter(pool[j] for j in order)
    hashed = [next(taken) for _ in range(seeds)]
    neighbours: dict[Key, Key] = {}
    for s in hashed:
        k = next(taken)
        while k[0] == s[0]:  # in another shard than its seed
            k = next(taken)
        neighbours[k] = s
    first = next(iter(neighbours))
    second = {next(taken): first}
    keyword = {next(taken) for _ in range(24)}
    placeholder = {next(taken) for _ in range(40)}
    planted = set(hashed) | set(neighbours) | set(second) | keyword | placeholder

    emb = {n: np.stack([_unit(v) for v in rng.standard_normal((rows, dim))]) for n in names}
    for p, s in neighbours.items():
        emb[p[0]][p[1]] = _near(rng, emb[s[0]][s[1]], [], NEAR)
    for r, p in second.items():
        s = neighbours[p]
        emb[r[0]][r[1]] = _near(rng, emb[p[0]][p[1]], [emb[s[0]][s[1]]], NEAR)

    # punsafe bands: keyword rows cycle through every band so each research case has rows.
    bands = ("low", "mid", "high", "nan", "null")
    kw_band = {k: bands[j % len(bands)] for j, k in enumerate(sorted(keyword))}
    data = TriageData(
        base, root, names, dim, {}, {}, {}, set(hashed), neighbours, second, keyword, placeholder
    )
    for n in names:
        urls: list[str] = []
        caps: list[str] = []
        scores: list[float | None] = []
        u = rng.random(rows)
        for i in range(rows):
            key = (n, i)
            words = " ".join(_WORDS[(i * 7 + j * 3 + len(n)) % len(_WORDS)] for j in range(3))
            caption = f"photo {n[9:13]}-{i:05d} of a {words}"
            band = kw_band.get(key)
            if key in keyword:
                caption = f"photo {n[9:13]}-{i:05d} of a {TERM} near the {words}"
            if band is None:
                if key in planted:
                    band = "low"
                else:
                    band = (
                        "mid" if u[i] < 0.04 else "high" if u[i] < 0.06 else "nan" if u[i] < 0.07
                        else "null" if u[i] < 0.08 else "low"
                    )  # fmt: skip
            value: float | None = {
                "low": round(float(rng.uniform(0.0, 0.45)), 4),
                "mid": round(float(rng.uniform(0.4501, 0.95)), 4),
                "high": round(float(rng.uniform(0.9501, 0.999)), 4),
                "nan": math.nan,
                "null": None,
            }[band]
            scores.append(value)
            caps.append(caption)
            urls.append(
                PLACEHOLDER_URL if key in placeholder
                else f"https://img{i % 5}.pictures.example/{n[9:13]}/{i:05d}/view.jpg"
            )  # fmt: skip
        data.urls[n], data.captions[n], data.punsafe[n] = urls, caps, scores
        table = pa.table(
            {
                "url": pa.array(urls, pa.string()),
                "caption": pa.array(caps, pa.string()),
                "punsafe": pa.array(scores, pa.float64()),  # None → null; NaN stays NaN
            }
        ).replace_schema_metadata({"origin": "expunge triage test (synthetic)"})
        pq.write_table(table, root / "metadata" / n, row_group_size=256, compression="zstd")
        if embeddings:
            data.embedding(n).parent.mkdir(exist_ok=True)
            np.save(data.embedding(n), emb[n].astype(np.float16))

    lists = base / "lists"
    lists.mkdir()
    head = "# SYNTHETIC url_md5 list: MD5s of ordinary generated URLs (test data)\n"
    seed_md5s = sorted(md5(data.url(k)) for k in hashed)
    data.lists["hashes"] = lists / "hashes.txt"
    data.lists["hashes"].write_text(head + "".join(f"{h}\n" for h in seed_md5s))
    data.lists["partner"] = lists / "partner.txt"
    data.lists["partner"].write_text(
        head + "".join(f"{h}\n" for h in sorted([*seed_md5s, md5(PLACEHOLDER_URL)]))
    )
    data.lists["cleared"] = lists / "cleared.txt"
    data.lists["cleared"].write_text(head + md5(PLACEHOLDER_URL) + "\n")
    data.keywords = base / "kw.txt"
    data.keywords.write_text(TERM + "\n")
    return data
