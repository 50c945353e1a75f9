"""The release files at LAION-5B scale: 100,000 shards of summary, never their data.

A summary of that size is generated (``synthetic_results``), not cleaned; ``benchmarks/bench_report.py``
uses the same generator to time every release file at 1k, 10k and 100k shards.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from PIL import Image

from expunge import atomic
from expunge.release import manifest as release_manifest
from expunge.release.charts import COLORS
from expunge.release.report import MAX_SHARDS, render_report, write_report
from expunge.stages.clean import summary as clean_summary
from expunge.stages.clean_task import CleanResult
from tests.chromium import find_chromium, run_chromium

SIGNALS = ("url_md5", "url_sha1")
BANKS = (
    {"name": "iwf", "signal": "url_md5", "version": 3, "count": 1_000_000},
    {"name": "c3p", "signal": "url_sha1", "version": 1, "count": 250_000},
)


def shard_name(i: int) -> str:
    return f"metadata/metadata_{i:05d}.parquet"


def synthetic_results(n: int, seed: int = 12) -> list[CleanResult]:
    """What the clean stage would report for ``n`` LAION-like metadata shards.

    About 50,000 rows each; removals sparse, as a real hash list finds them: most shards lose nothing,
    three in a thousand lose 1-50 rows, a handful (one per 20,000 shards, at least two) lose thousands;
    quarantine (unparseable URLs) touches one shard in a hundred.
    """
    rng = np.random.default_rng(seed)
    rows_in = rng.integers(45_000, 55_001, n).tolist()
    removed = np.where(rng.random(n) < 0.003, rng.integers(1, 51, n), 0)
    removed[rng.choice(n, max(2, n // 20_000), replace=False)] = rng.integers(
        1_000, 20_001, max(2, n // 20_000)
    )
    quarantined = np.where(rng.random(n) < 0.01, rng.integers(1, 10, n), 0).tolist()
    bank = f"{BANKS[0]['name']}@v{BANKS[0]['version']}"
    none: dict[str, int] = {}  # shared by every shard: the summary only reads these
    out: list[CleanResult] = []
    for i, (rin, rm, qt) in enumerate(zip(rows_in, removed.tolist(), quarantined, strict=True)):
        out.append(
            CleanResult(
                shard=shard_name(i),
                rows_in=rin,
                rows_kept=rin - rm - qt,
                rows_removed=rm,
                rows_quarantined=qt,
                action="rewritten" if rm or qt else "linked",
                sha256=hashlib.sha256(b"shard %d" % i).hexdigest(),
                size=rin * 120,
                by_signal={SIGNALS[0]: rm} if rm else none,
                by_bank={bank: rm} if rm else none,
                quarantined_by_reason={"url_unparseable": qt} if qt else none,
                by_rule=none,
                cancelled=none,
                review=[],
            )
        )
    return out


def synthetic_summary(results: list[CleanResult]) -> dict[str, Any]:
    """summary.json as the clean stage writes it for ``results`` (through its own function)."""
    ds = SimpleNamespace(id="laion-synthetic", root="/data/laion5b", columns=SimpleNamespace(url="url"))
    banks = [SimpleNamespace(public=lambda b=b: {**b, "recipe": "raw", "source": "SYNTHETIC"}) for b in BANKS]
    out = clean_summary(ds, banks, results)  # type: ignore[arg-type]
    out["records"] = "per-row records are kept by the publisher, not published"
    return out


def synthetic_inputs(results: list[CleanResult]) -> list[dict[str, Any]]:
    return [
        {"name": r.shard, "sha256": hashlib.sha256(b"in " + r.shard.encode()).hexdigest(), "rows": r.rows_in}
        for r in results
    ]


def synthetic_files(results: list[CleanResult]) -> list[dict[str, Any]]:
    files = [{"path": r.shard, "sha256": r.sha256, "size": r.size} for r in results]
    for name in ("summary.json", "report.html", "croissant.json", "README.md"):
        files.append({"path": name, "sha256": hashlib.sha256(name.encode()).hexdigest(), "size": 1000})
    return files


def write_release(folder: Path, n: int, *, full_manifest: bool = True) -> dict[str, Any]:
    """A release folder holding summary.json (and MANIFEST.json) for ``n`` synthetic shards.

    Without ``full_manifest`` the summary is written compactly and no manifest is written (the caller
    passes the shard root to the report): what a test of the report needs, in a fraction of the time.
    """
    results = synthetic_results(n)
    summary = synthetic_summary(results)
    folder.mkdir(parents=True, exist_ok=True)
    if not full_manifest:
        (folder / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
        return summary
    atomic.write_json(folder / "summary.json", summary)
    man = release_manifest.build(summary, synthetic_inputs(results), "laion-synthetic")
    man = release_manifest.with_files(man, synthetic_files(results))
    (folder / release_manifest.MANIFEST).write_bytes(release_manifest.dumps(man))
    return summary


# ---------------------------------------------------------------------------------------------------
# The tests.

BIG = 100_000
ONE_MB = 1 << 20


@dataclass
class Big:
    release: Path
    summary: dict[str, Any]
    root: str
    html: str


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Big:
    """The report of a 100,000-shard release (summary generated, no data), written to report.html."""
    release = tmp_path_factory.mktemp("big") / "rel"
    summary = write_release(release, BIG, full_manifest=False)
    root = release_manifest.merkle_root([(s["name"], s["sha256"]) for s in summary["shards"]])
    path = write_report(release, manifest={"merkle_root": root}, signed=False)
    return Big(release, summary, root, path.read_text(encoding="utf-8"))


@dataclass
class _Svg:
    bars: list[tuple[float, str]] = field(default_factory=list)  # width, tooltip
    labels: list[str] = field(default_factory=list)


class _Charts(HTMLParser):
    """Each ``<svg data-chart>``: its bars (rects other than legend keys, with their tooltips) and row
    labels; and every element's data-shards-* attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.charts: dict[str, _Svg] = {}
        self.attrs: dict[str, str] = {}
        self._chart: str | None = None
        self._where = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.attrs.update({k: str(v) for k, v in a.items() if k.startswith("data-shards-")})
        if tag == "svg" and a.get("data-chart"):
            self._chart = str(a["data-chart"])
            self.charts[self._chart] = _Svg()
        elif self._chart and tag == "rect" and a.get("class") != "key":
            self.charts[self._chart].bars.append((float(a.get("width") or 0), ""))
        self._where = tag if self._chart else ""
        if tag == "text" and a.get("class") == "lb":
            self._where = "label"

    def handle_data(self, data: str) -> None:
        if not self._chart:
            return
        chart = self.charts[self._chart]
        if self._where == "title":
            w, t = chart.bars[-1]
            chart.bars[-1] = (w, t + data)
        elif self._where == "label":
            chart.labels.append(data)

    def handle_endtag(self, tag: str) -> None:
        self._where = ""
        if tag == "svg":
            self._chart = None


