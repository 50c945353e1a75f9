"""Synthetic hash lists: random digest banks for benchmarks, and the demo's list files in every format
expunge reads, each carrying a SYNTHETIC header comment wherever its format has comments.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from expunge.atomic import write_bytes
from expunge.demo.synth_model import HEADER_COMMENT, LIST_NAMES, URL_LIST_COMMENT, SynthDataset
from expunge.demo.synth_pools import _DECOY_TLD, _HEX
from expunge.demo.synth_urls import _TOKEN_SPACE, _build_urls, _draw_features, _make_hosts, _tokens


def random_digests(n: int, width: int, seed: int) -> npt.NDArray[np.bytes_]:
    """``n`` random ``width``-byte digests as an ``S{width}`` array, for million-entry benchmark banks.

    Beware: numpy drops trailing NUL bytes when a single element is read out (``arr[i]``); use
    ``arr.tobytes()`` or pass the array itself to :func:`write_digest_list`, which reads the full width.
    """
    if n < 0 or width < 1:
        raise ValueError(f"need n >= 0 and width >= 1, got n={n}, width={width}")
    rng = np.random.default_rng([seed, 0xD1657])
    return np.frombuffer(rng.bytes(n * width), dtype=f"S{width}").copy()


def write_digest_list(
    path: Path,
    digests: Iterable[bytes] | npt.NDArray[np.bytes_],
    fmt: str,
    signal: str = "url_md5",
    header_comment: str = HEADER_COMMENT,
) -> Path:
    """Write digests as a list file in one of the formats expunge imports.

    ``plain``: ``#`` comment lines, then one lower-case hex digest per line. ``csv``: header
    ``<hash>,id,category`` (``md5`` for ``url_md5``), a running id and a ``synthetic-*`` category; CSV
    has no comment syntax, so ``header_comment`` is not written. ``pytx``: python-threatexchange's
    ``<signal> <hex>`` lines; its readers do not skip comments, so none is written either.
    """
    hexes = _hex_strings(digests)
    if fmt == "plain":
        text = _comment_block(header_comment, "\n") + "".join(h + "\n" for h in hexes)
    elif fmt == "csv":
        column = signal.rsplit("_", 1)[-1]
        rows = (f"{h},{i},synthetic-{'ABC'[i % 3]}\n" for i, h in enumerate(hexes, start=1))
        text = f"{column},id,category\n" + "".join(rows)
    elif fmt == "pytx":
        text = "".join(f"{signal} {h}\n" for h in hexes)
    else:
        raise ValueError(f"unknown list format {fmt!r}; expected 'plain', 'csv' or 'pytx'")
    write_bytes(path, text.encode("utf-8"))
    return path


def _hex_strings(digests: Iterable[bytes] | npt.NDArray[np.bytes_]) -> list[str]:
    if isinstance(digests, np.ndarray) and digests.dtype.kind == "S":
        n, width = len(digests), digests.dtype.itemsize
        if n == 0:
            return []
        codes = np.ascontiguousarray(digests).view(np.uint8).reshape(n, width)
        chars = np.empty((n, 2 * width), dtype=np.uint8)
        chars[:, 0::2] = _HEX[codes >> 4]
        chars[:, 1::2] = _HEX[codes & 15]
        text = chars.tobytes().decode("ascii")
        step = 2 * width
        return [text[i : i + step] for i in range(0, len(text), step)]
    return [bytes(d).hex() for d in digests]


def _comment_block(comment: str, newline: str) -> str:
    return "".join(f"# {line}".rstrip() + newline for line in comment.splitlines())


def write_lists(ds: SynthDataset, out_dir: Path, *, seed: int = 0, decoys: int = 5_000) -> dict[str, Path]:
    """Write the four synthetic lists that catch ``ds.flagged``, each padded with decoys that match nothing.

    Entries are shuffled so flagged ones are not bunched at the top, and ``c3p.txt`` deliberately uses a
    BOM, CRLF line ends and a comment block mid-file, the quirks list readers must survive.
    """
    if decoys < 0:
        raise ValueError(f"decoys must be >= 0, got {decoys}")
    missing = [f for f in ds.flagged if f not in ds.listed]
    if missing:
        raise ValueError("dataset has no recorded listed forms; generate it with generate_dataset()")
    rng = np.random.default_rng([seed, 0x115])
    by_list = {name: [ds.listed[f] for f in ds.flagged if f.list_name == name] for name in LIST_NAMES}
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}

    iwf = _mixed_digests(
        [hashlib.md5(f.raw, usedforsecurity=False).digest() for f in by_list["iwf"]], 16, decoys, rng
    )
    paths["iwf"] = write_digest_list(out_dir / "iwf.csv", iwf, "csv", signal="url_md5")

    c3p = _hex_strings(
        _mixed_digests(
            [hashlib.sha1(f.canonical.encode(), usedforsecurity=False).digest() for f in by_list["c3p"]],
            20,
            decoys,
            rng,
        )
    )
    half = len(c3p) // 2
    crlf = "\r\n"
    text = (
        "\ufeff"
        + _comment_block(
            HEADER_COMMENT + "\nformat: one lower-case hex SHA-1 of a canonical URL per line", crlf
        )
        + "".join(h + crlf for h in c3p[:half])
        + crlf
        + _comment_block("second batch (synthetic)", crlf)
        + "".join(h + crlf for h in c3p[half:])
    )
    paths["c3p"] = out_dir / "c3p.txt"
    write_bytes(paths["c3p"], text.encode("utf-8"))

    tx = _mixed_digests(
        [hashlib.md5(f.raw, usedforsecurity=False).digest() for f in by_list["tx"]], 16, decoys, rng
    )
    paths["tx"] = write_digest_list(out_dir / "threatexchange.txt", tx, "pytx", signal="url_md5")

    urls = [f.canonical for f in by_list["urls"]] + _decoy_urls(rng, decoys)
    order = rng.permutation(len(urls))
    paths["urls"] = out_dir / "urls.txt"
    body = _comment_block(URL_LIST_COMMENT, "\n") + "".join(urls[i] + "\n" for i in order)
    write_bytes(paths["urls"], body.encode("utf-8"))
    return paths


def _mixed_digests(
    real: list[bytes], width: int, decoys: int, rng: np.random.Generator
) -> npt.NDArray[np.bytes_]:
    """Real digests plus random decoys (any that collide with a real one are dropped), shuffled."""
    fake = np.frombuffer(rng.bytes(decoys * width), dtype=f"S{width}")
    real_arr = np.frombuffer(b"".join(real), dtype=f"S{width}") if real else np.empty(0, f"S{width}")
    if len(real_arr):
        fake = fake[~np.isin(fake, real_arr)]
    combined = np.concatenate([real_arr, fake])
    return combined[rng.permutation(len(combined))]


def _decoy_urls(rng: np.random.Generator, count: int) -> list[str]:
    """Realistic URLs on hosts under ``.invalid``, a TLD no dataset row uses, so they match nothing."""
    if count == 0:
        return []
    hosts = _make_hosts(rng, 60, tld_override=_DECOY_TLD)
    feats = _draw_features(rng, count)
    tokens = _tokens(np.arange(count), int(rng.integers(0, _TOKEN_SPACE)))
    urls: list[str] = _build_urls(rng, feats, tokens, hosts).to_pylist()
    return urls
