"""``expunge lineage`` end to end through the CLI: build → mark (a real release) → report → notices, and
``apply --lineage-id`` marking a derivative from evidence."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from expunge.cli.app import MAX_WARNINGS, app
from expunge.errors import ExpungeError
from tests.lineage.test_marks import Released, make_release

FIXTURE = Path(__file__).parent / "fixtures" / "sd-family"


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> Released:
    return make_release(tmp_path_factory.mktemp("cli"))


def _ok(args: list[str]) -> str:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, (args, result.output, result.exception)
    return result.output


def test_build_mark_report_notices(released: Released, tmp_path: Path) -> None:
    if not FIXTURE.is_dir():
        pytest.skip("the SD-family card fixture is not there yet")
    store = str(tmp_path / "store")
    built = _ok(["lineage", "build", str(FIXTURE), "--store", store])
    assert "cards read" in built and "edges" in built
    mark = _ok(["lineage", "mark", "laion/laion2B-en", "--release", str(released.release), "--store", store])
    assert f"{released.rows_removed:,} rows removed" in mark and released.merkle_root in mark
    assert "not in the lineage graph" not in mark
    unknown = _ok(["lineage", "mark", "nobody/nothing", "--status", "gated", "--store", store])
    assert "not in the lineage graph; build it first or check the id" in unknown

    text = _ok(["lineage", "report", "--store", store])
    assert "model runwayml/stable-diffusion-v1-5\n" in text
    assert f"nearest marked ancestor: laion/laion2b-en: {released.rows_removed:,} rows removed" in text
    data = json.loads(_ok(["lineage", "report", "--format", "json", "--store", store]))
    ids = {a["id"] for a in data["affected"]}
    assert "runwayml/stable-diffusion-v1-5" in ids and "stabilityai/stable-diffusion-2" in ids
    assert all(a["successor"]["merkle_root"] == released.merkle_root for a in data["affected"])
    assert not any(i.startswith(("google-bert/", "example-nlp/")) for i in ids)  # unrelated models
    html = tmp_path / "lineage.html"
    _ok(["lineage", "report", "--format", "html", "--out", str(html), "--store", store])
    assert html.read_text().count("data-node=") == len(ids) + 1

    out = tmp_path / "notices"
    said = _ok(["lineage", "notices", "--out", str(out), "--store", store])
    assert f"{len(ids)} notice(s)" in said
    notice = (out / "runwayml__stable-diffusion-v1-5.md").read_text()
    assert (
        released.merkle_root in notice and f"{released.rows_removed:,} of {released.ds.rows:,} rows" in notice
    )
    # Containment: no URL or caption of the dataset in anything written.
    values: set[str] = set()
    for shard in released.ds.root.glob("*.parquet"):
        table = pq.read_table(shard, columns=["url", "caption"])
        values.update(v for c in ("url", "caption") for v in table.column(c).to_pylist() if v and len(v) > 4)
    written = [p.read_text() for p in out.iterdir()] + [html.read_text(), text, json.dumps(data)]
    assert not [v for v in values for w in written if v in w]
    again = CliRunner().invoke(app, ["lineage", "notices", "--out", str(out), "--store", store])
    assert isinstance(again.exception, ExpungeError)


def test_build_prints_warnings_capped(tmp_path: Path) -> None:
    cards = tmp_path / "cards" / "models"
    for i in range(MAX_WARNINGS + 5):
        folder = cards / f"owner__m{i}"
        folder.mkdir(parents=True)
        (folder / "README.md").write_text("---\nbase_model: [unclosed\n---\n")
    result = CliRunner().invoke(
        app, ["lineage", "build", str(tmp_path / "cards"), "--store", str(tmp_path / "store")]
    )
    assert result.exit_code == 0, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("warning:")]
    assert len(lines) == MAX_WARNINGS + 1 and lines[-1].startswith("warning: ... and ")
    assert "unclosed" not in result.stderr  # warnings name the card, never quote it


def test_report_before_build_is_one_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["lineage", "report", "--store", str(tmp_path / "store")])
    assert isinstance(result.exception, ExpungeError) and "lineage build" in str(result.exception)
    bad = CliRunner().invoke(app, ["lineage", "report", "--format", "pdf", "--store", str(tmp_path)])
    assert isinstance(bad.exception, ExpungeError) and "unknown report format" in str(bad.exception)


def test_apply_with_lineage_id_marks_the_derivative(released: Released, tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    cards = tmp_path / "cards"
    for folder, text in (
        ("datasets/someone__subset", "---\nsource_datasets:\n- laion/laion2B-en\n---\n"),
        ("models/someone__model", "---\ndatasets:\n- someone/subset\n---\n"),
    ):
        (cards / folder).mkdir(parents=True)
        (cards / folder / "README.md").write_text(text)
    _ok(["lineage", "build", str(cards), "--store", store])
    derivative = tmp_path / "derivative"
    derivative.mkdir()
    shutil.copy(released.ds.root / "part-00000.parquet", derivative)
    args = ["apply", str(released.release), str(derivative), "--out", str(tmp_path / "out")]
    _ok([*args, "--lineage-id", "someone/subset", "--store", store, "-q", "--workers", "1"])
    data = json.loads(_ok(["lineage", "report", "--format", "json", "--store", store]))
    marked = {m["id"]: m for m in data["marked"]}
    assert marked["someone/subset"]["source"] == "evidence"
    assert marked["someone/subset"]["followed"] == released.merkle_root
    (model,) = [a for a in data["affected"] if a["id"] == "someone/model"]
    assert model["marked_ancestor"] == "someone/subset" and model["rows_removed"] > 0
