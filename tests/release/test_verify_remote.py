"""``expunge verify s3://…`` on a release published to a real S3 API (moto's server over HTTP): the same
checks as on a folder, every problem one line naming the object's URL, nothing downloaded to check a
row count but the parquet footer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from expunge import api
from expunge.cli.app import app
from expunge.errors import ExpungeError
from expunge.release import verify_remote
from expunge.release.publish import publish
from expunge.release.sign import keygen
from expunge.release.verify import verify_release
from expunge.storage import walk_all
from tests.release.remote_release import BuiltRelease, release_files, url
from tests.s3server import S3Server


def _published(s3_server: S3Server, built: BuiltRelease, prefix: str = "rel") -> tuple[str, str]:
    bucket = s3_server.make_bucket()
    publish(built.folder, url(bucket, prefix))
    return bucket, f"s3://{bucket}/{prefix}"


def _shards(built: BuiltRelease) -> list[str]:
    man = json.loads((built.folder / "MANIFEST.json").read_bytes())
    return [s["name"] for s in man["shards"]]


def test_a_published_release_verifies_in_place(s3_server: S3Server, built_release: BuiltRelease) -> None:
    _, rel = _published(s3_server, built_release)
    assert verify_release(rel) == []
    assert verify_release(rel, pubkey=built_release.public_key) == []
    assert api.verify(rel, pubkey=built_release.public_key) == []
    result = CliRunner().invoke(app, ["verify", rel + "/", "--pubkey", str(built_release.public_key)])
    assert result.exit_code == 0, result.output
    assert "verified" in result.output


def test_row_counts_come_from_the_footer(
    s3_server: S3Server, built_release: BuiltRelease, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each shard is streamed once for its SHA-256 and its row count costs the footer's ranged reads:
    a handful of ranged GETs per shard, never an unranged one."""
    _, rel = _published(s3_server, built_release)
    monkeypatch.setattr(verify_remote, "STREAMS", 1)  # moto's recorder interleaves concurrent entries
    with s3_server.recording() as requests:
        assert verify_release(rel) == []
    for name in _shards(built_release):
        gets = [r for r in requests if r.method == "GET" and r.url.split("?")[0].endswith(f"/rel/{name}")]
        assert 2 <= len(gets) <= 3, [r.header("Range") for r in gets]  # the stream, then the footer
        assert all(r.header("Range") for r in gets)


def test_tampered_unlisted_hidden_and_missing_objects_are_each_one_line(
    s3_server: S3Server,
    built_release: BuiltRelease,
) -> None:
    bucket, rel = _published(s3_server, built_release)
    client = s3_server.client()
    shard = _shards(built_release)[0]
    original = (built_release.folder / shard).read_bytes()
    client.put_object(Bucket=bucket, Key=f"rel/{shard}", Body=original[:-9] + b"x" * 9)  # same size
    for key in ("rel/extra.txt", "rel/.x", "rel/_tmp/part", "rel/.hidden/deep/file"):
        client.put_object(Bucket=bucket, Key=key, Body=b"benign synthetic bytes")
    client.delete_object(Bucket=bucket, Key="rel/summary.json")
    problems = verify_release(rel)
    assert all("\n" not in p and p.startswith(f"s3://{bucket}/rel") for p in problems), problems
    expected = {
        f"{rel}/{shard}: SHA-256 differs from the manifest",
        f"{rel}/extra.txt: not in the manifest",
        f"{rel}/.x: not in the manifest",
        f"{rel}/_tmp/part: not in the manifest",
        f"{rel}/.hidden/deep/file: not in the manifest",
        f"{rel}/summary.json: missing",
    }
    assert expected <= set(problems), problems
    # the shard: its file line and its shard line (and, the footer being gone, its row count)
    assert set(problems) - expected <= {
        f"{rel}/{shard}: SHA-256 differs from the manifest",
        f"{rel}/{shard}: not a readable parquet file",
    }
    result = CliRunner().invoke(app, ["verify", rel])
    assert result.exit_code == 1
    assert result.output.count("mismatch:") == len(problems)


def test_signature_checks_name_the_remote_signature(
    s3_server: S3Server,
    built_release: BuiltRelease,
    tmp_path: Path,
) -> None:
    bucket, rel = _published(s3_server, built_release)
    _, other = keygen(tmp_path / "other")
    (problem,) = verify_release(rel, pubkey=other)
    assert problem == f"{rel}/MANIFEST.json.minisig: signed with a different key than the public key given"
    s3_server.client().delete_object(Bucket=bucket, Key="rel/MANIFEST.json.minisig")
    assert verify_release(rel, pubkey=built_release.public_key) == [
        f"{rel}/MANIFEST.json.minisig: signature missing"
    ]


