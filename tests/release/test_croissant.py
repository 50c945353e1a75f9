"""Croissant JSON-LD and dataset card for a cleaned release: valid, loadable, and free of listed hashes."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path
from typing import Any

import pytest

from expunge import api
from expunge.release import croissant as cr
from tests.conftest import SmallDataset, build_small_dataset

RAI_FIELDS = (
    "rai:dataCollection",
    "rai:dataPreprocessingProtocol",
    "rai:dataLimitations",
    "rai:personalSensitiveInformation",
)


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> tuple[SmallDataset, Path]:
    """One real release (the API's clean flow) shared by the module: building it is the slow part."""
    base = tmp_path_factory.mktemp("croissant")
    ds = build_small_dataset(base)
    opts = api.Options(store=base / "store", workers=2)
    lists = [f"{ds.lists['iwf']}:url_md5", f"{ds.lists['c3p']}:url_sha1"]
    api.clean([str(ds.root)], base / "rel", lists=lists, opts=opts)
    return ds, base / "rel"


def _load(rel: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    return json.loads((rel / "MANIFEST.json").read_text()), json.loads((rel / "summary.json").read_text())


def _doc(rel: Path) -> dict[str, Any]:
    manifest, summary = _load(rel)
    return cr.croissant(
        manifest,
        summary,
        name="small-cleaned",
        license="https://spdx.org/licenses/CC-BY-4.0.html",
        columns=cr.parquet_columns(rel / manifest["shards"][0]["name"]),
    )


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any network connection fails: validation must work from the embedded @context alone."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("network access is blocked in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.usefixtures("offline")
def test_croissant_validates_with_mlcroissant_and_reads_the_kept_rows(
    release: tuple[SmallDataset, Path],
) -> None:
    mlc = pytest.importorskip("mlcroissant", reason="mlcroissant is not installed (pip install mlcroissant)")
    _, rel = release
    manifest, _ = _load(rel)
    path = rel / "croissant.json"
    path.write_text(cr.dumps(_doc(rel)))
    try:
        dataset = mlc.Dataset(jsonld=str(path))  # raises ValidationError on any error
        issues = dataset.metadata.ctx.issues
        assert not issues.errors
        for warning in sorted(issues.warnings):
            print("mlcroissant warning:", warning)
        # Only "recommended property missing" warnings are acceptable (citeAs, datePublished, version).
        assert all("is recommended, but does not exist" in w for w in issues.warnings), issues.warnings
        files = {fo.name: fo for fo in dataset.metadata.file_objects}
        assert {n: fo.sha256 for n, fo in files.items()} == {
            s["name"]: s["sha256"] for s in manifest["shards"]
        }
        assert {fo.encoding_formats[0] for fo in files.values()} == {"application/x-parquet"}
        rows = list(dataset.records("rows"))
        assert len(rows) == manifest["counts"]["rows_kept"]
        assert {"rows/key", "rows/url", "rows/caption", "rows/similarity", "rows/punsafe"} <= set(rows[0])
    finally:
        path.unlink()


def test_croissant_shape_and_rai_fields(release: tuple[SmallDataset, Path]) -> None:
    _, rel = release
    manifest, _ = _load(rel)
    doc = _doc(rel)
    assert doc["conformsTo"] == [
        "http://mlcommons.org/croissant/1.1",
        "http://mlcommons.org/croissant/RAI/1.0",
    ]
    assert doc["@context"]["rai"] == "http://mlcommons.org/croissant/RAI/"
    assert doc["prov:wasDerivedFrom"]["prov:label"] == manifest["input"]["dataset"]
    for field in RAI_FIELDS:
        assert doc[field], field
    protocol = " ".join(doc["rai:dataPreprocessingProtocol"])
    for bank in manifest["banks"]:
        assert f"{bank['name']} v{bank['version']}" in protocol and bank["signal"] in protocol
    assert str(manifest["counts"]["rows_quarantined"]) in " ".join(doc["rai:dataLimitations"])
    assert "only catch material already known" in " ".join(doc["rai:dataLimitations"])
    assert "removed without being accessed" in doc["rai:personalSensitiveInformation"][0]
    with_url = cr.croissant(manifest, {}, name="x", source_url="https://example.org/laion-mini")
    assert with_url["prov:wasDerivedFrom"] == {"@id": "https://example.org/laion-mini"}
    assert "recordSet" not in with_url  # no columns given: files only


def test_no_listed_hash_value_appears_in_croissant_or_card(release: tuple[SmallDataset, Path]) -> None:
    ds, rel = release
    manifest, summary = _load(rel)
    listed = set()
    for path in ds.lists.values():
        listed |= {h.lower() for h in re.findall(r"\b[0-9a-fA-F]{32,64}\b", path.read_text())}
    assert len(listed) > 10
    text = (cr.dumps(_doc(rel)) + cr.dataset_card(manifest, summary, name="small-cleaned")).lower()
    leaked = sorted(h for h in listed if h in text)
    assert not leaked, f"{len(leaked)} listed hash values leaked"


def test_card_front_matter_parses_and_carries_the_merkle_root(release: tuple[SmallDataset, Path]) -> None:
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed")
    _, rel = release
    manifest, summary = _load(rel)
    card = cr.dataset_card(manifest, summary, name='small "cleaned": a test')
    assert card.startswith("---\n")
    front, body = card[4:].split("\n---\n", 1)
    meta = yaml.safe_load(front)
    assert meta["pretty_name"] == 'small "cleaned": a test'
    assert meta["tags"] == ["expunge", "cleaned"]
    assert meta["size_categories"] == ["1K<n<10K"]
    block = meta["expunge"]
    assert block["merkle_root"] == manifest["merkle_root"]
    counts = manifest["counts"]
    assert (block["rows_kept"], block["rows_removed"], block["rows_quarantined"]) == (
        counts["rows_kept"],
        counts["rows_removed"],
        counts["rows_quarantined"],
    )
    assert {b["name"]: b["rows_matched"] for b in block["banks"]} == {
        b["name"]: summary["removed_by_bank"].get(f"{b['name']}@v{b['version']}", 0)
        for b in manifest["banks"]
    }
    assert sum(b["rows_matched"] for b in block["banks"]) >= 1
    assert "expunge verify RELEASE --pubkey KEY" in body and manifest["merkle_root"] in body


def test_outputs_are_deterministic(release: tuple[SmallDataset, Path]) -> None:
    _, rel = release
    manifest, summary = _load(rel)
    assert cr.dumps(_doc(rel)) == cr.dumps(_doc(rel))
    assert cr.dataset_card(manifest, summary, name="a") == cr.dataset_card(manifest, summary, name="a")


@pytest.mark.usefixtures("offline")
def test_tar_shards_are_described_as_tar_and_validate() -> None:
    mlc = pytest.importorskip("mlcroissant", reason="mlcroissant is not installed (pip install mlcroissant)")
    shards = [
        {"name": f"{i:05d}.tar", "sha256": f"{i:02x}" * 32, "rows": 10, "action": "copied"} for i in range(2)
    ]
    manifest = {
        "tool": "expunge test",
        "input": {"dataset": "imgs-0123456789ab", "rows": 21, "shards": []},
        "banks": [{"name": "pdq", "version": 1, "signal": "pdq", "count": 5, "threshold": 31, "source": "s"}],
        "policy": {},
        "counts": {"rows_in": 21, "rows_kept": 20, "rows_removed": 1, "rows_quarantined": 0},
        "shards": shards,
        "merkle_root": "ab" * 32,
    }
    doc = cr.croissant(manifest, {"removed_by_bank": {"pdq@v1": 1}}, name="imgs", columns=[("url", "string")])
    assert [d["encodingFormat"] for d in doc["distribution"]] == ["application/x-tar"] * 2
    assert "recordSet" not in doc and "threshold 31" in " ".join(doc["rai:dataPreprocessingProtocol"])
    metadata = mlc.Dataset(jsonld=doc).metadata
    assert not metadata.ctx.issues.errors
