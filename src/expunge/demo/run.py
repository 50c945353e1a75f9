"""``expunge demo``: the whole flow on a synthetic LAION-like dataset, end to end, in under a minute.

Everything it makes is synthetic and benign: generated URLs on made-up hosts, neutral captions, and
"known-bad" lists that are hashes of randomly chosen ordinary rows, labelled as synthetic.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from expunge import api
from expunge.config import DEFAULT_STORE
from expunge.demo import synth
from expunge.errors import ExpungeError
from expunge.progress import NullReporter, Reporter

MARKER = ".expunge-demo"

# list name → (signal, recipe, source label)
DEMO_LISTS: dict[str, tuple[str, str, str]] = {
    "iwf": ("url_md5", "raw", "SYNTHETIC list A (stands in for a hotline's URL MD5 list)"),
    "c3p": ("url_sha1", "canonical", "SYNTHETIC list B (canonical-URL SHA-1 list)"),
    "tx": ("url_md5", "raw", "SYNTHETIC list C (python-threatexchange format)"),
    "urls": ("url", "canonical", "SYNTHETIC list D (plaintext URLs, hashed on import)"),
}


@dataclass
class DemoResult:
    workdir: Path
    dataset: Path
    lists: dict[str, Path]
    store: Path
    release: Path
    summary: dict[str, Any]
    expected_removed: int
    missed: int  # synthetic flagged rows that were not removed (must be 0)
    extra: int  # rows removed that were not planted (must be 0)
    seconds: dict[str, float]
    images: ImagePart | None = None
    triage: TriagePart | None = None


@dataclass
class ImagePart:
    dataset: Path
    lists: dict[str, Path]
    release: Path
    summary: dict[str, Any]
    planted: int
    missed: int
    extra: int


@dataclass
class TriagePart:
    """The same dataset cleaned under Re-LAION's research-safe policy (punsafe score + keyword list)."""

    keywords: Path
    release: Path
    summary: dict[str, Any]
    over: int  # input rows with punsafe > 0.45 (or none): each must be out of the release
    left: int  # of those, still in the release (must be 0)
    lost: int  # rows with punsafe <= 0.45, not listed, not quarantined, missing from the release (must be 0)


#: A SYNTHETIC keyword list of neutral words (stands in for a child-protection term list).
DEMO_KEYWORDS = ("teapot", "umbrella", "guitar")


def run_demo(
    workdir: Path,
    rows: int = 200_000,
    shards: int = 8,
    flagged: int = 400,
    workers: int | None = None,
    reporter: Reporter | None = None,
    images: int = 2_000,
) -> DemoResult:
    reporter = reporter or NullReporter()
    workdir = workdir.absolute()
    if workdir.exists():
        if not (workdir / MARKER).is_file():
            raise ExpungeError(
                "demo folder exists and was not made by 'expunge demo'; choose another --dir", workdir
            )
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    (workdir / MARKER).write_text("made by 'expunge demo': synthetic data only; safe to delete\n")
    times: dict[str, float] = {}

    t = time.perf_counter()
    with reporter.bar("generate", rows, "rows") as bar:
        ds = synth.generate_dataset(
            workdir / "dataset", rows=rows, shards=shards, flagged=flagged, progress=bar.advance
        )
    lists = synth.write_lists(ds, workdir / "lists")
    times["generate"] = time.perf_counter() - t

    store = workdir / DEFAULT_STORE
    t = time.perf_counter()
    for name, path in lists.items():
        signal, recipe, source = DEMO_LISTS[name]
        api.import_list(
            path, store=store, name=name, signal=signal, recipe=recipe, source=source, label="synthetic"
        )
    times["import"] = time.perf_counter() - t

    t = time.perf_counter()
    # The demo publishes its per-row records so it can check them against what it planted.
    opts = api.Options(store=store, workers=workers, reporter=reporter, publish_records=True)
    release = workdir / "release"
    summary = api.clean([str(ds.root)], release, banks=list(DEMO_LISTS), opts=opts)
    times["clean"] = time.perf_counter() - t

    missed, extra = _check(ds, release)
    planted = len({(f.shard, f.row) for f in ds.flagged})
    result = DemoResult(workdir, ds.root, lists, store, release, summary, planted, missed, extra, times)
    t = time.perf_counter()
    result.triage = _triage_part(workdir, store, ds, workers, reporter)
    times["triage"] = time.perf_counter() - t
    if images:
        t = time.perf_counter()
        result.images = _image_part(workdir, store, images, workers, reporter)
        times["images"] = time.perf_counter() - t
    return result