def test_an_edited_manifest_and_a_rollback(s3_server: S3Server, built_release: BuiltRelease) -> None:
    bucket, rel = _published(s3_server, built_release)
    assert verify_release(rel, min_sequence=2) == [
        f"{rel}/MANIFEST.json: release 1 is older than the minimum 2 (a rollback?)"
    ]
    data = (built_release.folder / "MANIFEST.json").read_bytes()
    s3_server.client().put_object(Bucket=bucket, Key="rel/MANIFEST.json", Body=data.replace(b"\n", b"\n ", 1))
    problems = verify_release(rel, pubkey=built_release.public_key)
    assert f"{rel}/MANIFEST.json: edited or corrupt (its bytes are not what expunge wrote)" in problems
    assert f"{rel}/MANIFEST.json.minisig: signature does not match the manifest" in problems


def test_store_failures_stop_the_check_with_one_line(
    s3_server: S3Server,
    built_release: BuiltRelease,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bucket, rel = _published(s3_server, built_release)
    with pytest.raises(ExpungeError) as info:
        verify_release(f"s3://{bucket}/nothing-here")
    assert str(info.value) == f"s3://{bucket}/nothing-here/MANIFEST.json: not found"
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    s3_server.stop()
    from expunge.storage import clear_cache

    clear_cache()
    with pytest.raises(ExpungeError) as info:
        verify_release(rel)
    assert str(info.value) == f"{rel}/MANIFEST.json: cannot reach the storage endpoint"
    result = CliRunner().invoke(app, ["verify", rel])  # main() turns this into one line, exit 2
    assert isinstance(result.exception, ExpungeError) and str(result.exception) == str(info.value)


def test_walk_all_lists_hidden_and_underscore_names(tmp_path: Path) -> None:
    for rel in ("a.parquet", ".x", "_t/y", ".h/z"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"1")
    found = [Path(loc.path).relative_to(tmp_path).as_posix() for loc in walk_all(tmp_path)]
    assert found == sorted([".h/z", ".x", "_t/y", "a.parquet"])


def test_local_verify_is_unchanged_by_a_string_path(built_release: BuiltRelease) -> None:
    assert verify_release(str(built_release.folder)) == []
    assert verify_release(built_release.folder) == []
    assert set(release_files(built_release.folder)) >= {"MANIFEST.json", "MANIFEST.json.minisig"}


def _png(seed: int) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (seed * 40 % 256, 90, 160)).save(buf, format="PNG")
    return buf.getvalue()


def _image_and_text_releases(tmp: Path) -> dict[str, Path]:
    """An image-folder release (one folder with a metadata parquet, one without) and a CSV release."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    images = tmp / "images"
    for d, folder in enumerate(("a", "b/c")):
        (images / folder).mkdir(parents=True)
        names = [f"img{i:03d}.png" for i in range(3)]
        for i, name in enumerate(names):
            (images / folder / name).write_bytes(_png(d * 3 + i))
        (images / folder / "notes.txt").write_text("benign companion file\n")
        if d == 0:
            pq.write_table(
                pa.table({"file": names, "caption": ["a neutral caption"] * 3}),
                images / folder / "meta.parquet",
            )
    text = tmp / "text"
    text.mkdir()
    rows = "".join(f"https://img.photos.example/{i}.jpg,a neutral caption {i}\n" for i in range(20))
    (text / "pairs.csv").write_text("url,caption\n" + rows)
    decoy = tmp / "decoy.txt"
    decoy.write_text("0" * 32 + "\n")
    out = {"images": tmp / "img-out", "text": tmp / "txt-out"}
    for name, src, signal in (("images", images, "image_md5"), ("text", text, "url_md5")):
        opts = api.Options(store=tmp / f"store-{name}", workers=1)
        api.clean([str(src)], out[name], lists=[f"{decoy}:{signal}"], opts=opts)
        assert verify_release(out[name]) == []
    return out


def test_image_folder_and_text_shards_are_checked_in_place(s3_server: S3Server, tmp_path: Path) -> None:
    releases = _image_and_text_releases(tmp_path)
    bucket = s3_server.make_bucket()
    for name, folder in releases.items():
        publish(folder, url(bucket, name))
        assert verify_release(f"s3://{bucket}/{name}") == [], name
    client = s3_server.client()
    client.put_object(Bucket=bucket, Key="images/b/c/img001.png", Body=_png(7))
    client.put_object(Bucket=bucket, Key="images/b/c/img009.png", Body=_png(8))
    problems = verify_release(f"s3://{bucket}/images")
    assert set(problems) == {
        f"s3://{bucket}/images/b/c/img001.png: SHA-256 differs from the manifest",
        f"s3://{bucket}/images/b/c/img009.png: not in the manifest",
        f"s3://{bucket}/images/b/c: SHA-256 differs from the manifest",
        f"s3://{bucket}/images/b/c: 4 rows, the manifest says 3",
    }, problems
    data = (releases["text"] / "pairs.csv").read_bytes()
    client.put_object(Bucket=bucket, Key="text/pairs.csv", Body=data.rsplit(b"\n", 2)[0] + b"\n")
    problems = verify_release(f"s3://{bucket}/text")
    assert set(problems) == {
        f"s3://{bucket}/text/pairs.csv: SHA-256 differs from the manifest",
        f"s3://{bucket}/text/pairs.csv: 19 rows, the manifest says 20",
    }, problems