def _parse(html: str) -> _Charts:
    parser = _Charts()
    parser.feed(html)
    return parser


def _affected(summary: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in summary["shards"] if s["rows_removed"] + s["rows_quarantined"] > 0]


def test_a_100k_shard_report_is_small_and_draws_a_distribution_and_the_top_shards(big: Big) -> None:
    size = len(big.html.encode("utf-8"))
    assert size < ONE_MB, size
    parsed = _parse(big.html)
    assert {"signals", "banks", "shard-distribution", "shards", "reasons"} <= set(parsed.charts)
    affected = _affected(big.summary)
    assert MAX_SHARDS < len(affected) < BIG
    # The distribution accounts for every affected shard, once; the untouched ones are stated.
    dist = parsed.charts["shard-distribution"]
    binned = sum(int(t.rsplit(": ", 1)[1].replace(",", "")) for _, t in dist.bars)
    assert binned == len(affected)
    assert parsed.attrs["data-shards-untouched"] == str(BIG - len(affected))
    assert parsed.attrs["data-shards-not-drawn"] == str(len(affected) - MAX_SHARDS)
    assert f"{len(affected) - MAX_SHARDS:,} other affected shards" in big.html
    # The top shards, largest first, and exactly those.
    top = sorted(affected, key=lambda s: (-(s["rows_removed"] + s["rows_quarantined"]), s["name"]))
    assert parsed.charts["shards"].labels == [s["name"] for s in top[:MAX_SHARDS]]
    assert big.root in big.html and f"{BIG:,} shards" in big.html


