"""Triage end to end through the real ``expunge`` entry point (issue 10): neighbour expansion and the
review loop, the research presets, the flood guard, negative banks, the manifest, reruns and errors.

Every command runs in-process through ``expunge.cli.app.main`` (the console script's function), so exit
codes and the one-line errors are the user's. The data is ``tests/triage_data.py``: SYNTHETIC lists of
ordinary generated URLs and a neutral keyword.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import stat
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from expunge.cli.app import main
from expunge.store import Store
from tests.conftest import tree_bytes
from tests.triage_data import NEAR, PLACEHOLDER_URL, TERM, Key, TriageData, make_triage_data, md5

# ---------------------------------------------------------------------------------------------------
# Running the CLI


@dataclass
class Ran:
    args: tuple[str, ...]
    code: int
    out: str
    err: str


class Cli:
    """The ``expunge`` command in this process; remembers every run for the containment checks."""

    def __init__(self) -> None:
        self.runs: list[Ran] = []

    def __call__(self, *args: str | Path) -> Ran:
        argv = tuple(str(a) for a in args)
        with CliRunner().isolation() as (out, err, _):
            saved = sys.argv
            sys.argv = ["expunge", *argv]
            try:
                main()
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            finally:
                sys.argv = saved
                sys.stdout.flush()
                sys.stderr.flush()
            ran = Ran(argv, code, out.getvalue().decode(), err.getvalue().decode())
        self.runs.append(ran)
        return ran

    def ok(self, *args: str | Path) -> Ran:
        ran = self(*args)
        assert ran.code == 0, (ran.args, ran.code, ran.out, ran.err)
        return ran

    def clean(self, data: TriageData, store: Path, out: Path, *args: str | Path) -> dict:
        ran = self.ok("clean", data.root, "--out", out, "--store", store, "--workers", "1", "--json", *args)
        summary: dict = json.loads(ran.out)
        check_release(self, data, out, summary)
        return summary


def nothing_in(out: Path) -> bool:
    """Nothing written: the release folder is absent (the lock's folder goes again when a run is refused)."""
    return not out.exists()


def one_line_error(ran: Ran, *needles: str) -> str:
    assert ran.code == 2, (ran.args, ran.code, ran.out, ran.err)
    assert "Traceback" not in ran.out + ran.err
    lines = [line for line in ran.err.splitlines() if line.strip()]
    assert len(lines) == 1, ran.err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


# ---------------------------------------------------------------------------------------------------
# What a release must be


def release_rows(out: Path, data: TriageData) -> dict[str, list[int]]:
    """Per shard, the source rows a release published (URLs and captions are unique per row)."""
    index = {(s, data.caption((s, i))): i for s in data.shards for i in range(len(data.urls[s]))}
    got: dict[str, list[int]] = {}
    for s in data.shards:
        caps = pq.read_table(out / s, columns=["caption"]).column("caption").to_pylist()
        got[s] = [index[(s, c)] for c in caps]
    return got


def check_release(cli: Cli, data: TriageData, out: Path, summary: dict) -> None:
    """Row accounting (summary, per shard, parquet, aligned embeddings), row order, and verify."""
    assert summary["rows_in"] == data.rows
    assert summary["rows_kept"] + summary["rows_removed"] + summary["rows_quarantined"] == data.rows
    kept = release_rows(out, data)
    assert sum(len(v) for v in kept.values()) == summary["rows_kept"]
    for entry in summary["shards"]:
        name = entry["name"]
        assert entry["rows_kept"] + entry["rows_removed"] + entry["rows_quarantined"] == entry["rows_in"]
        assert pq.ParquetFile(out / name).metadata.num_rows == entry["rows_kept"]
        assert kept[name] == sorted(kept[name])  # source order
        emb_name = data.embedding(name).name
        if data.embedding(name).is_file():
            emb = np.load(out / "img_emb" / emb_name)
            assert emb.shape[0] == entry["rows_kept"]
            np.testing.assert_array_equal(emb, np.load(data.embedding(name))[kept[name]])
    cli.ok("verify", out)


def outcome(data: TriageData, out: Path, store: Path) -> tuple[set[Key], set[Key], dict[Key, str]]:
    """(kept, removed, quarantined → reason) of the release in ``out``, from the release itself and the
    store's private per-row records."""
    kept = {(s, i) for s, rows in release_rows(out, data).items() for i in rows}
    removed: set[Key] = set()
    quarantined: dict[Key, str] = {}
    for rec in private_records(store, out):
        key = (rec["shard"], rec["row"])
        if rec["action"] == "removed":
            removed.add(key)
        else:
            (reason,) = rec["reasons"]
            quarantined[key] = reason.removeprefix("quarantine:")
    assert not (kept & removed) and not (kept & set(quarantined)) and not (removed & set(quarantined))
    assert len(kept) + len(removed) + len(quarantined) == data.rows
    return kept, removed, quarantined


def private_records(store: Path, out: Path) -> list[dict]:
    """The store-private per-row records of the release in ``out`` (removed and quarantined rows)."""
    dataset = json.loads((out / "MANIFEST.json").read_text())["input"]["dataset"]
    return pq.read_table(Store(store).private_dir(dataset, out) / "removed.parquet").to_pylist()


# ---------------------------------------------------------------------------------------------------
# Containment


def _strings(value: object) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, bytes):
        yield value.decode("utf-8", "replace")
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(k)
            yield from _strings(v)


