"""A small signed release, built once by the real clean flow, for the publish and remote-verify tests."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from expunge import api
from expunge.release.sign import keygen
from expunge.storage import Location, parse
from tests.conftest import build_small_dataset


@dataclass(frozen=True)
class BuiltRelease:
    folder: Path  # never modified by a test: copy it first (see ``staged_copy``)
    public_key: Path

    def staged_copy(self, tmp: Path) -> Path:
        dst = tmp / "staged"
        shutil.copytree(self.folder, dst)
        return dst


@pytest.fixture(scope="session")
def built_release(tmp_path_factory: pytest.TempPathFactory) -> BuiltRelease:
    base = tmp_path_factory.mktemp("remote-release")
    ds = build_small_dataset(base, shards=2, rows_per_shard=300, row_group_size=100)
    secret, public = keygen(base / "key")
    opts = api.Options(store=base / "store", workers=1, sign_key=secret)
    api.clean([str(ds.root)], base / "rel", lists=[f"{ds.lists['iwf']}:url_md5"], opts=opts)
    return BuiltRelease(base / "rel", public)


def release_files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def remote_files(client: object, bucket: str, prefix: str) -> dict[str, bytes]:
    """Every object under ``s3://bucket/prefix/`` → bytes, read with boto (not the code under test)."""
    out: dict[str, bytes] = {}
    listed = client.list_objects_v2(Bucket=bucket, Prefix=prefix + "/")  # type: ignore[attr-defined]
    for item in listed.get("Contents", []):
        body = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()  # type: ignore[attr-defined]
        out[item["Key"][len(prefix) + 1 :]] = body
    return out


def url(bucket: str, prefix: str) -> Location:
    return parse(f"s3://{bucket}/{prefix}")
