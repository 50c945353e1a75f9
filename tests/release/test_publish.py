"""Publishing a staged release to a real S3 API (moto's server over HTTP): one PUT per file, the
manifest last, server-side copies, stale objects deleted, nothing sent twice, and a stopped run that
a rerun completes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from expunge.errors import ExpungeError
from expunge.release.publish import STATE_FILE, publish
from expunge.release.verify import verify_release
from expunge.storage import Location, clear_cache, parse
from expunge.storage import fs as storage_fs
from tests.release.remote_release import BuiltRelease, release_files, remote_files, url
from tests.s3server import Request, S3Server

LAST = ("MANIFEST.json", "MANIFEST.json.minisig")
# Publishes that are recorded run one request at a time: moto's recorder appends its JSON lines
# from several threads without a lock, and concurrent requests can interleave two entries on one line.


def _s3(requests: list[Request]) -> list[Request]:
    """The S3 requests (not moto's own control calls)."""
    return [r for r in requests if "/moto-api/" not in r.url]


def _key(r: Request, bucket: str) -> str:
    return r.url.split("?")[0].split(f"/{bucket}/", 1)[-1]


def _puts(requests: list[Request], bucket: str) -> list[str]:
    """Keys written by a PUT (uploads and copies), in the order the server received them."""
    return [_key(r, bucket) for r in _s3(requests) if r.method == "PUT"]


def test_publish_writes_every_file_once_and_the_manifest_last(
    s3_server: S3Server, built_release: BuiltRelease, tmp_path: Path
) -> None:
    bucket = s3_server.make_bucket()
    with s3_server.recording() as requests:
        report = publish(built_release.folder, url(bucket, "rel"), state_dir=tmp_path / "state", workers=1)
    files = release_files(built_release.folder)
    assert report.uploaded == sorted(files) and report.counts()["uploaded"] == len(files)
    assert report.copied == report.skipped == report.deleted == []
    assert remote_files(s3_server.client(), bucket, "rel") == files
    puts = _puts(requests, bucket)
    assert len(puts) == len(files)  # one request per file: no temporary key, no rename
    assert puts[-2:] == [f"rel/{n}" for n in LAST]
    assert verify_release(f"s3://{bucket}/rel", pubkey=built_release.public_key) == []


def test_a_second_publish_sends_nothing(
    s3_server: S3Server, built_release: BuiltRelease, tmp_path: Path
) -> None:
    bucket = s3_server.make_bucket()
    publish(built_release.folder, url(bucket, "rel"), state_dir=tmp_path / "state")
    with s3_server.recording() as requests:
        report = publish(built_release.folder, url(bucket, "rel"), state_dir=tmp_path / "state", workers=1)
    assert report.uploaded == report.copied == report.deleted == []
    assert report.skipped == sorted(release_files(built_release.folder))
    assert [r for r in _s3(requests) if r.method in ("PUT", "POST", "DELETE")] == []


def test_an_object_changed_by_someone_else_is_sent_again(
    s3_server: S3Server, built_release: BuiltRelease, tmp_path: Path
) -> None:
    """The state vouches only for objects this publisher wrote: an overwrite (same size) is noticed."""
    bucket = s3_server.make_bucket()
    publish(built_release.folder, url(bucket, "rel"), state_dir=tmp_path / "state")
    data = (built_release.folder / "summary.json").read_bytes()
    s3_server.client().put_object(Bucket=bucket, Key="rel/summary.json", Body=data.replace(b"{", b" ", 1))
    assert verify_release(f"s3://{bucket}/rel") == [
        f"s3://{bucket}/rel/summary.json: SHA-256 differs from the manifest"
    ]
    report = publish(built_release.folder, url(bucket, "rel"), state_dir=tmp_path / "state")
    assert report.uploaded == ["summary.json"]
    assert verify_release(f"s3://{bucket}/rel") == []
    # without a state nothing is trusted: every file is sent
    assert len(publish(built_release.folder, url(bucket, "rel")).uploaded) == len(
        release_files(built_release.folder)
    )


def test_stale_objects_are_deleted_after_the_manifest(
    s3_server: S3Server, built_release: BuiltRelease, tmp_path: Path
) -> None:
    bucket = s3_server.make_bucket()
    client = s3_server.client()
    for key in ("rel/part-09999.parquet", "rel/.x", "rel/_old/a", "elsewhere/keep.txt", "rel-sibling/keep"):
        client.put_object(Bucket=bucket, Key=key, Body=b"benign synthetic bytes")
    with s3_server.recording() as requests:
        report = publish(built_release.folder, url(bucket, "rel"), state_dir=tmp_path / "state", workers=1)
    assert report.deleted == [".x", "_old/a", "part-09999.parquet"]
    assert remote_files(client, bucket, "rel") == release_files(built_release.folder)
    assert {"elsewhere/keep.txt", "rel-sibling/keep"} <= {
        o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]
    }
    order = [(r.method, _key(r, bucket)) for r in _s3(requests) if r.method in ("PUT", "DELETE", "POST")]
    manifest_at = max(i for i, (m, u) in enumerate(order) if m == "PUT" and u == "rel/MANIFEST.json")
    deletes = [i for i, (m, _) in enumerate(order) if m in ("DELETE", "POST")]
    assert deletes and min(deletes) > manifest_at
    assert verify_release(f"s3://{bucket}/rel") == []