def leaks(paths: Iterable[Path], secrets: Iterable[str], texts: Iterable[str] = ()) -> list[str]:
    """Every (place, secret) where a secret occurs: raw bytes of every file, every string value of
    every parquet file (compressed pages hide bytes), and the given texts (stdout, stderr)."""
    wanted = sorted(set(secrets))
    found: list[str] = []
    files = [f for p in paths for f in ([p] if p.is_file() else sorted(p.rglob("*"))) if f.is_file()]
    for f in files:
        raw = f.read_bytes()
        found += [f"{f}: {s!r}" for s in wanted if s.encode() in raw]
        if f.suffix == ".parquet":
            table = pq.read_table(f)
            blob = "\n".join(
                "\n".join(_strings(table.column(i).to_pylist()))
                for i, field in enumerate(table.schema)
                if not pa.types.is_floating(field.type) and not pa.types.is_integer(field.type)
            )
            blob += "\n" + "\n".join(
                _strings({k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()})
            )
            found += [f"{f} (values): {s!r}" for s in wanted if s in blob]
    for n, text in enumerate(texts):
        found += [f"output {n}: {s!r}" for s in wanted if s in text]
    return found


def secrets_of(data: TriageData, keys: Iterable[Key]) -> list[str]:
    return [x for k in keys for x in (data.url(k), data.caption(k))]


# ---------------------------------------------------------------------------------------------------
# Fixtures

EXPAND = """\
name = "expand"
[neighbour]
k = 20
min_cosine = 0.9
[[rules]]
name = "near-known"
action = "review"
when = "neighbour >= 0.9"
[[rules]]
name = "kw"
action = "remove"
when = "keyword"
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> TriageData:
    return make_triage_data(tmp_path_factory.mktemp("triage"))


@pytest.fixture
def cli() -> Cli:
    return Cli()


def hashes_list(data: TriageData) -> str:
    return f"{data.lists['hashes']}:url_md5"


# ---------------------------------------------------------------------------------------------------
# 1-3: expansion, review loop, accounting, containment


def _verdicts(pkg: Path, decide: dict[Key, str], path: Path) -> dict[Key, str]:
    """Fill the package's template: review id → verdict for the candidates named in ``decide``."""
    with (pkg / "candidates.csv").open(newline="") as f:
        cands = {(r["shard"], int(r["row"])): r["review_id"] for r in csv.DictReader(f)}
    with (pkg / "verdicts-template.csv").open(newline="") as f:
        template = list(csv.DictReader(f))
    assert {r["review_id"] for r in template} == set(cands.values())
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["review_id", "verdict", "reviewer", "note"])
    for key, verdict in decide.items():
        w.writerow([cands[key], verdict, "SYNTHETIC-hotline", ""])
    path.write_text(buf.getvalue())
    return {k: cands[k] for k in decide}


def _candidates(pkg: Path) -> set[Key]:
    with (pkg / "candidates.csv").open(newline="") as f:
        return {(r["shard"], int(r["row"])) for r in csv.DictReader(f)}


def test_expansion_review_loop_accounting_and_containment(data: TriageData, cli: Cli, tmp_path: Path) -> None:
    store, policy = tmp_path / "store", tmp_path / "expand.toml"
    policy.write_text(EXPAND)
    args = ("--list", hashes_list(data), "--policy", policy, "--keywords", data.keywords)
    neighbours = sorted(data.neighbours)
    (second,) = data.second
    first = data.second[second]  # the planted neighbour the second-round row is near
    others = [k for k in neighbours if k != first]

    # Round 1: the planted neighbours of the hash-list rows are withheld and queued.
    s1 = cli.clean(data, store, tmp_path / "out1", *args)
    kept1, removed1, quarantined1 = outcome(data, tmp_path / "out1", store)
    assert removed1 == data.hashed | data.keyword
    assert quarantined1 == dict.fromkeys(neighbours, "review:pending")
    assert second in kept1  # not near any hash-list row: published in round 1
    assert s1["removed_by_rule"] == {"hash-lists": len(data.hashed), "kw": len(data.keyword)}
    assert s1["quarantined_by_reason"] == {"review:pending": len(neighbours)}
    status = json.loads(cli.ok("review", "status", data.root, "--store", store, "--json").out)
    assert status["queued"] == len(neighbours) and status["exported"] == 0

    pkg1 = tmp_path / "pkg1"
    cli.ok("review", "export", data.root, "--out", pkg1, "--store", store)
    assert _candidates(pkg1) == set(neighbours)
    assert not (pkg1 / "urls.csv").exists()
    with (pkg1 / "candidates.csv").open(newline="") as f:
        signals = [json.loads(r["signals"]) for r in csv.DictReader(f)]
    assert all(s["neighbour"] == pytest.approx(NEAR, abs=0.01) for s in signals)

    decide = {
        first: "confirmed",
        others[0]: "confirmed",
        others[1]: "not",
        others[2]: "not",
        others[3]: "unsure",
    }
    _verdicts(pkg1, decide, tmp_path / "verdicts.csv")
    cli.ok(
        "review",
        "import",
        tmp_path / "verdicts.csv",
        data.root,
        "--store",
        store,
        "--by",
        "SYNTHETIC-hotline",
    )
    status = json.loads(cli.ok("review", "status", data.root, "--store", store, "--json").out)
    assert (status["confirmed"], status["not"], status["unsure"], status["queued"]) == (2, 2, 1, 0)

    # Round 2: confirmed rows removed, rejected published, unsure withheld; the confirmed neighbour
    # seeds the row planted near it.
    s2 = cli.clean(data, store, tmp_path / "out2", *args)
    kept2, removed2, quarantined2 = outcome(data, tmp_path / "out2", store)
    confirmed = {k for k, v in decide.items() if v == "confirmed"}
    rejected = {k for k, v in decide.items() if v == "not"}
    assert removed2 == data.hashed | data.keyword | confirmed
    assert rejected <= kept2
    assert quarantined2 == {others[3]: "review:unsure", second: "review:pending"}
    assert s2["removed_by_rule"] == {
        "hash-lists": len(data.hashed),
        "kw": len(data.keyword),
        "review-confirmed": len(confirmed),
    }
    records = {(r["shard"], r["row"]): r["reasons"] for r in private_records(store, tmp_path / "out2")}
    assert all(records[k] == ["review:confirmed"] for k in confirmed)
    status = json.loads(cli.ok("review", "status", data.root, "--store", store, "--json").out)
    assert (status["confirmed"], status["not"], status["unsure"], status["queued"]) == (2, 2, 1, 1)

    pkg2 = tmp_path / "pkg2"
    cli.ok("review", "export", data.root, "--out", pkg2, "--store", store)
    assert _candidates(pkg2) == {second}  # rejected rows are not queued again; unsure needs --again

    # Containment over everything written and printed so far.
    flagged_ever = data.hashed | data.keyword | set(neighbours) | {second}
    outside = [store, pkg1, pkg2, tmp_path / "verdicts.csv"]
    texts = [t for r in cli.runs for t in (r.out, r.err)]
    assert leaks(outside, [*secrets_of(data, flagged_ever), TERM], texts) == []
    assert leaks([tmp_path / "out1"], [*secrets_of(data, removed1 | set(quarantined1)), TERM]) == []
    assert leaks([tmp_path / "out2"], [*secrets_of(data, removed2 | set(quarantined2)), TERM]) == []
    # The checks can see: a published row's URL and caption are found in the release.
    assert len(leaks([tmp_path / "out1"], secrets_of(data, {second}))) >= 2
    # The store holds no term, in any form the list file has.
    assert leaks([store], [TERM, TERM.upper(), data.keywords.read_text().strip()]) == []

    # With --include-urls (and --again), URLs go to urls.csv only, mode 0600, with a warning.
    pkg3 = tmp_path / "pkg3"
    ran = cli.ok("review", "export", data.root, "--out", pkg3, "--store", store, "--include-urls", "--again")
    assert _candidates(pkg3) == {second, others[3]}
    assert stat.S_IMODE((pkg3 / "urls.csv").stat().st_mode) == 0o600
    assert "urls.csv" in ran.err and "warning" in ran.err
    urls = (pkg3 / "urls.csv").read_text()
    assert data.url(second) in urls and data.url(others[3]) in urls
    assert (
        leaks(
            [p for p in pkg3.iterdir() if p.name != "urls.csv"],
            secrets_of(data, flagged_ever),
            [ran.out, ran.err],
        )
        == []
    )


# ---------------------------------------------------------------------------------------------------
# 4-5: the research presets


def test_research_safe_keeps_exactly_the_rows_at_or_below_045(
    data: TriageData, cli: Cli, tmp_path: Path
) -> None:
    store, out = tmp_path / "store", tmp_path / "out"
    summary = cli.clean(
        data, store, out, "--list", hashes_list(data), "--policy", "research-safe",
        "--keywords", data.keywords, "--publish-records",
    )  # fmt: skip
    kept, removed, quarantined = outcome(data, out, store)
    expect_kept = {
        k
        for k in data.all_keys()
        if k not in data.hashed and not data.missing(k) and data.score(k) <= 0.45  # type: ignore[operator]
    }
    assert kept == expect_kept
    assert set(quarantined) == {k for k in data.all_keys() if data.missing(k)} - data.hashed
    assert all(r.startswith("missing:") for r in quarantined.values())
    assert removed == data.hashed | {
        k for k in data.all_keys() if not data.missing(k) and data.score(k) > 0.45
    }  # type: ignore[operator]
    # The manifest names the policy and what each rule removed; removed.parquet names the rule.
    manifest = json.loads((out / "MANIFEST.json").read_text())
    assert manifest["policy"]["name"] == "research-safe"
    assert manifest["policy"]["source"] == "preset:research-safe"
    assert [r["name"] for r in manifest["policy"]["rules"]] == ["unsafe-and-keyword", "unsafe"]
    assert manifest["counts"]["removed_by_rule"] == summary["removed_by_rule"]
    high_kw = {k for k in data.keyword - data.hashed if not data.missing(k) and data.score(k) > 0.95}  # type: ignore[operator]
    assert summary["removed_by_rule"] == {
        "hash-lists": len(data.hashed),
        "unsafe-and-keyword": len(high_kw),
        "unsafe": len(removed) - len(data.hashed) - len(high_kw),
    }
    published = {
        (r["shard"], r["row"]): r["reasons"] for r in pq.read_table(out / "removed.parquet").to_pylist()
    }
    assert all(published[k] == ["rule:unsafe-and-keyword"] for k in high_kw)
    assert all(published[k] == ["rule:unsafe"] for k in removed - data.hashed - high_kw)
    assert manifest["keyword_lists"] == [
        {"name": "kw", "sha256": hashlib.sha256(data.keywords.read_bytes()).hexdigest(), "terms": 1}
    ]


def test_research_keyword_and_score(data: TriageData, cli: Cli, tmp_path: Path) -> None:
    store, out = tmp_path / "store", tmp_path / "out"
    cli.clean(
        data, store, out, "--list", hashes_list(data), "--policy", "research", "--keywords", data.keywords
    )
    kept, removed, quarantined = outcome(data, out, store)
    kw = data.keyword - data.hashed
    high = {k for k in data.all_keys() if not data.missing(k) and data.score(k) > 0.95}  # type: ignore[operator]
    missing = {k for k in data.all_keys() if data.missing(k)}
    assert kw & high and high - kw and kw & missing and missing - kw  # every case is present
    assert removed == data.hashed | (kw & high)
    assert set(quarantined) == kw & missing
    assert (high - kw - data.hashed) <= kept
    assert (missing - kw - data.hashed) <= kept


# ---------------------------------------------------------------------------------------------------
# 6: flood guard


def test_flood_guard_share_accept_and_nothing_written(data: TriageData, cli: Cli, tmp_path: Path) -> None:
    store, out = tmp_path / "store", tmp_path / "out"
    base = ("clean", data.root, "--out", out, "--store", store, "--workers", "1", "-q")
    partner = f"{data.lists['partner']}:url_md5"
    hits = len(data.hashed) + len(data.placeholder)
    ran = cli(*base, "--list", partner, "--flood-min-rows", "10")
    line = one_line_error(ran, "flood guard", "'partner'", f"{hits} of {data.rows}", "--accept-flood partner")
    assert nothing_in(out), line
    ran = cli.ok(*base, "--list", partner, "--flood-min-rows", "10", "--accept-flood", "partner", "--json")
    assert json.loads(ran.out)["rows_removed"] == hits
    cli.ok("verify", out)


def test_flood_guard_multiple_of_previous(data: TriageData, cli: Cli, tmp_path: Path) -> None:
    store, out = tmp_path / "store", tmp_path / "out"
    grow = tmp_path / "grow.txt"
    keys = sorted(k for k in data.all_keys() if k not in data.placeholder)
    grow.write_text("# SYNTHETIC\n" + "".join(md5(data.url(k)) + "\n" for k in keys[:2]))
    base = (
        "clean",
        data.root,
        "--out",
        out,
        "--store",
        store,
        "--workers",
        "1",
        "-q",
        "--list",
        f"{grow}:url_md5",
    )
    limits = ("--flood-min-rows", "1", "--flood-share", "1")
    cli.ok(*base, *limits)
    before = tree_bytes(out)
    grow.write_text("# SYNTHETIC\n" + "".join(md5(data.url(k)) + "\n" for k in keys[:40]))
    ran = cli(*base, *limits)
    one_line_error(
        ran, "flood guard", "'grow'", "40 of", "the 2 of the previous clean", "--accept-flood grow"
    )
    assert tree_bytes(out) == before
    cli.ok(*base, *limits, "--accept-flood", "grow")
    assert (
        pq.read_metadata(out / data.shards[0]).num_rows
        + sum(pq.read_metadata(out / s).num_rows for s in data.shards[1:])
        == data.rows - 40
    )


def test_flood_guard_rule_max_share(data: TriageData, cli: Cli, tmp_path: Path) -> None:
    store, out = tmp_path / "store", tmp_path / "out"
    policy = tmp_path / "strict.toml"
    policy.write_text(
        '[[rules]]\nname = "unsafe"\naction = "remove"\nwhen = "score.punsafe > 0.45"\nmax_share = 0.02\n'
    )
    base = ("clean", data.root, "--out", out, "--store", store, "--workers", "1", "-q",
            "--list", hashes_list(data), "--policy", policy, "--flood-min-rows", "5")  # fmt: skip
    decided = sum(
        1 for k in data.all_keys() if k not in data.hashed and (data.missing(k) or data.score(k) > 0.45)
    )  # type: ignore[operator]
    assert decided > 0.02 * data.rows
    one_line_error(cli(*base), "flood guard", "rule 'unsafe'", f"{decided} of {data.rows}", "limit 2.00%")
    assert nothing_in(out)
    cli.ok(*base, "--accept-flood", "unsafe")


