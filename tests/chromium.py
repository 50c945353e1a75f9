"""Headless Chromium for the tests that check a page draws (report.html, lineage.html): one way to find
it and one way to run it, so the two checks cannot drift apart."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def find_chromium() -> str | None:
    """The Chromium (or Chrome) binary on PATH; None when there is none (the caller skips, saying why)."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def run_chromium(
    binary: str, profile: Path, page: Path, window: tuple[int, int], *mode: str, extra: tuple[str, ...] = ()
) -> str:
    """Load ``page`` headless in a fresh profile with ``mode`` (``--dump-dom``, ``--screenshot=FILE``);
    returns stdout (the DOM for ``--dump-dom``)."""
    cmd = [
        binary,
        *_FLAGS,
        *extra,
        f"--user-data-dir={profile}",
        f"--window-size={window[0]},{window[1]}",
        *mode,
        page.as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout
