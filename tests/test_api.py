"""The commands that used to live in the CLI, called through the API: ``verify`` with lists (the
re-match moved up from ``release.verify``, which no longer calls the API) and ``diff_release``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from expunge import api
from tests.conftest import SmallDataset


def test_verify_rematches_the_release_against_lists(small_ds: SmallDataset, tmp_path: Path) -> None:
    iwf, c3p = f"{small_ds.lists['iwf']}:url_md5", f"{small_ds.lists['c3p']}:url_sha1:canonical"
    rel = tmp_path / "rel"
    api.clean([str(small_ds.root)], rel, lists=[iwf], opts=api.Options(store=tmp_path / "s", workers=1))
    assert api.verify(rel, lists=[iwf], workers=1) == []
    problems = api.verify(rel, lists=[c3p], workers=1)
    assert len(problems) == 1 and "rows still match bank" in problems[0], problems
    # A release that does not check out is not re-matched: the file problem is the answer.
    summary = json.loads((rel / "summary.json").read_text())
    (rel / "summary.json").write_text(json.dumps({**summary, "rows_in": 0}))
    problems = api.verify(rel, lists=[c3p], workers=1)
    assert problems and not any("still match" in p for p in problems)


def test_diff_release_names_changed_shards(small_ds: SmallDataset, tmp_path: Path) -> None:
    opts = api.Options(store=tmp_path / "s", workers=1)
    iwf, c3p = f"{small_ds.lists['iwf']}:url_md5", f"{small_ds.lists['c3p']}:url_sha1:canonical"
    api.clean([str(small_ds.root)], tmp_path / "a", lists=[iwf], opts=opts)
    api.clean([str(small_ds.root)], tmp_path / "b", lists=[iwf, c3p], opts=opts)
    diff = api.diff_release(tmp_path / "a", tmp_path / "b" / "MANIFEST.json")
    assert diff["added"] == diff["removed"] == []
    assert diff["changed"] and small_ds.clean_shard not in diff["changed"]
    assert diff["unchanged"] + len(diff["changed"]) == 4
    assert api.diff_release(tmp_path / "a", tmp_path / "a")["changed"] == []


def test_list_spec_takes_any_signals_own_recipes(tmp_path: Path) -> None:
    from expunge.api import ListSpec
    from expunge.errors import ExpungeError

    assert ListSpec.parse("a/b.txt:caption_sha256:nfc") == ListSpec(Path("a/b.txt"), "caption_sha256", "nfc")
    assert ListSpec.parse("c:/x.txt:url_sha1:canonical").recipe == "canonical"
    with pytest.raises(ExpungeError, match="unknown signal type 'nosuch'"):
        ListSpec.parse(f"{tmp_path / 'l.txt'}:nosuch")