# ---------------------------------------------------------------------------------------------------
# 7: negative banks


def test_negative_bank_on_the_command_line(data: TriageData, cli: Cli, tmp_path: Path) -> None:
    store, out = tmp_path / "store", tmp_path / "out"
    summary = cli.clean(
        data, store, out, "--list", f"{data.lists['partner']}:url_md5",
        "--negative", f"{data.lists['cleared']}:url_md5", "--publish-records",
    )  # fmt: skip
    kept, removed, _q = outcome(data, out, store)
    assert removed == data.hashed
    assert data.placeholder <= kept
    assert summary["negative_cancelled"] == {"cleared": len(data.placeholder)}
    manifest = json.loads((out / "MANIFEST.json").read_text())
    assert manifest["counts"]["negative_cancelled"] == {"cleared": len(data.placeholder)}
    assert [b["name"] for b in manifest["negative_banks"]] == ["cleared"]
    assert (
        leaks([out / "removed.parquet", out / "MANIFEST.json", out / "summary.json"], [PLACEHOLDER_URL]) == []
    )


def test_negative_bank_imported_and_a_positive_bank_cannot_turn_negative(
    data: TriageData, cli: Cli, tmp_path: Path
) -> None:
    store, out = tmp_path / "store", tmp_path / "out"
    cli.ok("lists", "import", data.lists["partner"], "--signal", "url_md5", "--store", store)
    cli.ok("lists", "import", data.lists["cleared"], "--signal", "url_md5", "--negative", "--store", store)
    summary = cli.clean(data, store, out, "--bank", "partner", "--bank", "cleared")
    assert summary["negative_cancelled"] == {"cleared": len(data.placeholder)}
    assert summary["rows_removed"] == len(data.hashed)
    ran = cli("lists", "import", data.lists["partner"], "--signal", "url_md5", "--negative", "--store", store)
    line = one_line_error(ran, "partner")
    assert "negative" in line or "allow" in line


# ---------------------------------------------------------------------------------------------------
# 8-9: manifest of a policy file, reruns


def test_policy_file_in_manifest_and_rerun_is_byte_identical(
    data: TriageData, cli: Cli, tmp_path: Path
) -> None:
    store, out = tmp_path / "store", tmp_path / "out"
    policy = tmp_path / "mine.toml"
    policy.write_text(EXPAND)
    args = ("--list", hashes_list(data), "--policy", policy, "--keywords", data.keywords, "--publish-records")
    summary = cli.clean(data, store, out, *args)
    first = tree_bytes(out)
    manifest = json.loads((out / "MANIFEST.json").read_text())
    pol = manifest["policy"]
    assert (pol["name"], pol["source"]) == ("expand", "mine.toml")
    assert pol["sha256"] == hashlib.sha256(policy.read_bytes()).hexdigest()
    assert [(r["name"], r["action"], r["when"]) for r in pol["rules"]] == [
        ("near-known", "review", "neighbour >= 0.9"),
        ("kw", "remove", "keyword"),
    ]
    assert manifest["counts"]["removed_by_rule"] == {"hash-lists": len(data.hashed), "kw": len(data.keyword)}
    reasons = {
        (r["shard"], r["row"]): r["reasons"] for r in pq.read_table(out / "removed.parquet").to_pylist()
    }
    assert all(reasons[k] == ["rule:kw"] for k in data.keyword)
    # removed.parquet is published: it names rows, never their URL, caption or the term.
    assert leaks([out / "removed.parquet"], [*secrets_of(data, data.keyword | data.hashed), TERM]) == []
    again = cli.clean(data, store, out, *args)
    assert tree_bytes(out) == first
    assert again == summary


# ---------------------------------------------------------------------------------------------------
# 10: clear errors


