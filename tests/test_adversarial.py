"""The fail-closed invariants under generated attacks (issue 8, "close the classes").

Hypothesis builds small datasets in every format (parquet; img2dataset tars with their parquet; image
folders with metadata; CLIP embeddings beside parquet) with odd URL column types, odd key columns,
duplicate and extra members, member-name spellings, and lists in every format with odd but valid
lines. The real CLI cleans each one. The property is the invariant itself:

* the run either succeeds, or refuses with exit 2 and one line; never a traceback or another exit;
* no flagged URL (as stored or canonical), caption or image byte appears in any file of the release
  or the store (parquet decoded), nor on stdout/stderr, whatever the outcome;
* on success, kept + removed + quarantined = input, the release holds exactly the kept rows, no
  flagged row is kept, ``verify`` passes, and ``verify`` fails after any single-file change.

Runs are deterministic in CI (a fixed seed); ``EXPUNGE_ADVERSARIAL_EXAMPLES=N`` runs more locally.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from expunge.features.urlcanon import canonicalize
from expunge.formats.text_read import count_rows

EXAMPLES = int(os.environ.get("EXPUNGE_ADVERSARIAL_EXAMPLES", "12"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=os.environ.get("CI") == "true",
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
EXPUNGE = [sys.executable, "-m", "expunge.cli"]


@dataclass
class Built:
    """What a generated dataset holds that must never be published, and how many rows it has."""

    root: Path
    lists: list[str]  # --list arguments
    needles: set[bytes] = field(default_factory=set)  # flagged URLs, captions, image slices
    rows: int = 0
    flagged_rows: int = 0
    expect_refusal: bool = False


def _png(rng: random.Random, size: int = 8) -> bytes:
    from PIL import Image

    pixels = np.frombuffer(rng.randbytes(size * size * 3), dtype=np.uint8).reshape(size, size, 3)
    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, format="PNG")
    return buf.getvalue()


def _image_needle(data: bytes) -> bytes:
    """A slice from the middle of an image: enough to recognise it, past the shared PNG header."""
    mid = len(data) // 2
    return data[max(0, mid - 24) : mid + 24]


URL_TYPES = ("string", "large_string", "dictionary", "string_view", "binary")
ROW_KINDS = ("benign", "benign", "benign", "md5", "canonical", "null", "empty", "junk")


def _url_array(values: list[bytes | None], kind: str) -> pa.Array:
    if kind == "binary":
        return pa.array(values, pa.binary())
    text = [None if v is None else v.decode("utf-8") for v in values]
    if kind == "dictionary":
        return pa.array(text, pa.string()).dictionary_encode()
    return pa.array(text, {"string": pa.string(), "large_string": pa.large_string(),
                           "string_view": pa.string_view()}[kind])  # fmt: skip


def _write_lists(base: Path, md5s: list[str], sha1s: list[str], fmt: str, image_md5s: list[str]) -> list[str]:
    """SYNTHETIC lists: hashes of generated benign rows, in a drawn file format with odd valid lines."""
    base.mkdir(parents=True, exist_ok=True)
    specs = []
    decoy = "0" * 32  # a value that matches nothing keeps every list non-empty
    if fmt == "plain":
        body = "\ufeff# SYNTHETIC list\r\n\r\n" + "".join(f"  {h}\r\n" for h in [*md5s, decoy])
        (base / "a.txt").write_text(body, encoding="utf-8")
        specs.append(f"{base / 'a.txt'}:url_md5")
    elif fmt == "csv":
        body = "md5,category\n" + "".join(f"{h},synthetic\n" for h in [*md5s, decoy])
        (base / "a.csv").write_text(body)
        specs.append(f"{base / 'a.csv'}:url_md5")
    else:
        body = "".join(f"url_md5 {h}\n" for h in [*md5s, decoy])
        (base / "a.pytx").write_text(body)
        specs.append(f"{base / 'a.pytx'}:url_md5")
    (base / "c.txt").write_text("".join(f"{h}\n" for h in [*sha1s, "0" * 40]))
    specs.append(f"{base / 'c.txt'}:url_sha1:canonical")
    if image_md5s:
        (base / "img.txt").write_text("".join(f"{h}\n" for h in [*image_md5s, decoy]))
        specs.append(f"{base / 'img.txt'}:image_md5")
    return specs


def _rows(
    draw: st.DrawFn, n: int, url_type: str, rng: random.Random, tag: str
) -> tuple[list[bytes | None], list[str], list[str], list[str], set[bytes], int]:
    """URLs and captions for n rows; which are flagged (by which list); the needles they give."""
    urls: list[bytes | None] = []
    captions: list[str] = []
    md5s: list[str] = []
    sha1s: list[str] = []
    needles: set[bytes] = set()
    flagged = 0
    for i in range(n):
        kind = draw(st.sampled_from(ROW_KINDS))
        token = f"cap{tag}x{i}x{rng.randrange(10**9)}"
        caption = f"a photo of a mug {token}"
        url: bytes | None = f"https://img{i % 3}.photos.example/{tag}/{i}/{rng.randrange(10**9)}.jpg".encode()
        if kind == "md5":
            assert url is not None
            md5s.append(hashlib.md5(url).hexdigest())
        elif kind == "canonical":
            host = f"cdn{rng.randrange(10**6)}.variant.example"
            canonical = f"http://{host}/{i}/a.jpg"
            url = f"  HTTP://{host.upper()}:80/{i}/x/../%61.jpg#frag ".encode()
            sha1s.append(hashlib.sha1(canonical.encode()).hexdigest())
            needles.add(canonical.encode())
        elif kind == "null":
            url = None
        elif kind == "empty":
            url = b""
        elif kind == "junk":
            url = draw(st.sampled_from([b"not a url", b"data:image/png;base64,AAAA", b"\xff\xfe/bad"]))
            if url.startswith(b"\xff") and url_type != "binary":
                url = b"ftp://files.example/x"
        if kind in ("md5", "canonical"):
            flagged += 1
            assert url is not None
            needles.add(url)
            needles.add(token.encode())
        urls.append(url)
        captions.append(caption)
    return urls, captions, md5s, sha1s, needles, flagged


@st.composite
def parquet_datasets(draw: st.DrawFn) -> dict[str, object]:
    return {
        "format": "parquet",
        "shards": draw(st.integers(1, 3)),
        "rows": draw(st.lists(st.integers(0, 25), min_size=3, max_size=3)),
        "url_type": draw(st.sampled_from(URL_TYPES)),
        "url_name": draw(st.sampled_from(["url", "URL", "link"])),
        "key": draw(st.sampled_from(["none", "str", "int", "url"])),
        "list_format": draw(st.sampled_from(["plain", "csv", "pytx"])),
        "embeddings": draw(st.booleans()),
        "nested": draw(st.booleans()),
        "collide": draw(st.sampled_from(["", "", "", "removed", "Removed", "summary", "MANIFEST.json"])),
        "seed": draw(st.integers(0, 2**32)),
        "draw": draw(st.data()),
    }


def build_parquet(spec: dict[str, object], base: Path) -> Built:
    rng = random.Random(spec["seed"])  # type: ignore[arg-type]
    data: st.DataObject = spec["draw"]  # type: ignore[assignment]
    root = base / "ds"
    built = Built(root, [])
    md5s: list[str] = []
    sha1s: list[str] = []
    for s in range(int(spec["shards"])):  # type: ignore[call-overload]
        n = spec["rows"][s]  # type: ignore[index]
        urls, captions, m, c, needles, flagged = _rows(data.draw, n, str(spec["url_type"]), rng, f"s{s}")
        md5s += m
        sha1s += c
        built.needles |= needles
        built.rows += n
        built.flagged_rows += flagged
        columns: dict[str, pa.Array] = {
            str(spec["url_name"]): _url_array(urls, str(spec["url_type"])),
            "caption": pa.array(captions),
            "punsafe": pa.array([rng.random() for _ in range(n)], pa.float32()),
        }
        if spec["key"] == "str":
            columns["key"] = pa.array([f"{s:03d}{i:05d}" for i in range(n)])
        elif spec["key"] == "int":
            columns["key"] = pa.array(range(s * 1000, s * 1000 + n), pa.int64())
        elif spec["key"] == "url":  # the Hub's habit: the URL is the id
            columns["id"] = pa.array([None if u is None else u.decode("utf-8", "replace") for u in urls])
        folder = root / ("sub" if spec["nested"] and s == 1 else "")
        folder.mkdir(parents=True, exist_ok=True)
        name = f"part-{s}"
        if s == 0 and spec["collide"]:  # a shard named like one of the release's own files
            name = str(spec["collide"])
            built.expect_refusal = name.lower() == "removed" and folder == root
        pq.write_table(pa.table(columns), folder / f"{name}.parquet", row_group_size=7)
        if spec["embeddings"]:
            noise = np.frombuffer(rng.randbytes(n * 8 * 2), dtype=np.uint16).reshape(n, 8)
            emb = np.asarray(noise % 2000, dtype=np.float16)
            np.save(folder / f"{name}.npy", emb)
    built.lists = _write_lists(base / "lists", md5s, sha1s, str(spec["list_format"]), [])
    return built


@st.composite
def tar_datasets(draw: st.DrawFn) -> dict[str, object]:
    return {
        "format": "webdataset",
        "samples": draw(st.integers(1, 12)),
        "failed_rows": draw(st.integers(0, 3)),
        "prefix": draw(st.sampled_from(["", "./"])),
        "key": draw(st.sampled_from(["str", "int"])),
        "extra": draw(st.sampled_from(["none", "second_image", "no_ext", "bak", "avif", "dup"])),
        "list_format": draw(st.sampled_from(["plain", "csv", "pytx"])),
        "seed": draw(st.integers(0, 2**32)),
        "draw": draw(st.data()),
    }


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 1_700_000_000
    tar.addfile(info, io.BytesIO(data))


def build_tar(spec: dict[str, object], base: Path) -> Built:
    rng = random.Random(spec["seed"])  # type: ignore[arg-type]
    data: st.DataObject = spec["draw"]  # type: ignore[assignment]
    root = base / "ds"
    root.mkdir(parents=True)
    n = int(spec["samples"])  # type: ignore[call-overload]
    urls, captions, md5s, sha1s, needles, flagged = _rows(data.draw, n, "string", rng, "t")
    built = Built(root, [], needles, n + int(spec["failed_rows"]), flagged)  # type: ignore[call-overload]
    image_md5s: list[str] = []
    keys = [f"{i:09d}" for i in range(n)]
    prefix = str(spec["prefix"])
    extra = str(spec["extra"])
    with tarfile.open(root / "00000.tar", "w", format=tarfile.GNU_FORMAT) as tar:
        for i, key in enumerate(keys):
            image = _png(rng)
            row_flagged = urls[i] is not None and bytes(urls[i] or b"") in needles  # type: ignore[operator]
            image_flag = data.draw(st.integers(0, 5)) == 0
            second = _png(rng)
            members = [(f"{prefix}{key}.jpg", image)]
            if extra == "second_image":
                members.append((f"{prefix}{key}.png", second))
            elif extra == "no_ext":
                members.append((f"{prefix}{key}", second))
            elif extra == "bak":
                members.append((f"{prefix}{key}.jpg.bak", second))
            elif extra == "avif":
                members.append((f"{prefix}{key}.avif", second))
            elif extra == "dup" and i == 0:
                members.append((f"{prefix}{key}.jpg", second))
                built.expect_refusal = True
            if image_flag:
                flagged_member = members[-1][1]
                image_md5s.append(hashlib.md5(flagged_member).hexdigest())
                if not row_flagged:
                    built.flagged_rows += 1
                built.needles.add(_image_needle(flagged_member))
                built.needles.add(captions[i].split()[-1].encode())
                if urls[i]:
                    built.needles.add(bytes(urls[i] or b""))
            if row_flagged:
                for _, img in members:
                    built.needles.add(_image_needle(img))
            text = captions[i].encode()
            meta = json.dumps({"url": (urls[i] or b"").decode("utf-8", "replace"), "key": key}).encode()
            for name, payload in members:
                _add(tar, name, payload)
            _add(tar, f"{prefix}{key}.txt", text)
            _add(tar, f"{prefix}{key}.json", meta)
    rows_keys: list[object] = list(keys)
    row_urls = [None if u is None else u.decode("utf-8", "replace") for u in urls]
    statuses = ["success"] * n
    for j in range(int(spec["failed_rows"])):  # type: ignore[call-overload]
        rows_keys.append(f"{n + j:09d}")
        row_urls.append(f"https://dead.photos.example/{j}.jpg")
        statuses.append("failed_to_download")
        captions.append(f"a dead link {j}")
    if spec["key"] == "int":
        rows_keys = [int(str(k)) for k in rows_keys]
    pq.write_table(
        pa.table({"key": pa.array(rows_keys), "url": pa.array(row_urls, pa.string()),
                  "caption": pa.array(captions), "status": pa.array(statuses)}),
        root / "00000.parquet",
    )  # fmt: skip
    (root / "00000_stats.json").write_text(json.dumps({"count": len(rows_keys), "successes": n}))
    built.lists = _write_lists(base / "lists", md5s, sha1s, str(spec["list_format"]), image_md5s)
    return built


@st.composite
def folder_datasets(draw: st.DrawFn) -> dict[str, object]:
    return {
        "format": "imagefolder",
        "folders": draw(st.integers(1, 2)),
        "images": draw(st.integers(1, 6)),
        "meta": draw(st.sampled_from(["none", "plain", "dotslash", "prefixed", "duplicate"])),
        "extra": draw(st.sampled_from(["none", "notes", "bak", "noext", "readme", "hidden"])),
        "seed": draw(st.integers(0, 2**32)),
        "draw": draw(st.data()),
    }


def build_folders(spec: dict[str, object], base: Path) -> Built:
    """Folders of generated images, optionally with metadata naming the files (with odd spellings)
    and extra files beside them; some images listed by MD5, some rows flagged by URL."""
    rng = random.Random(spec["seed"])  # type: ignore[arg-type]
    data: st.DataObject = spec["draw"]  # type: ignore[assignment]
    root = base / "ds"
    built = Built(root, [])
    md5s: list[str] = []
    sha1s: list[str] = []
    image_md5s: list[str] = []
    for f in range(int(spec["folders"])):  # type: ignore[call-overload]
        folder = root / f"f{f}"
        folder.mkdir(parents=True)
        n = int(spec["images"])  # type: ignore[call-overload]
        names = [f"img{i:03d}.png" for i in range(n)]
        flagged_image = {i for i in range(n) if data.draw(st.integers(0, 3)) == 0}
        for i, name in enumerate(names):
            png = _png(rng)
            (folder / name).write_bytes(png)
            if i in flagged_image:
                image_md5s.append(hashlib.md5(png).hexdigest())
                built.needles.add(_image_needle(png))
        extra = str(spec["extra"])
        if extra != "none":
            payload = _png(rng)
            extra_name = {"notes": "notes.txt", "bak": "img000.png.bak", "noext": "blob",
                          "readme": "README.md", "hidden": ".hidden.png"}[extra]  # fmt: skip
            (folder / extra_name).write_bytes(payload if extra != "notes" else b"neutral notes\n")
            if extra in ("bak", "noext", "hidden") and data.draw(st.booleans()):
                image_md5s.append(hashlib.md5(payload).hexdigest())
                if extra != "hidden":  # hidden files are not published at all
                    built.needles.add(_image_needle(payload))
                    built.flagged_rows += 1
            if extra in ("bak", "noext") and spec["meta"] == "none":
                built.rows += 1  # a file that may be an image is a sample of its own
        built.rows += n
        built.flagged_rows += len(flagged_image)
        meta = str(spec["meta"])
        if meta != "none":
            urls, captions, m, c, needles, _ = _rows(data.draw, n, "string", rng, f"f{f}")
            md5s += m
            sha1s += c
            built.needles |= needles
            for i in flagged_image:
                built.needles.add(captions[i].split()[-1].encode())
            built.flagged_rows += sum(1 for i in range(n) if i not in flagged_image and urls[i] in needles)
            spelled = {"plain": names, "dotslash": [f"./{x}" for x in names],
                       "prefixed": [f"f{f}/{x}" for x in names],
                       "duplicate": [names[0], *names[:-1]]}[meta]  # fmt: skip
            if meta == "duplicate" and n > 1:
                built.expect_refusal = True
            if extra in ("bak", "noext"):
                built.expect_refusal = True  # a file that may be an image, named by no metadata row
            texts = [None if u is None else u.decode() for u in urls]
            table = {"file": spelled, "url": texts, "caption": captions}
            pq.write_table(pa.table(table), folder / "meta.parquet")
    built.lists = _write_lists(base / "lists", md5s, sha1s, "plain", image_md5s)
    return built


@st.composite
def text_datasets(draw: st.DrawFn) -> dict[str, object]:
    return {
        "format": "text",
        "kind": draw(st.sampled_from(["tsv", "csv", "jsonl"])),
        "compression": draw(st.sampled_from(["", ".gz"])),
        "newline": draw(st.sampled_from(["\n", "\r\n"])),
        "bom": draw(st.booleans()),
        "junk": draw(st.sampled_from(["none", "fields", "utf8", "json"])),
        "rows": draw(st.integers(1, 25)),
        "seed": draw(st.integers(0, 2**32)),
        "draw": draw(st.data()),
    }


def build_text(spec: dict[str, object], base: Path) -> Built:
    """A CC3M-like headerless TSV, a CSV with a header and quoted fields, or JSONL, with flagged rows and
    (drawn) rows that do not parse, optionally gzipped, with CRLF line ends and a BOM."""
    import gzip

    rng = random.Random(spec["seed"])  # type: ignore[arg-type]
    data: st.DataObject = spec["draw"]  # type: ignore[assignment]
    n = int(spec["rows"])  # type: ignore[call-overload]
    urls, captions, md5s, sha1s, needles, flagged = _rows(data.draw, n, "string", rng, "x")
    kind, nl = str(spec["kind"]), str(spec["newline"])
    lines: list[bytes] = []
    if kind == "csv":
        lines.append(f"caption,url{nl}".encode())
    for url, caption in zip(urls, captions, strict=True):
        text = "" if url is None else url.decode("utf-8", "replace")
        if kind == "tsv":
            line = f"{caption}\t{text}".replace("\n", " ")
        elif kind == "csv":
            line = f'"{caption}, quoted",{text}' if "," not in text and '"' not in text else f"{caption},"
        else:
            line = json.dumps({"caption": caption, "url": None if url is None else text})
        lines.append((line + nl).encode())
    junk = str(spec["junk"])
    extra = 0
    if junk == "fields":
        lines.append(f"only-one-field{nl}".encode())
        extra = 1
    elif junk == "utf8":
        lines.append(b"caption \xff\xfe" + ("\t" if kind == "tsv" else ",").encode() + b"x" + nl.encode())
        extra = 1
    elif junk == "json" and kind == "jsonl":
        lines.append(b"{not json" + nl.encode())
        extra = 1
    body = (b"\xef\xbb\xbf" if spec["bom"] else b"") + b"".join(lines)
    root = base / "ds"
    root.mkdir(parents=True)
    name = f"part.{kind}{spec['compression']}"
    (root / name).write_bytes(gzip.compress(body, mtime=0) if spec["compression"] else body)
    built = Built(root, [], needles, n + extra, flagged)
    built.lists = _write_lists(base / "lists", md5s, sha1s, "plain", [])
    return built


# ---------------------------------------------------------------------------------------------------


def _haystacks(folder: Path) -> list[tuple[str, bytes]]:
    """Every file's bytes, and for parquet files every value decoded (compression hides raw bytes)."""
    out = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        raw = path.read_bytes()
        out.append((str(path), raw))
        if path.suffix == ".parquet":
            try:
                table = pq.read_table(path)
            except Exception:
                continue
            values = []
            for column in table.columns:
                for v in column.to_pylist():
                    values.append(v if isinstance(v, bytes) else str(v).encode("utf-8", "replace"))
            out.append((f"{path} (decoded)", b"\n".join(values)))
    return out