def test_copies_are_server_side(s3_server: S3Server, built_release: BuiltRelease, tmp_path: Path) -> None:
    bucket = s3_server.make_bucket()
    staged = built_release.staged_copy(tmp_path)
    shard = json.loads((staged / "MANIFEST.json").read_bytes())["shards"][-1]["name"]
    client = s3_server.client()
    client.put_object(Bucket=bucket, Key=f"dataset/{shard}", Body=(staged / shard).read_bytes())
    (staged / shard).unlink()  # the staged folder need not hold a copied file
    source = parse(f"s3://{bucket}/dataset/{shard}")
    with s3_server.recording() as requests:
        report = publish(
            staged, url(bucket, "rel"), copies={shard: source}, state_dir=tmp_path / "state", workers=1
        )
    assert report.copied == [shard] and shard not in report.uploaded
    copies = [r for r in _s3(requests) if r.header("x-amz-copy-source")]
    assert len(copies) == 1 and _key(copies[0], bucket) == f"rel/{shard}"
    assert not [r for r in _s3(requests) if r.method == "GET" and _key(r, bucket) == f"dataset/{shard}"]
    assert verify_release(f"s3://{bucket}/rel", pubkey=built_release.public_key) == []
    again = publish(staged, url(bucket, "rel"), copies={shard: source}, state_dir=tmp_path / "state")
    assert again.copied == [] and shard in again.skipped


def test_refusals_are_one_line_before_anything_is_written(
    s3_server: S3Server, built_release: BuiltRelease, tmp_path: Path
) -> None:
    bucket = s3_server.make_bucket()
    out = url(bucket, "rel")
    with pytest.raises(ExpungeError) as info:
        publish(built_release.folder, out, copies={"x.parquet": parse(f"s3://{bucket}/rel/summary.json")})
    assert "copy source may not be another file of the release" in str(info.value)
    with pytest.raises(ExpungeError) as info:
        publish(built_release.folder, out, copies={"../x": parse(f"s3://{bucket}/src/x")})
    assert "\n" not in str(info.value)
    with pytest.raises(ExpungeError) as info:
        publish(built_release.folder, out, copies={"x.parquet": parse(f"s3://{bucket}/src/missing")})
    assert str(info.value) == f"s3://{bucket}/src/missing: copy source not found"
    staged = built_release.staged_copy(tmp_path)
    (staged / "link").symlink_to(staged / "summary.json")
    with pytest.raises(ExpungeError) as info:
        publish(staged, out)
    assert str(info.value).startswith(str(staged / "link"))
    with pytest.raises(ExpungeError) as info:
        publish(built_release.folder, parse("s3://no-such-bucket-for-expunge/rel"))
    assert str(info.value) == "s3://no-such-bucket-for-expunge/rel: bucket not found"
    assert "Contents" not in s3_server.client().list_objects_v2(Bucket=bucket)


