"""Arrow helpers: pyarrow's pandas probe is skipped, pandas itself stays usable."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

CODE = """
import sys
import numpy as np, pyarrow as pa
from expunge.arrow import without_pandas
without_pandas()
pa.array(np.arange(3)); pa.array([1, 2]); pa.table({"a": [1]}).to_pylist()
print("before", "pandas" in sys.modules)
import pandas
print("after", pa.table({"a": [1]}).to_pandas().shape)
"""


def test_without_pandas_skips_the_probe_and_keeps_pandas_importable() -> None:
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True).stdout
    assert "before False" in out
    assert "after (1, 1)" in out


def test_the_cli_runs_a_command_without_importing_pandas(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    urls = [f"https://img.example/{i}.jpg" for i in range(50)]
    (tmp_path / "data").mkdir()
    pq.write_table(pa.table({"url": urls, "caption": ["a picture"] * 50}), tmp_path / "data" / "p.parquet")
    listed = tmp_path / "synthetic.txt"  # SYNTHETIC: the digest of one benign URL above
    listed.write_text(hashlib.md5(urls[7].encode()).hexdigest() + "\n")
    argv = [
        "expunge",
        "clean",
        str(tmp_path / "data"),
        "--list",
        f"{listed}:url_md5",
        "--store",
        str(tmp_path / "st"),
        "--out",
        str(tmp_path / "out"),
        "--workers",
        "1",
        "-q",
    ]
    code = (
        f"import sys; from expunge.cli.app import main; sys.argv = {argv!r}\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('PANDAS', 'pandas' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "PANDAS False" in out, out
    assert (tmp_path / "out" / "MANIFEST.json").is_file()
