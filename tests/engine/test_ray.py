"""The Ray executor on a local Ray (no mock): output byte-identical to the local executor's, and a run
that loses a worker process mid-way still completes with the same bytes."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'expunge[ray]'")

from expunge import api  # noqa: E402
from tests.conftest import build_small_dataset, tree_bytes  # noqa: E402


@pytest.fixture(scope="module")
def local_ray() -> object:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    yield ray
    ray.shutdown()


def _clean(ds_root: Path, lists: list[str], tmp: Path, out: str, executor: str) -> dict:
    store = tmp / f"store-{out}"
    store.mkdir(exist_ok=True)
    key = tmp / "key"
    if not key.exists():
        key.write_bytes(os.urandom(32))
    (store / "key").write_bytes(key.read_bytes())  # same secret: keyed hashes comparable
    opts = api.Options(store=store, workers=2, executor=executor)
    return api.clean([str(ds_root)], tmp / out, lists=lists, opts=opts)


def test_ray_output_is_byte_identical_to_local(local_ray: object, tmp_path: Path) -> None:
    from expunge.demo.synth_images import generate_image_dataset, write_image_lists

    ds = build_small_dataset(tmp_path / "urls")
    url_lists = [f"{ds.lists['iwf']}:url_md5", f"{ds.lists['c3p']}:url_sha1:canonical"]
    a = _clean(ds.root, url_lists, tmp_path, "local", "local")
    b = _clean(ds.root, url_lists, tmp_path, "ray", "ray")
    assert a == b
    assert tree_bytes(tmp_path / "local") == tree_bytes(tmp_path / "ray")
    images = generate_image_dataset(tmp_path / "img", samples=200, shards=2, listed=6)
    lists = write_image_lists(images, tmp_path / "img-lists", listed=6)
    img_lists = [f"{lists['pdq']}:pdq", f"{lists['image_md5']}:image_md5"]
    _clean(images.root, img_lists, tmp_path, "img-local", "local")
    _clean(images.root, img_lists, tmp_path, "img-ray", "ray")
    assert tree_bytes(tmp_path / "img-local") == tree_bytes(tmp_path / "img-ray")


def _ray_task_pids() -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if b"ray::_call" in cmd:
            pids.append(int(entry))
    return pids


def test_a_killed_worker_does_not_break_the_run(local_ray: object, tmp_path: Path) -> None:
    ds = build_small_dataset(tmp_path / "urls", shards=8, rows_per_shard=30_000, row_group_size=5_000)
    lists = [f"{ds.lists['iwf']}:url_md5"]
    _clean(ds.root, lists, tmp_path, "local", "local")
    killed: list[int] = []

    def killer() -> None:
        deadline = time.time() + 60
        while time.time() < deadline and not killed:
            pids = _ray_task_pids()
            if pids:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
            time.sleep(0.05)

    thread = threading.Thread(target=killer)
    thread.start()
    _clean(ds.root, lists, tmp_path, "ray", "ray")
    thread.join()
    assert killed, "no Ray task process was seen to kill"
    assert tree_bytes(tmp_path / "local") == tree_bytes(tmp_path / "ray")