def test_a_stopped_run_is_one_line_and_a_rerun_completes(
    s3_server: S3Server, built_release: BuiltRelease, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server dies after a few uploads: one line naming an object, the manifest never written; the
    rerun (the server back, empty, like a fresh store) publishes the whole release."""
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    clear_cache()
    bucket = s3_server.make_bucket()
    real_put = storage_fs.put_file
    sent: list[str] = []

    def put_then_die(local: str | Path, loc: Location | str | Path) -> None:
        if len(sent) == 2:
            s3_server.stop()
        real_put(local, loc)
        sent.append(str(loc))

    monkeypatch.setattr(storage_fs, "put_file", put_then_die)
    with pytest.raises(ExpungeError) as info:
        publish(built_release.folder, url(bucket, "rel"), state_dir=tmp_path / "state", workers=1)
    line = str(info.value)
    assert "\n" not in line and line.startswith(f"s3://{bucket}/rel/") and "cannot reach" in line
    assert not any(s.endswith("MANIFEST.json") for s in sent)
    monkeypatch.setattr(storage_fs, "put_file", real_put)
    s3_server.start()
    clear_cache()
    s3_server.make_bucket(bucket)
    report = publish(built_release.folder, url(bucket, "rel"), state_dir=tmp_path / "state")
    assert report.uploaded == sorted(release_files(built_release.folder))  # the state vouched for nothing
    assert remote_files(s3_server.client(), bucket, "rel") == release_files(built_release.folder)
    assert verify_release(f"s3://{bucket}/rel", pubkey=built_release.public_key) == []


def test_a_killed_run_resumes_and_ends_with_the_same_objects(
    s3_server: S3Server, built_release: BuiltRelease, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = s3_server.make_bucket()
    real_put = storage_fs.put_file
    calls: list[str] = []

    def put_then_fail(local: str | Path, loc: Location | str | Path) -> None:
        calls.append(str(loc))
        if len(calls) == 4:
            raise ExpungeError("cannot reach the storage endpoint", str(loc))
        real_put(local, loc)

    monkeypatch.setattr(storage_fs, "put_file", put_then_fail)
    with pytest.raises(ExpungeError):
        publish(built_release.folder, url(bucket, "rel"), state_dir=tmp_path / "state", workers=1)
    monkeypatch.setattr(storage_fs, "put_file", real_put)
    sent = remote_files(s3_server.client(), bucket, "rel")
    assert "MANIFEST.json" not in sent and len(sent) >= 3
    state = json.loads((tmp_path / "state" / STATE_FILE).read_bytes())
    assert set(state["files"]) == set(
        sent
    )  # everything sent before the failure is known (a job in flight too)
    report = publish(built_release.folder, url(bucket, "rel"), state_dir=tmp_path / "state")
    assert report.skipped == sorted(sent)
    assert len(report.uploaded) == len(release_files(built_release.folder)) - len(sent)
    assert remote_files(s3_server.client(), bucket, "rel") == release_files(built_release.folder)
    assert verify_release(f"s3://{bucket}/rel") == []


def test_a_local_out_folder_works_the_same(built_release: BuiltRelease, tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "_stale").mkdir(parents=True)
    (out / "_stale" / "f").write_bytes(b"old")
    report = publish(built_release.folder, parse(out), state_dir=tmp_path / "state")
    assert report.deleted == ["_stale/f"]
    assert release_files(out) == release_files(built_release.folder)
    again = publish(built_release.folder, parse(out), state_dir=tmp_path / "state")
    assert again.uploaded == [] and len(again.skipped) == len(release_files(out))
    assert not (out / "_stale").exists()  # the folder it left empty is gone too
    assert verify_release(out) == []


def test_odd_keys_under_the_prefix_are_reported_and_deleted(
    s3_server: S3Server, built_release: BuiltRelease, tmp_path: Path
) -> None:
    """Keys no local path could name (an empty or '.'/'..' segment, a folder marker with bytes in it)
    are reported by verify and removed by publish under their own names (a folder marker was left
    behind when it was deleted by its name without the trailing '/')."""
    bucket = s3_server.make_bucket()
    publish(built_release.folder, url(bucket, "rel"))
    client = s3_server.client()
    odd = ("rel//x", "rel/a/./b", "rel/a/../c", "rel/sub/")
    for key in odd:
        client.put_object(Bucket=bucket, Key=key, Body=b"benign synthetic bytes")
    client.put_object(Bucket=bucket, Key="relsibling", Body=b"not under the prefix")
    problems = verify_release(f"s3://{bucket}/rel")
    assert set(problems) == {f"s3://{bucket}/{k.rstrip('/')}: not in the manifest" for k in odd}
    report = publish(built_release.folder, url(bucket, "rel"), state_dir=tmp_path / "state")
    assert report.deleted == sorted(k[len("rel/") :] for k in odd)
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]}
    assert keys == {f"rel/{n}" for n in release_files(built_release.folder)} | {"relsibling"}
    assert verify_release(f"s3://{bucket}/rel") == []
