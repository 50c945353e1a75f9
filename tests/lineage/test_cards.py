"""Reading cards: the fixture tree, messy cards, dumps, merging sources and repo-id normalisation."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from expunge.errors import ExpungeError
from expunge.lineage import cards as cards_mod
from expunge.lineage.cards import (
    RELATIONS,
    Cards,
    Edge,
    canonical_id,
    fetch_cards,
    read_dump,
    read_sources,
    read_tree,
)

FIXTURE = Path(__file__).parent / "fixtures" / "sd-family"


@pytest.fixture(scope="module")
def fixture_cards() -> Cards:
    return read_tree(FIXTURE)


def _edge(cards: Cards, parent: str, child: str) -> list[Edge]:
    return [e for e in cards.edges if e.parent == parent and e.child == child]


def _warnings_for(cards: Cards, card: str) -> list[str]:
    return [w.message for w in cards.warnings if w.card == card]


def _card(root: Path, repo: str, front: str, body: str = "Text.") -> Path:
    folder = root / repo
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "README.md").write_text(f"---\n{front}\n---\n\n{body}\n")
    return folder


# --------------------------------------------------------------------------------------------------
# The fixture tree


def test_fixture_reads_every_card(fixture_cards: Cards) -> None:
    assert fixture_cards.cards_read == 35
    assert all(e.relation in RELATIONS for e in fixture_cards.edges)
    kinds = {n.id: n.kind for n in fixture_cards.nodes.values()}
    assert kinds["laion/laion2b-en"] == "dataset"
    assert kinds["runwayml/stable-diffusion-v1-5"] == "model"
    assert fixture_cards.nodes["laion/laion-high-resolution"].gated
    assert fixture_cards.nodes["compvis/stable-diffusion-v1-1"].license == "creativeml-openrail-m"
    assert not fixture_cards.nodes["example-ghost/never-published"].has_card


def test_relations_and_declared_flags(fixture_cards: Cards) -> None:
    def one(parent: str, child: str) -> tuple[str, bool]:
        (e,) = _edge(fixture_cards, parent, child)
        return e.relation, e.declared

    assert one("laion/laion2b-en", "compvis/stable-diffusion-v1-1") == ("trained_on", True)
    assert one("laion/laion2b-en", "laion/laion-aesthetics-v2") == ("subset", True)
    assert one("laion/laion5b", "laion/laion-high-resolution") == ("derived", True)
    assert one("compvis/stable-diffusion-v1-2", "compvis/stable-diffusion-v1-4") == ("finetune", True)
    assert one("compvis/stable-diffusion-v1-1", "compvis/stable-diffusion-v1-2") == ("finetune", True)
    assert one("runwayml/stable-diffusion-v1-5", "example-artist/watercolor-lora") == ("adapter", True)
    assert one("example-lab/photoreal-v1", "example-mixer/dreamy-photoreal-merge") == ("merge", True)
    assert one("runwayml/stable-diffusion-v1-5", "example-quant/sd15-int8") == ("quantized", True)
    assert one("laion/clip-vit-h-14-laion2b-s32b-b79k", "stabilityai/stable-diffusion-2") == (
        "component",
        False,
    )
    assert one("google-bert/bert-base-uncased", "example-nlp/tiny-classifier") == ("base", False)
    assert one("runwayml/stable-diffusion-v1-5", "messy/bad-relation") == ("base", True)


def test_edges_name_the_file_they_came_from(fixture_cards: Cards) -> None:
    (e,) = _edge(fixture_cards, "laion/clip-vit-h-14-laion2b-s32b-b79k", "stabilityai/stable-diffusion-2")
    assert e.card == "models/stabilityai/stable-diffusion-2/text_encoder/config.json"
    (e,) = _edge(fixture_cards, "runwayml/stable-diffusion-v1-5", "example-artist/watercolor-lora")
    assert e.card == "models/example-artist__watercolor-lora/adapter_config.json"


def test_hub_cache_reads_the_snapshot_refs_main_names(fixture_cards: Cards) -> None:
    parents = {e.parent for e in fixture_cards.edges if e.child == "example-quant/sd15-int8"}
    assert parents == {"runwayml/stable-diffusion-v1-5"}  # not the older snapshot's parent


def test_hub_cache_without_refs_takes_the_newest_snapshot(tmp_path: Path) -> None:
    repo = tmp_path / "models" / "models--o--q"
    old = _card(repo / "snapshots", "aaaa", "base_model: o/old-base")
    new = _card(repo / "snapshots", "bbbb", "base_model: o/new-base")
    os.utime(old / "..", None)
    os.utime(old, (1_000_000, 1_000_000))
    os.utime(new, (2_000_000, 2_000_000))
    got = read_tree(tmp_path)
    assert {e.parent for e in got.edges if e.declared} == {"o/new-base"}
    assert {e.parent for e in got.edges if not e.declared} == {"o/old-base"}  # followed, not declared
    assert [e.card for e in got.edges if e.declared] == ["models/models--o--q/snapshots/bbbb/README.md"]


def test_hub_cache_folders_at_the_root(tmp_path: Path) -> None:
    _card(tmp_path / "models--o--m" / "snapshots", "h1", "datasets:\n  - o/d")
    _card(tmp_path / "datasets--o--d" / "snapshots", "h2", "license: mit")
    got = read_tree(tmp_path)
    assert got.nodes["o/d"].has_card and got.nodes["o/d"].kind == "dataset"
    assert [(e.parent, e.child) for e in got.edges] == [("o/d", "o/m")]


def test_empty_hub_cache_folder_is_a_warning(tmp_path: Path) -> None:
    (tmp_path / "models" / "models--o--m").mkdir(parents=True)
    got = read_tree(tmp_path)
    assert got.cards_read == 0
    assert _warnings_for(got, "models/models--o--m") == ["Hub cache folder has no snapshot; skipped"]


# --------------------------------------------------------------------------------------------------
# Messy cards: each gets a warning naming it, and nothing crashes

MESSY = {
    "models/messy/yaml-error/README.md": "not valid YAML (line 3)",
    "models/messy/string-datasets/README.md": "datasets is a string",
    "models/messy/unknown-base/README.md": "example-ghost/never-published, which has no card",
    "models/messy/Case-Difference/README.md": "letter case differs",
    "models/messy/cycle-a/README.md": "lineage cycle through messy/cycle-a, messy/cycle-b",
    "models/messy/non-utf8/README.md": "not valid UTF-8",
    "models/messy/ownerless-dataset/README.md": "laion2B-en without an owner",
    "models/messy/late-front-matter/README.md": "not at the start",
    "models/messy/list-of-numbers/README.md": "datasets entry 1 is not a string",
    "models/messy/bad-relation/README.md": "recorded as 'base'",
    "models/messy/local-adapter/adapter_config.json": "base_model_name_or_path is not a repo id",
}


@pytest.mark.parametrize("card", sorted(MESSY))
def test_each_messy_card_gets_a_warning_naming_it(fixture_cards: Cards, card: str) -> None:
    assert any(MESSY[card] in m for m in _warnings_for(fixture_cards, card)), _warnings_for(
        fixture_cards, card
    )


def test_clean_cards_get_no_warning(fixture_cards: Cards) -> None:
    assert all(w.card.startswith("models/messy/") for w in fixture_cards.warnings)


def test_warnings_never_quote_card_content(fixture_cards: Cards) -> None:
    text = "\n".join(f"{w.card} {w.message}" for w in fixture_cards.warnings)
    for content in ("{{", "caf", "\ufffd", "/home/user", "42", "distilled", "heading", "Broken"):
        assert content not in text


def test_messy_cards_still_give_the_edges_they_state(fixture_cards: Cards) -> None:
    assert _edge(fixture_cards, "laion/laion2b-en", "messy/string-datasets")
    assert _edge(fixture_cards, "laion/laion2b-en", "messy/non-utf8")
    assert _edge(fixture_cards, "compvis/stable-diffusion-v1-4", "messy/late-front-matter")
    assert _edge(fixture_cards, "laion2b-en", "messy/ownerless-dataset")  # unresolved, of its own
    assert _edge(fixture_cards, "laion/laion5b", "messy/list-of-numbers")
    assert not [e for e in fixture_cards.edges if e.child == "messy/yaml-error"]


def test_case_differences_keep_the_cards_own_spelling(fixture_cards: Cards) -> None:
    assert fixture_cards.nodes["runwayml/stable-diffusion-v1-5"].display == "runwayml/stable-diffusion-v1-5"
    assert fixture_cards.nodes["messy/case-difference"].display == "messy/Case-Difference"
    assert fixture_cards.nodes["laion2b-en"].display == "laion2B-en"


def test_first_spelling_is_kept_until_the_card_itself_is_read(tmp_path: Path) -> None:
    _card(tmp_path / "models", "a/child-one", "base_model: Org/Base")
    _card(tmp_path / "models", "b/child-two", "base_model: ORG/BASE")
    got = read_tree(tmp_path)
    assert got.nodes["org/base"].display == "Org/Base"
    assert _warnings_for(got, "models/b/child-two/README.md") == [
        "refers to Org/Base as ORG/BASE (letter case differs)",
        "names Org/Base, which has no card in these sources",
    ]
    _card(tmp_path / "models", "org/base", "license: mit")
    got = read_tree(tmp_path)
    assert got.nodes["org/base"].display == "org/base"
    assert "refers to org/base as Org/Base (letter case differs)" in _warnings_for(
        got, "models/a/child-one/README.md"
    )


def test_huge_readme_is_capped(tmp_path: Path) -> None:
    folder = _card(tmp_path / "models", "o/big", "datasets:\n  - o/d", body="x" * (3 * cards_mod.README_CAP))
    got = read_tree(tmp_path)
    assert _edge(got, "o/d", "o/big")
    (folder / "README.md").write_text("---\n" + "tags:\n" + "  - t\n" * cards_mod.README_CAP)
    got = read_tree(tmp_path)
    assert any("not closed within its first" in m for m in _warnings_for(got, "models/o/big/README.md"))


def test_cap_cutting_a_multibyte_character_is_not_a_utf8_error(tmp_path: Path) -> None:
    front = "---\ndatasets:\n  - o/d\n---\n"
    pad = cards_mod.README_CAP - len(front) - 1
    folder = tmp_path / "models" / "o" / "m"
    folder.mkdir(parents=True)
    (folder / "README.md").write_bytes(front.encode() + b"y" * pad + "é".encode() * 10)
    got = read_tree(tmp_path)
    assert not [m for m in _warnings_for(got, "models/o/m/README.md") if "UTF-8" in m]
    assert [e.parent for e in got.edges] == ["o/d"]


def test_markdown_rules_below_prose_are_not_front_matter(tmp_path: Path) -> None:
    folder = tmp_path / "models" / "o" / "m"
    folder.mkdir(parents=True)
    (folder / "README.md").write_text("# Title\n\n---\n\nSome prose: with a colon.\n\n---\n")
    got = read_tree(tmp_path)
    assert "README.md has no front matter" in _warnings_for(got, "models/o/m/README.md")


@pytest.mark.parametrize(
    ("front", "expected"),
    [
        ("- just\n- a list", "front matter is not a mapping"),
        ("date: 2020-13-45", "a value YAML cannot build"),
        ("datasets: {a: b}", "datasets is neither a list nor a string"),
        ("base_model: [null, 3, o/base]", "base_model entry 1 is not a string"),
        ("base_model: o/m", "names o/m as its own parent"),
        ("base_model: ../../etc", "base_model is not a repo id"),
        ("base_model: https://huggingface.co/spaces/o/app", "base_model is not a repo id"),
        ("base_model_relation: merge", "names no datasets and no base model"),
        ("base_model: o/x\nbase_model_relation: [merge]", "recorded as 'base'"),
    ],
)
def test_odd_front_matter_gives_one_warning(tmp_path: Path, front: str, expected: str) -> None:
    _card(tmp_path / "models", "o/m", front)
    got = read_tree(tmp_path)
    messages = _warnings_for(got, "models/o/m/README.md")
    assert any(expected in m for m in messages), messages


def test_alias_bomb_front_matter_is_harmless(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 12)]
    lines.append("datasets: *a11")
    _card(tmp_path / "models", "o/m", "\n".join(lines))
    got = read_tree(tmp_path)
    assert len([w for w in got.warnings if "not a string" in w.message]) == 4


def test_odd_json_files_give_warnings(tmp_path: Path) -> None:
    folder = _card(tmp_path / "models", "o/m", "base_model: o/base")
    (folder / "config.json").write_text("{not json")
    (folder / "adapter_config.json").write_text("[1, 2]")
    (folder / "model_index.json").write_bytes(b'{"_name_or_path": "o/\xff"}')
    got = read_tree(tmp_path)
    assert _warnings_for(got, "models/o/m/config.json") == ["is not valid JSON (line 1); skipped"]
    assert _warnings_for(got, "models/o/m/adapter_config.json") == ["is not a JSON object; skipped"]
    assert _warnings_for(got, "models/o/m/model_index.json") == ["is not valid UTF-8; skipped"]


def test_adapter_config_says_what_an_unqualified_base_model_is(tmp_path: Path) -> None:
    folder = _card(tmp_path / "models", "o/lora", "base_model: o/base")
    (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "o/base"}))
    got = read_tree(tmp_path)
    assert [(e.relation, e.declared) for e in got.edges] == [("adapter", True)]


def test_a_stated_parent_replaces_the_hint_for_it(tmp_path: Path) -> None:
    folder = _card(tmp_path / "models", "o/ft", "base_model: o/base")
    (folder / "config.json").write_text(json.dumps({"_name_or_path": "o/base"}))
    got = read_tree(tmp_path)
    assert [(e.relation, e.declared) for e in got.edges] == [("finetune", True)]


def test_hints_without_an_owner_are_ignored(tmp_path: Path) -> None:
    folder = _card(tmp_path / "models", "o/m", "datasets:\n  - o/d")
    (folder / "config.json").write_text(json.dumps({"_name_or_path": "checkpoint-500"}))
    got = read_tree(tmp_path)
    assert [e.parent for e in got.edges] == ["o/d"]
    assert "checkpoint-500" not in got.nodes


def test_tree_layouts_and_odd_folders(tmp_path: Path) -> None:
    _card(tmp_path / "models", "owner__name", "datasets:\n  - o/d")
    _card(tmp_path / "models", "legacy-model", "datasets:\n  - o/d")
    _card(tmp_path / "models", "bad name!", "datasets:\n  - o/d")
    (tmp_path / "models" / "o" / "empty").mkdir(parents=True)
    got = read_tree(tmp_path)
    assert {e.child for e in got.edges} == {"owner/name", "legacy-model"}
    assert any("has no owner" in m for m in _warnings_for(got, "models/legacy-model/README.md"))
    assert _warnings_for(got, "models/bad name!") == ["folder name is not a repo id; skipped"]
    assert "is missing" in _warnings_for(got, "models/o/empty/README.md")


def test_a_second_card_for_the_same_id_is_a_warning(tmp_path: Path) -> None:
    _card(tmp_path / "models", "o/m", "datasets:\n  - o/d1")
    _card(tmp_path / "models", "o__M", "datasets:\n  - o/d2")
    got = read_tree(tmp_path)
    assert got.cards_read == 1
    assert got.nodes["o/m"].display == "o/m"  # "models/o/m" sorts before "models/o__M"
    assert any("a second card for o/m" in m for m in _warnings_for(got, "models/o__M/README.md"))
    assert {e.parent for e in got.edges} == {"o/d1", "o/d2"}


def test_kind_mismatch_is_a_warning(tmp_path: Path) -> None:
    _card(tmp_path / "models", "o/base", "license: mit")
    _card(tmp_path / "models", "o/m", "datasets:\n  - o/base")
    got = read_tree(tmp_path)
    assert any(
        "as a dataset, but its card is a model card" in m for m in _warnings_for(got, "models/o/m/README.md")
    )


def test_longer_cycles_are_reported_once_each(tmp_path: Path) -> None:
    for i in range(4):
        _card(tmp_path / "models", f"c/n{i}", f"base_model: c/n{(i + 1) % 4}")
    _card(tmp_path / "models", "c/tail", "base_model: c/n0")
    _card(tmp_path / "models", "d/x", "base_model: d/y")
    _card(tmp_path / "models", "d/y", "base_model: d/x")
    got = read_tree(tmp_path)
    cycles = [w for w in got.warnings if "cycle" in w.message]
    assert [w.card for w in cycles] == ["models/c/n0/README.md", "models/d/x/README.md"]
    assert "c/n0, c/n1, c/n2, c/n3" in cycles[0].message


def test_bad_roots_raise_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ExpungeError, match="not a folder of cards"):
        read_tree(tmp_path / "absent")
    with pytest.raises(ExpungeError, match="no models/ or datasets/ folder"):
        read_tree(tmp_path)


# --------------------------------------------------------------------------------------------------
# Dumps and merged sources


def _dump(path: Path, rows: list[dict[str, object]]) -> Path:
    cols = ["id", "kind", "card_data", "adapter_base", "name_or_path"]
    table = pa.table({c: pa.array([r.get(c) for r in rows], type=pa.string()) for c in cols})
    pq.write_table(table, path)
    return path


DUMP_ROWS: list[dict[str, object]] = [
    {"id": "laion/laion2B-en", "kind": "dataset", "card_data": json.dumps({"license": "cc-by-4.0"})},
    {"id": "o/base", "kind": "model", "card_data": json.dumps({"datasets": ["laion/laion2B-en"]})},
    {"id": "o/ft", "kind": "model", "card_data": json.dumps({"base_model": "o/base"})},
    {"id": "o/lora", "kind": "model", "card_data": None, "adapter_base": "o/ft"},
    {"id": "o/hinted", "kind": "model", "card_data": "{}", "name_or_path": "o/ft"},
    {"id": "o/bad-json", "kind": "model", "card_data": "{not json"},
    {"id": "o/list", "kind": "model", "card_data": "[1]"},
    {"id": "/not/an/id", "kind": "model", "card_data": "{}"},
    {"id": "o/odd-kind", "kind": "space", "card_data": json.dumps({"base_model": "o/base"})},
]


def test_read_dump(tmp_path: Path) -> None:
    got = read_dump(_dump(tmp_path / "cards.parquet", DUMP_ROWS))
    edges = {(e.parent, e.child, e.relation, e.declared, e.card) for e in got.edges}
    assert edges == {
        ("laion/laion2b-en", "o/base", "trained_on", True, "dump:1"),
        ("o/base", "o/ft", "finetune", True, "dump:2"),
        ("o/ft", "o/lora", "adapter", True, "dump:3"),
        ("o/ft", "o/hinted", "base", False, "dump:4"),
        ("o/base", "o/odd-kind", "finetune", True, "dump:8"),
    }
    assert got.cards_read == 8
    assert got.nodes["laion/laion2b-en"].display == "laion/laion2B-en"
    messages = {(w.card, w.message) for w in got.warnings}
    assert ("dump:5", "card_data is not valid JSON; its fields are skipped") in messages
    assert ("dump:6", "card_data is not a JSON object; its fields are skipped") in messages
    assert ("dump:7", "id is not a repo id; row skipped") in messages
    assert ("dump:8", "kind is neither model nor dataset; read as a model card") in messages


def test_read_dump_with_odd_column_types(tmp_path: Path) -> None:
    table = pa.table(
        {
            "id": pa.array(["o/a", "o/b", "o/c"]),
            "kind": pa.array(["model", "model", "model"]),
            "card_data": pa.array([{"base_model": "o/base"}, None, {"base_model": None}]),
            "adapter_base": pa.array([None, 7, None], type=pa.int64()),
        }
    )
    pq.write_table(table, tmp_path / "odd.parquet")
    got = read_dump(tmp_path / "odd.parquet")
    assert [(e.parent, e.child) for e in got.edges] == [("o/base", "o/a")]
    assert ("dump:1", "base_model_name_or_path is missing or not a string") in {
        (w.card, w.message) for w in got.warnings
    }
    pq.write_table(
        pa.table({"id": ["o/a"], "kind": ["model"], "card_data": pa.array([[1, 2]])}),
        tmp_path / "list.parquet",
    )
    got = read_dump(tmp_path / "list.parquet")
    assert next((w.card, w.message) for w in got.warnings) == (
        "dump:0",
        "card_data is not valid JSON; its fields are skipped",
    )


def test_read_dump_refuses_what_is_not_a_dump(tmp_path: Path) -> None:
    pq.write_table(pa.table({"id": ["a/b"]}), tmp_path / "short.parquet")
    with pytest.raises(ExpungeError, match="lacks column"):
        read_dump(tmp_path / "short.parquet")
    (tmp_path / "junk.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(ExpungeError, match="not a readable parquet file"):
        read_dump(tmp_path / "junk.parquet")


def test_read_sources_merges_and_declared_wins(tmp_path: Path) -> None:
    dump = _dump(
        tmp_path / "d.parquet",
        [{"id": "runwayml/stable-diffusion-v1-5", "kind": "model", "card_data": "{}", "name_or_path": "o/x"}],
    )
    tree = tmp_path / "tree"
    _card(
        tree / "models",
        "o/child",
        "base_model: runwayml/stable-diffusion-v1-5\nbase_model_relation: finetune",
    )
    hinted = _card(tree / "models", "o/hinted", "license: mit")
    (hinted / "config.json").write_text(json.dumps({"_name_or_path": "O/Child"}))
    _card(tree / "models", "o/also-hinted", "base_model: o/child")
    (tree / "models" / "o" / "also-hinted" / "config.json").write_text(
        json.dumps({"_name_or_path": "o/child"})
    )
    got = read_sources([dump, tree, FIXTURE])
    assert got.cards_read == 1 + 3 + 35 - 1  # v1-5 appears in the dump and the fixture
    assert any("a second card for runwayml/stable-diffusion-v1-5" in w.message for w in got.warnings)
    assert [e for e in got.edges if e.child == "runwayml/stable-diffusion-v1-5" and e.parent == "o/x"]
    (e,) = [e for e in got.edges if e.child == "o/also-hinted"]
    assert (e.relation, e.declared) == ("finetune", True)
    (e,) = [e for e in got.edges if e.child == "o/hinted"]
    assert (e.relation, e.declared) == ("base", False)
    with pytest.raises(ExpungeError, match="not a card tree"):
        read_sources([tmp_path / "notes.txt"])


def test_same_edge_inferred_then_declared_keeps_the_declared_one(tmp_path: Path) -> None:
    dump = _dump(
        tmp_path / "d.parquet",
        [
            {"id": "o/a", "kind": "model", "card_data": "{}", "name_or_path": "o/base"},
            {"id": "o/b", "kind": "model", "card_data": json.dumps({"base_model": "o/base"})},
        ],
    )
    tree = tmp_path / "tree"
    _card(tree / "models", "o/a", "base_model: o/base\nbase_model_relation: distilled")
    got = read_sources([dump, tree])
    (e,) = [e for e in got.edges if e.child == "o/a"]
    assert (e.relation, e.declared, e.card) == ("base", True, "models/o/a/README.md")


def test_fetch_cards_needs_the_hub_extra(tmp_path: Path) -> None:
    try:
        import huggingface_hub  # noqa: F401
    except ImportError:
        with pytest.raises(ExpungeError, match="hub extra"):
            fetch_cards(["o/m"], tmp_path)
    else:  # the extra is installed: never touch the network in tests
        assert callable(fetch_cards)


def test_fixture_copy_reads_the_same(tmp_path: Path, fixture_cards: Cards) -> None:
    shutil.copytree(FIXTURE, tmp_path / "copy")
    again = read_tree(tmp_path / "copy")
    assert again.edges == fixture_cards.edges and again.warnings == fixture_cards.warnings


# --------------------------------------------------------------------------------------------------
# canonical_id


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("laion/laion2B-en", "laion/laion2b-en"),
        ("  CompVis/stable-diffusion-v1-4 ", "compvis/stable-diffusion-v1-4"),
        ("https://huggingface.co/runwayml/stable-diffusion-v1-5", "runwayml/stable-diffusion-v1-5"),
        ("http://hf.co/runwayml/stable-diffusion-v1-5/", "runwayml/stable-diffusion-v1-5"),
        ("HTTPS://HuggingFace.co/datasets/laion/laion2B-en/tree/main", "laion/laion2b-en"),
        ("huggingface.co/o/m/resolve/main/model.safetensors?download=true", "o/m"),
        ("hf://datasets/laion/laion5B", "laion/laion5b"),
        ("datasets/laion/laion5B", "laion/laion5b"),
        ("o/m@main", "o/m"),
        ("o/m@0123abc", "o/m"),
        ("models--o--m", "o/m"),
        ("datasets--laion--laion2B-en", "laion/laion2b-en"),
        ("laion2B-en", "laion2b-en"),
        ("bert-base-uncased", "bert-base-uncased"),
        ("https://huggingface.co/spaces/o/app", None),
        ("/home/user/sd15", None),
        ("./out", None),
        ("C:\\models\\sd", None),
        ("a/b/c", None),
        ("o/m--x", None),
        ("o/..", None),
        ("", None),
        ("o/ m", None),
        ("o/caf\u00e9", "o/cafe"),  # accents folded: Hub ids are ASCII, a look-alike names the same repo
        ("https://example.com/o/m", None),
    ],
)
def test_canonical_id_examples(text: str, expected: str | None) -> None:
    assert canonical_id(text) == expected


def test_canonical_id_rejects_non_strings() -> None:
    assert canonical_id(42) is None  # type: ignore[arg-type]
    assert canonical_id(None) is None  # type: ignore[arg-type]


ID_CHARS = st.text("abcXYZ019._-", min_size=1, max_size=12)
ASCII = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60)


@given(ASCII)
def test_canonical_id_is_idempotent(text: str) -> None:
    once = canonical_id(text)
    assert once is None or canonical_id(once) == once


@given(ASCII)
def test_canonical_id_ignores_case(text: str) -> None:
    assert canonical_id(text.upper()) == canonical_id(text.lower()) == canonical_id(text)


@given(ID_CHARS, ID_CHARS, st.sampled_from(["", "/", "/tree/main", "/blob/v1/README.md", "?x=1", "#top"]))
def test_canonical_id_url_forms_agree(owner: str, name: str, tail: str) -> None:
    plain = canonical_id(f"{owner}/{name}")
    for prefix in (
        "https://huggingface.co/",
        "http://www.huggingface.co/",
        "hf.co/",
        "https://hf.co/models/",
    ):
        assert canonical_id(f"{prefix}{owner}/{name}{tail}") == plain
    if plain is not None and "-" not in owner + name:
        assert canonical_id(f"models--{owner}--{name}") == plain
        assert canonical_id(f"{owner}/{name}@v1.0") == plain
