"""The ``nsfw`` soft signal end to end: img2dataset-style shards, a policy with a nudity review rule,
through the real CLI. The images are generated and benign (gradients and shapes): the model must find
nothing in them, and the images that do not decode must be withheld, never published as "safe".
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from expunge.cli.app import app
from expunge.demo.synth_images import generate_image_dataset, write_image_lists
from expunge.signals import nsfw

pytestmark = pytest.mark.skipif(
    not nsfw.available(), reason="the nsfw extra (onnxruntime, nudenet) is absent"
)

POLICY = """
name = "nudity-review"
[[rules]]
name = "nudity"
action = "review"
when = "nsfw > 0.8"
"""


def test_nsfw_policy_on_image_shards(tmp_path: Path) -> None:
    ds = generate_image_dataset(tmp_path / "images", samples=40, shards=2, listed=4, size=96)
    lists = write_image_lists(ds, tmp_path / "lists", listed=4, size=96)
    policy = tmp_path / "nudity.toml"
    policy.write_text(POLICY)
    store = tmp_path / "store"
    args = [
        "clean", str(ds.root), "--out", str(tmp_path / "rel"), "--store", str(store),
        "--list", f"{lists['image_md5']}:image_md5", "--policy", str(policy),
        "--workers", "1", "--json", "-q",
    ]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout[res.stdout.index("{") :])
    rows = summary["rows_in"]
    assert summary["rows_kept"] + summary["rows_removed"] + summary["rows_quarantined"] == rows
    # Generated benign pictures score low: no rule removes anything, none is queued for its score.
    assert summary["removed_by_rule"].get("nudity", 0) == 0
    reasons = summary["quarantined_by_reason"]
    # The generator plants images that do not decode; nudity cannot be scored there: withheld.
    assert sum(reasons.values()) >= 1 and set(reasons) <= {"review:pending", "empty_image", "not_an_image",
                                                           "truncated_image"}  # fmt: skip
    manifest = json.loads((tmp_path / "rel" / "MANIFEST.json").read_text())
    assert manifest["policy"]["name"] == "nudity-review"
    queued = CliRunner().invoke(app, ["review", "status", str(ds.root), "--store", str(store), "--json"])
    counts = json.loads(queued.stdout)
    assert counts["queued"] == reasons.get("review:pending", 0)
    # The model that scored it is named in the summary (and so in the release): name and SHA-256.
    assert summary["triage"]["nsfw_model"] == {"name": nsfw.MODEL_NAME, "sha256": nsfw.model_sha256()}