def _assert_contained(built: Built, places: list[Path], streams: str) -> None:
    needles = {n for n in built.needles if len(n) >= 8}
    for where, hay in [("stdout/stderr", streams.encode())] + [h for p in places if p.exists()
                                                                 for h in _haystacks(p)]:  # fmt: skip
        for needle in needles:
            assert needle not in hay, f"flagged content in {where}"


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*EXPUNGE, *args], cwd=cwd, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL
    )


def _check(built: Built, base: Path, mutation: int) -> None:
    out, store = base / "out", base / "store"
    args = ["clean", str(built.root), *[a for spec in built.lists for a in ("--list", spec)],
            "--out", str(out), "--store", str(store), "--workers", "1", "--json"]  # fmt: skip
    proc = _cli(args, base)
    streams = proc.stdout + proc.stderr
    _assert_contained(built, [out, store], streams)
    assert "Traceback" not in streams
    assert proc.returncode in (0, 2), (proc.returncode, proc.stderr)
    if proc.returncode == 2:
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, proc.stderr
        assert not (out / "MANIFEST.json").exists(), "a refused run published a manifest"
        return
    assert not built.expect_refusal, "an input that must be refused was published"
    summary = json.loads(proc.stdout)
    assert summary["rows_in"] == built.rows
    assert summary["rows_kept"] + summary["rows_removed"] + summary["rows_quarantined"] == summary["rows_in"]
    assert summary["rows_removed"] >= built.flagged_rows
    kept = 0
    for path in out.rglob("*.parquet"):
        if path.name != "removed.parquet":
            kept += pq.ParquetFile(path).metadata.num_rows
    for path in out.rglob("part.*"):  # the text datasets' shards
        if path.suffix != ".parquet":
            kept += count_rows(str(path))
    assert kept == summary["rows_kept"]
    verify = _cli(["verify", str(out)], base)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    _assert_one_change_fails(out, base, mutation)


