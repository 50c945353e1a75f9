"""The URL flow with dataset, store and release on a real S3 API (moto's server, over HTTP).

The release must be the one a local run makes, byte for byte; ``verify`` must pass on it in place and
catch a tampered object; the store must work from another machine's empty cache; bad input must be
one line naming the URL.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from expunge.cli.app import app
from tests.conftest import build_small_dataset
from tests.s3server import S3Server

runner = CliRunner()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "cache"
    monkeypatch.setenv("EXPUNGE_CACHE", str(path))
    return path


def _upload(server: S3Server, bucket: str, folder: Path, prefix: str) -> None:
    client = server.client()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            client.put_object(
                Bucket=bucket, Key=f"{prefix}/{p.relative_to(folder).as_posix()}", Body=p.read_bytes()
            )


def _objects(server: S3Server, bucket: str, prefix: str) -> dict[str, bytes]:
    client = server.client()
    out: dict[str, bytes] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            out[key[len(prefix) + 1 :]] = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    return out


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The real command in its own process (exit status and stderr as a user sees them)."""
    cmd = [sys.executable, "-m", "expunge.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=dict(os.environ))


def _run(*args: str) -> str:
    res = runner.invoke(app, [*args])
    assert res.exit_code == 0, res.output
    return res.output


def test_release_on_s3_equals_the_local_release(s3_server: S3Server, cache: Path, tmp_path: Path) -> None:
    ds = build_small_dataset(tmp_path, shards=3, rows_per_shard=800, row_group_size=200)
    bucket = s3_server.make_bucket()
    _upload(s3_server, bucket, ds.root, "data")
    iwf = ds.lists["iwf"]
    local_store, local_out = tmp_path / "store", tmp_path / "out"
    _run(
        "clean",
        str(ds.root),
        "--list",
        f"{iwf}:url_md5",
        "--store",
        str(local_store),
        "--out",
        str(local_out),
        "-q",
    )
    remote = [f"s3://{bucket}/data/", "--list", f"{iwf}:url_md5"]
    _run(
        "clean",
        *remote,
        "--store",
        f"s3://{bucket}/store",
        "--out",
        f"s3://{bucket}/out",
        "--workers",
        "2",
        "-q",
    )
    published = _objects(s3_server, bucket, "out")
    local = {p.relative_to(local_out).as_posix(): p.read_bytes() for p in local_out.rglob("*") if p.is_file()}
    assert sorted(published) == sorted(local)
    for name in local:
        if name.endswith(".parquet"):
            assert published[name] == local[name], name
    man_remote = json.loads(published["MANIFEST.json"])
    man_local = json.loads(local["MANIFEST.json"])
    assert [(s["name"], s["sha256"], s["rows"]) for s in man_remote["shards"]] == [
        (s["name"], s["sha256"], s["rows"]) for s in man_local["shards"]
    ]
    # The store lives on S3: its lock is gone and its files are there.
    store = _objects(s3_server, bucket, "store")
    assert "lock.json" not in store and "key" in store
    assert any(k.startswith("banks/") for k in store)
    # verify checks the remote release in place, and catches a tampered object.
    assert _cli("verify", f"s3://{bucket}/out").returncode == 0
    shard = sorted(n for n in published if n.endswith(".parquet"))[0]
    s3_server.client().put_object(Bucket=bucket, Key=f"out/{shard}", Body=published[shard][:-1] + b"\0")
    bad = _cli("verify", f"s3://{bucket}/out")
    assert bad.returncode != 0 and shard in bad.stdout + bad.stderr
    assert "Traceback" not in bad.stderr


def test_a_second_machine_resumes_from_the_remote_store(
    s3_server: S3Server, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ds = build_small_dataset(tmp_path, shards=2, rows_per_shard=500)
    bucket = s3_server.make_bucket()
    _upload(s3_server, bucket, ds.root, "data")
    args = [
        "clean",
        f"s3://{bucket}/data",
        "--list",
        f"{ds.lists['iwf']}:url_md5",
        "--store",
        f"s3://{bucket}/store",
        "--out",
        f"s3://{bucket}/out",
        "--json",
        "-q",
    ]
    _run(*args)
    first = _objects(s3_server, bucket, "out")
    monkeypatch.setenv("EXPUNGE_CACHE", str(tmp_path / "other-machine"))
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout[res.stdout.index("{") :])
    assert _objects(s3_server, bucket, "out") == first
    assert summary["rows_removed"] > 0


def test_a_held_lock_refuses_a_second_run(s3_server: S3Server, cache: Path, tmp_path: Path) -> None:
    ds = build_small_dataset(tmp_path, shards=1, rows_per_shard=200)
    bucket = s3_server.make_bucket()
    holder = {"host": "elsewhere.example", "pid": 1, "since": "2026-12-01T00:00:00+00:00", "token": "x"}
    s3_server.client().put_object(Bucket=bucket, Key="store/lock.json", Body=json.dumps(holder).encode())
    iwf = f"{ds.lists['iwf']}:url_md5"
    out = tmp_path / "out"
    res = _cli("clean", str(ds.root), "--list", iwf, "--store", f"s3://{bucket}/store", "--out", str(out))
    assert res.returncode == 2, res.stderr
    assert "in use by another expunge run" in res.stderr and "elsewhere.example" in res.stderr
    assert "Traceback" not in res.stderr
    assert not out.exists()


def test_a_missing_bucket_is_one_line(s3_server: S3Server, cache: Path, tmp_path: Path) -> None:
    ds = build_small_dataset(tmp_path, shards=1, rows_per_shard=200)
    iwf = f"{ds.lists['iwf']}:url_md5"
    out = tmp_path / "out"
    res = _cli(
        "clean",
        "s3://no-such-bucket/data/",
        "--list",
        iwf,
        "--store",
        str(tmp_path / "st"),
        "--out",
        str(out),
    )
    assert res.returncode == 2, res.stderr
    assert "no-such-bucket" in res.stderr and "Traceback" not in res.stderr
    assert len([line for line in res.stderr.splitlines() if line.strip()]) == 1
    assert not out.exists()


def _killed_run(args: list[str], at: int, log: Path | None = None) -> subprocess.CompletedProcess[str]:
    from tests import faults

    env = dict(os.environ, EXPUNGE_FAULT_AT=str(at))
    if log is not None:
        env["EXPUNGE_FAULT_LOG"] = str(log)
    return subprocess.run(faults.cli_command(args), capture_output=True, text=True, timeout=120, env=env)


def test_killed_runs_against_s3_resume_to_the_same_release(
    s3_server: S3Server, cache: Path, tmp_path: Path
) -> None:
    """SIGKILL-like deaths at points spread over a run (stages, staging, store push, publish); after
    each, no object under the release is partial or foreign, and a rerun gives the reference release."""
    from tests import faults

    ds = build_small_dataset(tmp_path, shards=3, rows_per_shard=400)
    bucket = s3_server.make_bucket()
    _upload(s3_server, bucket, ds.root, "data")
    iwf = f"{ds.lists['iwf']}:url_md5"

    def args(run: str) -> list[str]:
        store, out = f"s3://{bucket}/{run}/store", f"s3://{bucket}/{run}/out"
        return [
            "clean",
            f"s3://{bucket}/data",
            "--list",
            iwf,
            "--store",
            store,
            "--out",
            out,
            "--workers",
            "1",
            "-q",
        ]

    count_log = tmp_path / "events"
    first = _killed_run(args("ref"), 0, count_log)
    assert first.returncode == 0, first.stderr
    reference = _objects(s3_server, bucket, "ref/out")
    events = int(count_log.read_text())
    assert events > 20
    points = sorted({max(1, events * k // 6) for k in range(1, 6)} | {events - 1})
    for i, at in enumerate(points):
        run = f"k{i}"
        killed = _killed_run(args(run), at)
        assert killed.returncode == faults.KILLED, (at, killed.stderr)
        for name, body in _objects(s3_server, bucket, f"{run}/out").items():
            assert name in reference and body == reference[name], (at, name)  # nothing partial, nothing else
        rerun = _cli(*args(run))
        assert rerun.returncode == 0, (at, rerun.stderr)
        assert _objects(s3_server, bucket, f"{run}/out") == reference, at


def test_a_network_failure_is_one_line_and_a_rerun_resumes(
    s3_server: S3Server, cache: Path, tmp_path: Path
) -> None:
    """The endpoint goes away after the stages ran (the release is being published): one line naming the
    URL, exit status 2, nothing of the release visible; once it is back, the rerun redoes no shard and
    publishes the release."""
    ds = build_small_dataset(tmp_path, shards=2, rows_per_shard=400)
    bucket = s3_server.make_bucket()
    iwf = f"{ds.lists['iwf']}:url_md5"
    args = [
        "clean",
        str(ds.root),
        "--list",
        iwf,
        "--store",
        str(tmp_path / "st"),
        "--out",
        f"s3://{bucket}/out",
    ]
    s3_server.stop()
    failed = _cli(*args, "--workers", "1", "-q")
    assert failed.returncode == 2, failed.stderr
    lines = [line for line in failed.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and f"s3://{bucket}/out" in lines[0] and "Traceback" not in failed.stderr
    assert "testing" not in failed.stderr  # no credential in the message
    s3_server.start()
    s3_server.make_bucket(bucket)
    rerun = _cli(*args, "--workers", "1", "--json", "-q")
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads(rerun.stdout[rerun.stdout.index("{") :])
    assert summary["rows_removed"] > 0
    published = _objects(s3_server, bucket, "out")
    assert "MANIFEST.json" in published and all(s["name"] in published for s in summary["shards"])
    assert _cli("verify", f"s3://{bucket}/out").returncode == 0


def test_denied_credentials_are_one_line(s3_server: S3Server, cache: Path, tmp_path: Path) -> None:
    ds = build_small_dataset(tmp_path, shards=1, rows_per_shard=200)
    bucket = s3_server.make_bucket()
    _upload(s3_server, bucket, ds.root, "data")
    iwf = f"{ds.lists['iwf']}:url_md5"
    out = tmp_path / "out"
    with s3_server.enforce_auth():
        res = _cli(
            "clean", f"s3://{bucket}/data", "--list", iwf, "--store", str(tmp_path / "st"), "--out", str(out)
        )
    assert res.returncode == 2, res.stderr
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and f"s3://{bucket}/data" in lines[0], res.stderr
    assert "Traceback" not in res.stderr and "testing" not in res.stderr
    assert not out.exists()


def test_the_image_flow_on_s3_equals_the_local_one(s3_server: S3Server, cache: Path, tmp_path: Path) -> None:
    """img2dataset shards (tar + parquet + stats) on S3, PDQ and image-MD5 lists (SYNTHETIC: hashes of
    generated images): the release on S3 is the local run's, file for file."""
    from expunge.demo.synth_images import generate_image_dataset, write_image_lists

    ds = generate_image_dataset(tmp_path / "data", samples=120, shards=2, listed=6)
    write_image_lists(ds, tmp_path / "lists", listed=6)
    bucket = s3_server.make_bucket()
    _upload(s3_server, bucket, ds.root, "images")
    lists = ["--list", f"{ds.lists['pdq']}:pdq", "--list", f"{ds.lists['image_md5']}:image_md5"]
    local_out = tmp_path / "out"
    _run("clean", str(ds.root), *lists, "--store", str(tmp_path / "st"), "--out", str(local_out), "-q")
    remote = ["--store", f"s3://{bucket}/store", "--out", f"s3://{bucket}/out", "-q"]
    _run("clean", f"s3://{bucket}/images", *lists, *remote)
    published = _objects(s3_server, bucket, "out")
    local = {p.relative_to(local_out).as_posix(): p.read_bytes() for p in local_out.rglob("*") if p.is_file()}
    assert sorted(published) == sorted(local)
    for name, body in local.items():
        if name.endswith((".tar", ".parquet", "_stats.json")):
            assert published[name] == body, name
    assert _cli("verify", f"s3://{bucket}/out").returncode == 0


def test_a_lock_not_written_by_expunge_is_refused_in_one_line(
    s3_server: S3Server, cache: Path, tmp_path: Path
) -> None:
    ds = build_small_dataset(tmp_path, shards=1, rows_per_shard=100)
    bucket = s3_server.make_bucket()
    s3_server.client().put_object(Bucket=bucket, Key="store/lock.json", Body=b"\xff not json")
    iwf = f"{ds.lists['iwf']}:url_md5"
    res = _cli(
        "clean", str(ds.root), "--list", iwf, "--store", f"s3://{bucket}/store", "--out", str(tmp_path / "o")
    )
    assert res.returncode == 2, res.stderr
    assert "is not one expunge wrote" in res.stderr and "Traceback" not in res.stderr
    assert len([line for line in res.stderr.splitlines() if line.strip()]) == 1
