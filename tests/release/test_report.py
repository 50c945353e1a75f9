"""The HTML release report: rendered by a real headless Chromium, charts checked in the DOM and in pixels,
and never a URL or caption of the dataset in it."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from expunge import api
from expunge.atomic import read_json
from expunge.release.report import COLORS, MAX_SHARDS, render_report, write_report
from expunge.release.verify import verify_release
from tests.chromium import find_chromium, run_chromium
from tests.conftest import REPO, SmallDataset, build_small_dataset, tree_bytes

ARTIFACTS = REPO / "test-artifacts"
WINDOW = (1200, 2000)


@dataclass
class Built:
    ds: SmallDataset
    release: Path
    store: Path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """A release cleaned against two banks, one of them with two versions (so the history chart has
    something to show), built through the public API only."""
    base = tmp_path_factory.mktemp("report")
    ds = build_small_dataset(base)
    store = base / "store"
    iwf_lines = ds.lists["iwf"].read_text().splitlines(keepends=True)
    older = base / "lists" / "iwf-old.csv"
    older.write_text("".join(iwf_lines[: len(iwf_lines) // 2]))
    api.import_list(older, store=store, name="iwf", signal="url_md5")
    api.import_list(ds.lists["iwf"], store=store, name="iwf", signal="url_md5")
    api.import_list(ds.lists["c3p"], store=store, name="c3p", signal="url_sha1", recipe="canonical")
    out = base / "rel"
    api.clean([str(ds.root)], out, banks=["iwf", "c3p"], opts=api.Options(store=store, workers=2))
    write_report(out, store)
    return Built(ds, out, store)


@dataclass
class _Chart:
    bars: list[tuple[float, float, str]] = field(default_factory=list)  # width, height, title


class _Charts(HTMLParser):
    """Collects each ``<svg data-chart>`` with its bars (legend swatches, class "key", are not bars)."""

    def __init__(self) -> None:
        super().__init__()
        self.charts: dict[str, _Chart] = {}
        self._chart: str | None = None
        self._in_title = False
        self._rect: tuple[float, float] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "svg" and a.get("data-chart"):
            self._chart = str(a["data-chart"])
            self.charts[self._chart] = _Chart()
        elif tag == "rect" and self._chart and a.get("class") != "key":
            self._rect = (float(a.get("width") or 0), float(a.get("height") or 0))
            self.charts[self._chart].bars.append((*self._rect, ""))
        elif tag == "title" and self._rect is not None:
            self._in_title = True

    def handle_data(self, data: str) -> None:
        if self._in_title and self._chart:
            w, h, t = self.charts[self._chart].bars[-1]
            self.charts[self._chart].bars[-1] = (w, h, t + data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag == "rect":
            self._rect = None
        elif tag == "svg":
            self._chart = None


def _nonzero(counts: dict[str, int]) -> int:
    return sum(1 for v in counts.values() if v)


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    return int(hex_colour[1:3], 16), int(hex_colour[3:5], 16), int(hex_colour[5:7], 16)


def _pixels(img: Image.Image, colour: str, tol: int = 3) -> list[tuple[int, int]]:
    """Every (x, y) whose colour is within ``tol`` of ``colour`` per channel."""
    diff = np.asarray(img, dtype=np.int16) - np.array(_rgb(colour), dtype=np.int16)
    near = (np.abs(diff) <= tol).all(axis=2)
    ys, xs = np.nonzero(near)
    return list(zip(xs.tolist(), ys.tolist(), strict=True))


def _bar_widths(points: list[tuple[int, int]]) -> list[int]:
    """Horizontal bars of one colour, top to bottom: the pixel width of each run of adjacent rows."""
    rows: dict[int, int] = {}
    for _, y in points:
        rows[y] = rows.get(y, 0) + 1
    bars: list[list[int]] = []
    last = -2
    for y in sorted(rows):
        if y != last + 1:
            bars.append([])
        bars[-1].append(rows[y])
        last = y
    return [max(b) for b in bars]


def test_report_renders_in_chromium_with_every_chart(built: Built, tmp_path: Path) -> None:
    binary = find_chromium()
    if binary is None:
        pytest.skip("no chromium binary found (Debian: apt-get install -y chromium)")
    page = built.release / "report.html"
    summary = read_json(built.release / "summary.json")

    # The DOM as Chromium parsed it: every chart, and each of its bars a visible rect with a tooltip.
    dom = run_chromium(binary, tmp_path / "profile-dom", page, WINDOW, "--dump-dom")
    parser = _Charts()
    parser.feed(dom)
    charts = parser.charts
    expected = {
        "signals": _nonzero(summary["removed_by_signal"]),
        "banks": _nonzero(summary["removed_by_bank"]),
        "shards": sum(bool(s["rows_removed"]) + bool(s["rows_quarantined"]) for s in summary["shards"]),
        "reasons": _nonzero(summary["quarantined_by_reason"]),
        "bank-versions": 3,  # iwf v1, iwf v2, c3p v1
        "timings": 3,  # index, match, clean
    }
    assert set(charts) == set(expected)
    for name, count in expected.items():
        bars = charts[name].bars
        assert len(bars) == count, (name, bars)
        assert all(w > 0 and h > 0 and t.strip() for w, h, t in bars), (name, bars)
    assert expected["signals"] == 2 and expected["banks"] == 2 and expected["reasons"] >= 2
    titles = " ".join(t for _, _, t in charts["banks"].bars)
    assert "iwf@v2" in titles and "c3p@v1" in titles

    # The pixels: every chart colour is drawn, in the region its chart occupies, with honest lengths.
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    shot.unlink(missing_ok=True)
    run_chromium(binary, tmp_path / "profile-shot", page, WINDOW, f"--screenshot={shot}")
    img = Image.open(shot).convert("RGB")
    assert img.size == WINDOW
    # The shard distribution is drawn only when more shards are affected than the chart draws one by one.
    assert sum(bool(s["rows_removed"] or s["rows_quarantined"]) for s in summary["shards"]) <= MAX_SHARDS
    found = {key: _pixels(img, colour) for key, colour in COLORS.items() if key != "shard-bins"}
    assert not _pixels(img, COLORS["shard-bins"])
    for key, points in found.items():
        assert len(points) >= 300, f"chart colour {key} ({COLORS[key]}) barely drawn: {len(points)} px"

    def centre(key: str) -> tuple[float, float]:
        pts = found[key]
        return sum(x for x, _ in pts) / len(pts), sum(y for _, y in pts) / len(pts)

    sig, bank = centre("signal"), centre("bank")
    assert sig[0] < WINDOW[0] / 2 < bank[0] and abs(sig[1] - bank[1]) < 60  # side by side
    assert bank[1] < centre("removed")[1] and bank[1] < centre("quarantined")[1]  # shards below
    assert centre("removed")[1] < centre("reason")[1] < centre("timings")[1]
    assert centre("reason")[0] < WINDOW[0] / 2 < centre("versions")[0]

    # Bar lengths follow the counts (largest first): the chart is drawn, and drawn to scale.
    counts = sorted(summary["removed_by_signal"].values(), reverse=True)
    widths = _bar_widths(found["signal"])
    assert len(widths) == len(counts), widths
    for w, c in zip(widths, counts, strict=True):
        assert w / widths[0] == pytest.approx(c / counts[0], abs=0.03), (widths, counts)


def test_report_holds_no_url_or_caption(built: Built) -> None:
    html = (built.release / "report.html").read_text(encoding="utf-8")
    values: set[str] = set()
    for shard in sorted(built.ds.root.glob("*.parquet")):
        table = pq.read_table(shard, columns=["url", "caption"])
        for column in ("url", "caption"):
            values.update(v for v in table.column(column).to_pylist() if v and len(v) > 4)
    assert len(values) > 10_000
    leaked = sorted(v for v in values if v in html or v.strip() in html)
    assert leaked == []
    for fragment in ("photos.example", "variant.example", "mug number"):
        assert fragment not in html.lower()


def test_report_is_deterministic_and_works_without_a_store(built: Built) -> None:
    assert render_report(built.release, built.store) == render_report(built.release, built.store)
    assert (built.release / "report.html").read_text(encoding="utf-8") == render_report(
        built.release, built.store
    )
    bare = render_report(built.release)
    assert 'data-chart="signals"' in bare and 'data-chart="shards"' in bare
    assert 'data-chart="bank-versions"' not in bare and 'data-chart="timings"' not in bare
    root = read_json(built.release / "MANIFEST.json")["merkle_root"]
    assert root in bare and "expunge verify" in bare
    assert "images-low-quality" not in bare  # the section appears only when there are such images
    # The fixture rewrote report.html with timings ('expunge report'): the manifest lists the report like
    # every other file, so verify notices the edit, and takes the report for nothing else (not a shard).
    assert verify_release(built.release) == [
        f"{built.release / 'report.html'}: SHA-256 differs from the manifest"
    ]


def test_many_shards_are_bounded_and_low_quality_images_shown(built: Built, tmp_path: Path) -> None:
    summary = read_json(built.release / "summary.json")
    summary["shards"] = [
        {"name": f"s{i:05d}", "rows_removed": i % 7, "rows_quarantined": i % 3, "rows_in": 10, "rows_kept": 0}
        for i in range(500)
    ]
    summary["images_low_quality"] = 5
    rel = tmp_path / "many"
    rel.mkdir()
    (rel / "summary.json").write_text(json.dumps(summary))
    parser = _Charts()
    parser.feed(render_report(rel))
    shard_rows = {t.split(" · ")[0] for _, _, t in parser.charts["shards"].bars}
    assert len(shard_rows) == MAX_SHARDS
    html = render_report(rel)
    assert "No MANIFEST.json" in html  # no manifest: said, not a crash
    assert 'data-stat="images-low-quality"><b>5</b>' in html


def test_the_report_command_leaves_the_release_verifiable(built: Built, tmp_path: Path) -> None:
    import shutil as sh
    import sys

    rel = tmp_path / "rel"
    sh.copytree(built.release, rel)
    before = tree_bytes(rel)
    cmd = [sys.executable, "-m", "expunge.cli", "report", str(rel), "--store", str(built.store)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    assert tree_bytes(rel) == before  # nothing in the release changed: its manifest still holds
    assert (tmp_path / "rel.report.html").is_file()
    assert 'data-chart="timings"' in (tmp_path / "rel.report.html").read_text()
    inside = subprocess.run([*cmd, "--out", str(rel / "r.html")], capture_output=True, text=True, timeout=300)
    assert inside.returncode == 2 and "outside the release" in inside.stderr