def _assert_one_change_fails(out: Path, base: Path, mutation: int) -> None:
    files = sorted(p for p in out.rglob("*") if p.is_file())
    target = files[mutation % len(files)]
    original = target.read_bytes()
    if mutation % 3 == 0 and original:
        flipped = bytearray(original)
        flipped[mutation % len(flipped)] ^= 0x01
        target.write_bytes(bytes(flipped))
        what = f"a flipped byte in {target.name}"
    elif mutation % 3 == 1:
        extra = target.parent / (".extra" if mutation % 2 else "_extra.json")
        extra.write_bytes(b"{}")
        what = f"an added file {extra.name}"
    else:
        target.write_bytes(original + b"\n")
        what = f"an appended byte in {target.name}"
    verify = _cli(["verify", str(out)], base)
    assert verify.returncode != 0, f"verify passed after {what}"


def _attack(
    build: Callable[[dict[str, object], Path], Built], spec: dict[str, object], mutation: int
) -> None:
    with tempfile.TemporaryDirectory(prefix="expunge-adv-") as tmp:
        base = Path(tmp)
        _check(build(spec, base), base, mutation)


@SETTINGS
@seed(20261201)
@given(spec=parquet_datasets(), mutation=st.integers(0, 10**6))
def test_parquet_datasets_fail_closed(spec: dict[str, object], mutation: int) -> None:
    _attack(build_parquet, spec, mutation)


@SETTINGS
@seed(20261202)
@given(spec=tar_datasets(), mutation=st.integers(0, 10**6))
def test_image_tar_datasets_fail_closed(spec: dict[str, object], mutation: int) -> None:
    _attack(build_tar, spec, mutation)


@SETTINGS
@seed(20261203)
@given(spec=folder_datasets(), mutation=st.integers(0, 10**6))
def test_image_folder_datasets_fail_closed(spec: dict[str, object], mutation: int) -> None:
    _attack(build_folders, spec, mutation)


@SETTINGS
@seed(20261204)
@given(spec=text_datasets(), mutation=st.integers(0, 10**6))
def test_text_datasets_fail_closed(spec: dict[str, object], mutation: int) -> None:
    _attack(build_text, spec, mutation)


def test_canonical_needles_are_what_the_list_hashes() -> None:
    """The generator's canonical needles must be real canonical forms, or the containment check is empty."""
    stored = b"  HTTP://CDN7.VARIANT.EXAMPLE:80/3/x/../%61.jpg#frag "
    assert canonicalize(stored) == b"http://cdn7.variant.example/3/a.jpg"
