"""The Ray executor with the dataset, the store and the release on S3 (moto's server): tasks read the
dataset's objects themselves (the driver passes their URLs), and the release equals the local
executor's."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'expunge[ray]'")

from expunge import api  # noqa: E402
from tests.conftest import build_small_dataset  # noqa: E402
from tests.pipeline.test_remote_flow import _objects, _upload  # noqa: E402
from tests.s3server import S3Server  # noqa: E402


def test_ray_on_s3_gives_the_local_executors_release(
    s3_server: S3Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EXPUNGE_CACHE", str(tmp_path / "cache"))
    env = {k: v for k, v in os.environ.items() if k.startswith("AWS_") or k == "EXPUNGE_CACHE"}
    ds = build_small_dataset(tmp_path, shards=3, rows_per_shard=400)
    bucket = s3_server.make_bucket()
    _upload(s3_server, bucket, ds.root, "data")
    lists = [f"{ds.lists['iwf']}:url_md5"]
    results = {}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": env})
    try:
        for executor in ("local", "ray"):
            opts = api.Options(store=f"s3://{bucket}/store-{executor}", workers=2, executor=executor)
            api.clean([f"s3://{bucket}/data"], f"s3://{bucket}/out-{executor}", lists=lists, opts=opts)
            results[executor] = _objects(s3_server, bucket, f"out-{executor}")
    finally:
        ray.shutdown()
    assert results["ray"].keys() == results["local"].keys()
    for name, body in results["local"].items():
        if name.endswith(".parquet"):
            assert results["ray"][name] == body, name