def _triage_part(
    workdir: Path, store: Path, ds: synth.SynthDataset, workers: int | None, reporter: Reporter
) -> TriagePart:
    """Clean under ``research-safe`` and check that exactly the rows with punsafe <= 0.45 stay (less
    the listed and quarantined ones), from the shards themselves."""
    import numpy as np
    import pyarrow.parquet as pq

    keywords = workdir / "lists" / "keywords-SYNTHETIC.txt"
    keywords.write_text(
        "# SYNTHETIC neutral words standing in for a keyword list\n" + "\n".join(DEMO_KEYWORDS) + "\n"
    )
    release = workdir / "release-research-safe"
    opts = api.Options(
        store=store,
        workers=workers,
        reporter=reporter,
        publish_records=True,
        policy="research-safe",
        keywords=(keywords,),
    )
    summary = api.clean([str(ds.root)], release, banks=list(DEMO_LISTS), opts=opts)
    records = pq.read_table(release / "removed.parquet", columns=["shard", "row", "reasons"]).to_pylist()
    by_rule = {
        (r["shard"], r["row"])
        for r in records
        if any(x.startswith(("rule:", "missing:")) for x in r["reasons"])
    }

    def unsafe(path: Path) -> np.ndarray:
        score = pq.read_table(path, columns=["punsafe"]).column("punsafe").to_numpy(zero_copy_only=False)
        return np.asarray(~(np.nan_to_num(score.astype(np.float64), nan=1.0) <= 0.45))

    over = left = lost = 0
    for path in sorted(ds.root.rglob("*.parquet")):
        shard = path.relative_to(ds.root).as_posix()
        flags = unsafe(path)
        over += int(flags.sum())
        left += int(unsafe(release / shard).sum())
        # A row at or under 0.45 taken out by a policy rule is a row the policy should have kept.
        lost += sum(1 for r in np.flatnonzero(~flags).tolist() if (shard, r) in by_rule)
    return TriagePart(keywords, release, summary, over, left, lost)


def _image_part(
    workdir: Path, store: Path, samples: int, workers: int | None, reporter: Reporter
) -> ImagePart:
    """img2dataset-style tar shards with planted exact, re-encoded, resized and cropped copies."""
    import pyarrow.parquet as pq

    from expunge.demo.synth_images import generate_image_dataset, write_image_lists

    ds = generate_image_dataset(workdir / "images", samples=samples, shards=4)
    lists = write_image_lists(ds, workdir / "lists")
    for name, source in (("pdq", "SYNTHETIC list E (PDQ)"), ("image_md5", "SYNTHETIC list F (image MD5)")):
        api.import_list(lists[name], store=store, name=name, signal=name, source=source, label="synthetic")
    release = workdir / "release-images"
    # The demo publishes its per-row records so it can check them against what it planted.
    opts = api.Options(store=store, workers=workers, reporter=reporter, publish_records=True)
    summary = api.clean([str(ds.root)], release, banks=["pdq", "image_md5"], opts=opts)
    removed = pq.read_table(release / "removed.parquet").to_pylist()
    got = {(r["shard"], r["row"]) for r in removed if r["action"] == "removed"}
    return ImagePart(
        ds.root, lists, release, summary, len(ds.flagged), len(ds.flagged - got), len(got - ds.flagged)
    )


def _check(ds: synth.SynthDataset, release: Path) -> tuple[int, int]:
    """Compare what was removed with what was planted, by shard and row only."""
    import pyarrow.parquet as pq

    removed = pq.read_table(release / "removed.parquet", columns=["shard", "row", "action"])
    got = {
        (s, r)
        for s, r, a in zip(
            removed.column("shard").to_pylist(),
            removed.column("row").to_pylist(),
            removed.column("action").to_pylist(),
            strict=True,
        )
        if a == "removed"
    }
    planted = {(f.shard, f.row) for f in ds.flagged}
    return len(planted - got), len(got - planted)