def test_the_report_size_does_not_grow_with_shards(big: Big, tmp_path: Path) -> None:
    """The page is bounded: 10 times fewer shards make almost the same page (the bins and the top
    shards differ, nothing else)."""
    small = tmp_path / "rel"
    write_release(small, BIG // 10, full_manifest=False)
    html = render_report(small, manifest={"merkle_root": "0" * 64}, signed=False)
    assert abs(len(html) - len(big.html)) < 4_000, (len(html), len(big.html))
    assert html.count("<rect") < 200 and big.html.count("<rect") < 200


def _summary_with(counts: list[tuple[int, int]]) -> dict[str, Any]:
    shards = [
        {
            "name": f"s{i:03d}",
            "rows_in": 100,
            "rows_kept": 100 - r - q,
            "rows_removed": r,
            "rows_quarantined": q,
        }
        for i, (r, q) in enumerate(counts)
    ]
    return {"rows_in": 100 * len(shards), "shards": shards, "dataset": {"shards": len(shards)}}


def _render(tmp_path: Path, summary: dict[str, Any]) -> str:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    return render_report(tmp_path, manifest={}, signed=False)


def test_the_distribution_starts_one_shard_past_the_chart(tmp_path: Path) -> None:
    at = _render(tmp_path / "at", _summary_with([(1, 0)] * MAX_SHARDS + [(0, 0)] * 5))
    parsed = _parse(at)
    assert "shard-distribution" not in parsed.charts and "data-shards-not-drawn" not in at
    assert len(parsed.charts["shards"].labels) == MAX_SHARDS
    assert "5 shards had nothing removed" in at
    past = _parse(_render(tmp_path / "past", _summary_with([(1, 0)] * (MAX_SHARDS + 1))))
    assert "shard-distribution" in past.charts
    assert past.attrs == {"data-shards-not-drawn": "1", "data-shards-untouched": "0"}


def test_distribution_bins_are_1_2_5_per_decade_and_end_at_the_largest(tmp_path: Path) -> None:
    counts = [(1, 0), (2, 0), (4, 0), (0, 5), (9, 0), (10, 0), (19, 0), (20, 0), (49, 1), (51, 0)]
    counts += [(0, 0)] * 3 + [(3, 0)] * MAX_SHARDS + [(20_000, 7)]
    parsed = _parse(_render(tmp_path, _summary_with(counts)))
    bars = {
        t.split(" · ")[0]: int(t.rsplit(": ", 1)[1].replace(",", ""))
        for _, t in parsed.charts["shard-distribution"].bars
    }
    assert bars == {
        "1 row": 1,
        "2-4 rows": 2 + MAX_SHARDS,
        "5-9 rows": 2,
        "10-19 rows": 2,
        "20-49 rows": 1,
        "50-99 rows": 2,
        "20,000-20,007 rows": 1,
    }
    labels = parsed.charts["shard-distribution"].labels
    assert labels[0] == "1 row" and labels[-1] == "20,000-20,007 rows" and "100-199 rows" in labels
    assert parsed.attrs["data-shards-untouched"] == "3"


def test_a_tiny_share_of_rows_is_not_shown_as_zero(tmp_path: Path) -> None:
    summary = _summary_with([(0, 0)])
    summary.update(rows_in=5_000_000_000, rows_removed=94_334, rows_quarantined=0, rows_kept=4_999_905_666)
    html = _render(tmp_path, summary)
    assert "rows removed · 0.0019% of rows" in html
    assert "rows quarantined · 0.00% of rows" in html  # none is none


def test_merkle_root_is_rfc6962_at_every_size() -> None:
    """The bottom-up root equals RFC 6962's recursive definition (split at the largest power of two)."""

    def tree(leaves: list[bytes]) -> bytes:
        if len(leaves) == 1:
            return leaves[0]
        split = 1 << ((len(leaves) - 1).bit_length() - 1)
        return hashlib.sha256(b"\x01" + tree(leaves[:split]) + tree(leaves[split:])).digest()

    assert release_manifest.merkle_root([]) == hashlib.sha256(b"").hexdigest()
    for n in range(1, 70):
        shards = [(f"s{i}", hashlib.sha256(b"%d" % i).hexdigest()) for i in range(n)]
        leaves = [release_manifest._leaf(name, h) for name, h in shards]
        assert release_manifest.merkle_root(shards) == tree(leaves).hex(), n


def test_manifest_bytes_are_unchanged_by_encoding_each_field_once() -> None:
    """dumps joins fields encoded once; the bytes are what encoding the whole manifest twice gave."""

    def reference(man: dict[str, Any]) -> bytes:
        body = {k: v for k, v in man.items() if k != release_manifest.SELF_DIGEST}
        digest = hashlib.sha256(release_manifest._plain(body)).hexdigest()
        return release_manifest._plain({**body, release_manifest.SELF_DIGEST: digest})

    crafted: list[dict[str, Any]] = [
        {},
        {"manifest_sha256": "stale"},
        {"a": {}, "b": [], "c": [{}], "d": ""},
        {"z": 'line\nbreak "quoted" \\ tab\t', "é": "ünï \u2028 \U0001f600", "A": None},
        {"shards": [{"name": "a/b.parquet", "rows": 3, "ok": True, "f": 0.1}], "manifest_sha256": "x"},
        {"nested": {"k": {"j": [1, [2, [3, {}]]]}}, "m": -0.0, "n": 10**20},
    ]
    results = synthetic_results(50)
    summary = synthetic_summary(results)
    man = release_manifest.build(summary, synthetic_inputs(results), "laion-synthetic")
    crafted.append(release_manifest.with_files(man, synthetic_files(results)))
    for man in crafted:
        assert release_manifest.dumps(man) == reference(man), man
    data = release_manifest.dumps(crafted[-1])
    assert release_manifest.is_canonical(data, json.loads(data))


def test_the_100k_report_renders_in_chromium_with_every_chart_drawn(big: Big, tmp_path: Path) -> None:
    binary = find_chromium()
    if binary is None:
        pytest.skip("no chromium binary found (Debian: apt-get install -y chromium)")
    page = big.release / "report.html"
    parsed = _parse(run_chromium(binary, tmp_path / "profile-dom", page, (1200, 2000), "--dump-dom"))
    assert {"signals", "banks", "shard-distribution", "shards", "reasons"} == set(parsed.charts)
    for name, chart in parsed.charts.items():
        assert chart.bars and all(w > 0 and t.strip() for w, t in chart.bars), name
    shot = tmp_path / "big.png"
    run_chromium(binary, tmp_path / "profile-shot", page, (1200, 3600), f"--screenshot={shot}")
    img = np.asarray(Image.open(shot).convert("RGB"), dtype=np.int16)
    for key in ("signal", "bank", "shard-bins", "removed", "quarantined", "reason"):
        rgb = [int(COLORS[key][i : i + 2], 16) for i in (1, 3, 5)]
        drawn = int((np.abs(img - np.array(rgb, dtype=np.int16)) <= 3).all(axis=2).sum())
        assert drawn >= 100, f"chart colour {key} barely drawn at 100k shards: {drawn} px"
