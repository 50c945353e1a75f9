"""Fingerprint the releases of the demo and of the test fixtures, to prove a refactor changes no byte.

    python tools/release_fingerprints.py OUT.json      # run at the old commit, then at the new one
    diff OLD.json NEW.json                              # must print nothing

Everything runs in this process through the CLI entry point, with one worker (tasks run inline) and a
fixed store secret, at fixed absolute paths (a dataset's id is derived from its path), so two runs of the
same code give the same bytes. Banks imported by ``--list`` are labelled with the import date, so compare
runs made on the same day (a date change alters the fixtures' summary.json and MANIFEST.json only).
Synthetic data only.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import shutil
import sys
from pathlib import Path

BASE = Path("/tmp/expunge-fingerprints")
REPO = Path(__file__).resolve().parents[1]


def _cli(*args: str) -> None:
    from expunge.cli.app import app

    try:
        app([*args, "--workers", "1"], standalone_mode=False)
    except SystemExit as exc:  # a command may end with sys.exit(0)
        if exc.code not in (0, None):
            raise


def _tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def main(target: Path) -> None:
    secrets.token_bytes = lambda n=32: b"\x42" * (n or 32)  # type: ignore[assignment]
    sys.path.insert(0, str(REPO))
    from tests.conftest import build_small_dataset
    from tests.pipeline.test_imagefolder_flow import _build as build_folders

    shutil.rmtree(BASE, ignore_errors=True)
    BASE.mkdir(parents=True)
    out: dict[str, dict[str, str]] = {}

    _cli("demo", "--dir", str(BASE / "demo"), "--rows", "20000", "--shards", "4", "--images", "300", "-q")
    out["demo/release"] = _tree(BASE / "demo" / "release")
    out["demo/release-images"] = _tree(BASE / "demo" / "release-images")

    ds = build_small_dataset(BASE / "small")
    lists = ["--list", f"{ds.lists['iwf']}:url_md5", "--list", f"{ds.lists['c3p']}:url_sha1:canonical"]
    store = str(BASE / "small" / "store")
    _cli("clean", str(ds.root), *lists, "--store", store, "--out", str(BASE / "small" / "rel"), "-q")
    out["small/rel"] = _tree(BASE / "small" / "rel")
    small = BASE / "small"
    _cli("clean", str(ds.root), *lists, "--store", store, "--out", str(small / "cover"), "--cover", "3", "-q")
    out["small/cover"] = _tree(BASE / "small" / "cover")
    _cli("clean", str(ds.root), *lists, "--store", store, "--out", str(BASE / "small" / "pub"),
         "--publish-records", "-q")  # fmt: skip
    out["small/pub"] = _tree(BASE / "small" / "pub")
    _cli("apply", str(small / "rel"), str(ds.root), "--store", store, "--out", str(small / "der"), "-q")
    out["small/der"] = _tree(BASE / "small" / "der")

    for with_meta in (False, True):
        root = BASE / f"folders-{with_meta}"
        _, listing = build_folders(root / "images", with_meta)
        rel = root / "rel"
        _cli("clean", str(root / "images"), "--list", f"{listing}:pdq", "--store", str(root / "store"),
             "--out", str(rel), "-q")  # fmt: skip
        out[f"folders-{with_meta}/rel"] = _tree(rel)

    target.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    print(f"{sum(len(v) for v in out.values())} files in {len(out)} releases -> {target}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