@pytest.mark.parametrize(
    ("policy", "needles"),
    [
        ('[[rules]]\nname = "wm"\naction = "remove"\nwhen = "score.pwatermark > 0.5"\n', ("pwatermark",)),
        (
            '[[rules]]\nname = "cap"\naction = "remove"\nwhen = "score.caption > 0.5"\n',
            ("caption", "not a number"),
        ),
        ('[[rules]]\nname = "kw"\naction = "remove"\nwhen = "keyword"\n', ("--keywords",)),
        ('name = "x"\n[[rules]]\nname = "bad"\naction = "remove"\nwhen = "keyword\n', ("bad.toml", "line 5")),
    ],
    ids=["missing-column", "string-column", "no-keywords", "malformed"],
)
def test_policy_errors_are_one_line(
    data: TriageData, cli: Cli, tmp_path: Path, policy: str, needles: tuple[str, ...]
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(policy)
    out = tmp_path / "out"
    ran = cli("clean", data.root, "--out", out, "--store", tmp_path / "store", "--workers", "1", "-q",
              "--list", hashes_list(data), "--policy", path)  # fmt: skip
    one_line_error(ran, *needles)
    assert nothing_in(out)


def test_keyword_preset_without_keywords(data: TriageData, cli: Cli, tmp_path: Path) -> None:
    ran = cli("clean", data.root, "--out", tmp_path / "out", "--store", tmp_path / "store", "-q",
              "--list", hashes_list(data), "--policy", "research")  # fmt: skip
    one_line_error(ran, "--keywords")


def test_neighbour_policy_without_embeddings(cli: Cli, tmp_path: Path) -> None:
    small = make_triage_data(tmp_path / "small", shards=2, rows=60, embeddings=False)
    policy = tmp_path / "expand.toml"
    policy.write_text(EXPAND)
    ran = cli("clean", small.root, "--out", tmp_path / "out", "--store", tmp_path / "store", "-q",
              "--workers", "1", "--list", hashes_list(small), "--policy", policy,
              "--keywords", small.keywords)  # fmt: skip
    one_line_error(ran, "embeddings")
    assert nothing_in(tmp_path / "out")


def test_verdict_with_unknown_review_id(data: TriageData, cli: Cli, tmp_path: Path) -> None:
    store = tmp_path / "store"
    policy = tmp_path / "expand.toml"
    policy.write_text(EXPAND)
    cli.clean(
        data,
        store,
        tmp_path / "out",
        "--list",
        hashes_list(data),
        "--policy",
        policy,
        "--keywords",
        data.keywords,
    )
    verdicts = tmp_path / "v.csv"
    verdicts.write_text("review_id,verdict\n" + "0" * 24 + ",confirmed\n")
    one_line_error(cli("review", "import", verdicts, data.root, "--store", store), "v.csv", "line 2")
    status = json.loads(cli.ok("review", "status", data.root, "--store", store, "--json").out)
    assert status["confirmed"] == 0 and status["queued"] == len(data.neighbours)


# ---------------------------------------------------------------------------------------------------
# Attacks: a changed decision on a rerun into the same folder and store


def test_verdicts_change_a_release_rewritten_in_place(data: TriageData, cli: Cli, tmp_path: Path) -> None:
    """Round 2 into round 1's folder: shards whose rows a verdict changed are redone, not resumed."""
    store, out, policy = tmp_path / "store", tmp_path / "out", tmp_path / "expand.toml"
    policy.write_text(EXPAND)
    args = ("--list", hashes_list(data), "--policy", policy, "--keywords", data.keywords)
    cli.clean(data, store, out, *args)
    pkg = tmp_path / "pkg"
    cli.ok("review", "export", data.root, "--out", pkg, "--store", store)
    neighbours = sorted(data.neighbours)
    decide = {k: ("confirmed" if j % 2 else "not") for j, k in enumerate(neighbours)}
    _verdicts(pkg, decide, tmp_path / "v.csv")
    cli.ok("review", "import", tmp_path / "v.csv", data.root, "--store", store, "--by", "SYNTHETIC")
    cli.clean(data, store, out, *args)
    kept, removed, quarantined = outcome(data, out, store)
    confirmed = {k for k, v in decide.items() if v == "confirmed"}
    assert removed == data.hashed | data.keyword | confirmed
    assert {k for k, v in decide.items() if v == "not"} <= kept
    found_second = {r for r, p in data.second.items() if p in confirmed}
    assert quarantined == dict.fromkeys(found_second, "review:pending")


def test_switching_policies_on_one_store_and_folder(data: TriageData, cli: Cli, tmp_path: Path) -> None:
    """Soft findings kept at one policy's lowest threshold are redone for a lower one, and back."""
    store, out = tmp_path / "store", tmp_path / "out"
    base = ("--list", hashes_list(data), "--keywords", data.keywords)
    results = {}
    for name in ("research", "research-safe", "research", "hash-only"):
        cli.clean(data, store, out, *base, "--policy", name)
        results.setdefault(name, []).append(outcome(data, out, store))
    assert results["research"][0] == results["research"][1]
    kept, removed, quarantined = results["research-safe"][0]
    assert kept == {
        k
        for k in data.all_keys()
        if k not in data.hashed and not data.missing(k) and data.score(k) <= 0.45  # type: ignore[operator]
    }
    kept, removed, quarantined = results["hash-only"][0]
    assert removed == data.hashed and not quarantined


def test_keyword_list_edit_is_seen_on_rerun(data: TriageData, cli: Cli, tmp_path: Path) -> None:
    """The same list file with another term: soft findings are redone (fingerprint of the file bytes)."""
    store, out, policy = tmp_path / "store", tmp_path / "out", tmp_path / "kwonly.toml"
    policy.write_text('[[rules]]\nname = "kw"\naction = "remove"\nwhen = "keyword"\n')
    kw = tmp_path / "kw.txt"
    kw.write_text(TERM + "\n")
    args = ("--list", hashes_list(data), "--policy", policy, "--keywords", kw)
    cli.clean(data, store, out, *args)
    assert outcome(data, out, store)[1] == data.hashed | data.keyword
    kw.write_text("zeppelin\n")  # neutral, in no caption
    cli.clean(data, store, out, *args)
    assert outcome(data, out, store)[1] == data.hashed


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("k1.txt", f"ok\n{TERM}\x07x\n".encode(), "line 2"),
        ("k2.csv", f"word,category\n{TERM},a\n".encode(), "line 1"),
        ("k3.csv", f'term,category\n"{TERM},a\n'.encode(), "line 2"),
        ("k4.txt", b"\xff" + TERM.encode(), "line 1"),
    ],
    ids=["control", "no-term-column", "bad-csv", "not-utf8"],
)
def test_bad_keyword_list_names_file_and_line_never_a_term(
    data: TriageData, cli: Cli, tmp_path: Path, name: str, content: bytes, needle: str
) -> None:
    kw = tmp_path / name
    kw.write_bytes(content)
    ran = cli("clean", data.root, "--out", tmp_path / "out", "--store", tmp_path / "store", "-q",
              "--list", hashes_list(data), "--policy", "research", "--keywords", kw)  # fmt: skip
    line = one_line_error(ran, name, needle)
    assert TERM not in line.lower()
    assert nothing_in(tmp_path / "out")


def test_bad_verdict_lines_are_never_quoted(data: TriageData, cli: Cli, tmp_path: Path) -> None:
    store = tmp_path / "store"
    policy = tmp_path / "expand.toml"
    policy.write_text(EXPAND)
    cli.clean(data, store, tmp_path / "out", "--list", hashes_list(data), "--policy", policy,
              "--keywords", data.keywords)  # fmt: skip
    url = data.url(next(iter(sorted(data.neighbours))))
    v = tmp_path / "v.csv"
    for body in (f"abc,confirmed,x,{url}\n", "a" * 24 + f",yes-{TERM},x,{url}\n"):
        v.write_text("review_id,verdict,reviewer,note\n" + body)
        line = one_line_error(cli("review", "import", v, data.root, "--store", store), "v.csv", "line 2")
        assert url not in line and TERM not in line and "abc" not in line
