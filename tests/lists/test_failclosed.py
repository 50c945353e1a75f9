"""Fail closed on lists (issue 8, defects 1, 7 and 8).

1. Two list files never share a bank: a name derived from a file's stem that another file already holds
   (also after case and character folding, or 60-character truncation) gets a bank of its own.
7. An import killed at any rename or fsync leaves the previous version whole; the rerun ends exactly
   where an uninterrupted import ends.
8. A list with no values, and a CSV row led by ``#``, are never passed over silently.
"""

from __future__ import annotations

import hashlib
import os
import signal
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from expunge import api, atomic
from expunge.errors import ExpungeError
from expunge.lists.bank import (
    ImportResult,
    added_since,
    import_list,
    load_bank,
    load_info,
    read_values,
    values_path,
)
from expunge.store import Store

MARK = "zebrafish7731"  # a distinctive neutral token placed on refused lines


def _md5s(*seeds: str) -> list[bytes]:
    return [hashlib.md5(s.encode()).digest() for s in seeds]


def _write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def _hexlist(path: Path, values: list[bytes]) -> Path:
    return _write(path, "# SYNTHETIC\n" + "".join(v.hex() + "\n" for v in values))


def _stored(store: Store, name: str) -> set[bytes]:
    info = load_info(store, name)
    arr = read_values(values_path(store.bank_dir(name), info.version), info.width)
    raw = np.ascontiguousarray(arr).tobytes()
    return {raw[i : i + info.width] for i in range(0, len(raw), info.width)}


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store")


# ------------------------------------------------------------------------------------------------
# 1. one bank per list file
# ------------------------------------------------------------------------------------------------


def test_two_files_with_one_stem_get_two_banks(store: Store, tmp_path: Path) -> None:
    a, b = _md5s("iwf-1", "iwf-2"), _md5s("c3p-1")
    iwf = _hexlist(tmp_path / "iwf" / "hashes.txt", a)
    c3p = _hexlist(tmp_path / "c3p" / "hashes.txt", b)
    r1 = import_list(store, iwf, signal="url_md5")
    r2 = import_list(store, c3p, signal="url_md5")
    assert r1.name == "hashes" and r1.note is None
    assert r2.name != "hashes" and r2.name.startswith("hashes-")
    assert (r1.version, r2.version) == (1, 1)
    assert r2.note is not None and "hashes" in r2.note and "--name" in r2.note
    assert _stored(store, r1.name) == set(a)
    assert _stored(store, r2.name) == set(b)
    # Rerunning the same imports, in either order, versions the same two banks.
    for path, first in ((c3p, r2), (iwf, r1)):
        again = import_list(store, path, signal="url_md5")
        assert (again.name, again.version, again.unchanged, again.note) == (first.name, 1, True, None)
    # The newer file at the same path is the bank's next version.
    _hexlist(c3p, [*b, *_md5s("c3p-2")])
    r3 = import_list(store, c3p, signal="url_md5")
    assert (r3.name, r3.version, r3.added) == (r2.name, 2, 1)
    assert _stored(store, r1.name) == set(a)


def _long(prefix: str, tail: str) -> str:
    return prefix * 70 + tail


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("a b.txt", "a_b.txt"),  # folded by the folder-name rule
        ("a:b.txt", "a;b.txt"),
        ("é.txt", "_.txt"),
        ("Hashes.txt", "hashes.txt"),  # one folder on case-insensitive file systems
        (_long("x", "1.txt"), _long("x", "2.txt")),  # same 60-character prefix
    ],
)
def test_stems_that_fold_together_get_two_banks(
    store: Store, tmp_path: Path, first: str, second: str
) -> None:
    va, vb = _md5s("first"), _md5s("second")
    r1 = import_list(store, _hexlist(tmp_path / "one" / first, va), signal="url_md5")
    r2 = import_list(store, _hexlist(tmp_path / "two" / second, vb), signal="url_md5")
    assert store.bank_dir(r1.name).name.lower() != store.bank_dir(r2.name).name.lower()
    assert (r1.version, r2.version) == (1, 1)
    assert _stored(store, r1.name) == set(va)
    assert _stored(store, r2.name) == set(vb)
    assert len(store.bank_names()) == 2


def test_a_symlink_to_the_same_file_is_the_same_bank(store: Store, tmp_path: Path) -> None:
    real = _hexlist(tmp_path / "real" / "list.txt", _md5s("a"))
    link = tmp_path / "elsewhere" / "list.txt"
    link.parent.mkdir()
    link.symlink_to(real)
    r1 = import_list(store, real, signal="url_md5")
    r2 = import_list(store, link, signal="url_md5")
    assert (r2.name, r2.version, r2.unchanged) == (r1.name, 1, True)


def test_explicit_name_versions_another_file_and_says_so(store: Store, tmp_path: Path) -> None:
    old = _hexlist(tmp_path / "2024-01" / "iwf.txt", _md5s("a", "b"))
    new = _hexlist(tmp_path / "2024-02" / "other.txt", _md5s("b", "c"))
    import_list(store, old, name="iwf", signal="url_md5")
    res = import_list(store, new, name="iwf", signal="url_md5")
    assert (res.name, res.version, res.added, res.removed) == ("iwf", 2, 1, 1)
    assert res.note is not None and str(old.resolve()) in res.note and "next version" in res.note
    assert load_info(store, "iwf").origin == str(new.resolve())
    # From now on the bank follows the new file: deriving from it finds the same bank.
    assert import_list(store, new, name="iwf", signal="url_md5").note is None


@pytest.mark.parametrize(
    ("held", "asked"), [("a b", "a_b"), ("Lists", "lists"), (_long("y", "1"), _long("y", "2"))]
)
def test_explicit_name_folding_onto_another_bank_is_refused(
    store: Store, tmp_path: Path, held: str, asked: str
) -> None:
    import_list(store, _hexlist(tmp_path / "1.txt", _md5s("a")), name=held, signal="url_md5")
    before = _tree(store.root / "banks")
    with pytest.raises(ExpungeError, match="share a folder"):
        import_list(store, _hexlist(tmp_path / "2.txt", _md5s("b")), name=asked, signal="url_md5")
    assert _tree(store.root / "banks") == before


def _make_legacy(store: Store, name: str) -> None:
    """Rewrite a bank in the layout of stores written before bank.json named its values file."""
    bdir = store.bank_dir(name)
    data = atomic.read_json(bdir / "bank.json")
    current = bdir / data["versions"][-1].pop("values_file")
    for v in data["versions"]:
        v.pop("values_file", None)
        v.pop("path", None)
    data.pop("origin")
    current.rename(bdir / "values.parquet")
    atomic.write_json(bdir / "bank.json", data)


def test_banks_of_older_stores_keep_working(store: Store, tmp_path: Path) -> None:
    a, b, c = _md5s("a", "b", "c")
    path = _hexlist(tmp_path / "old" / "legacy.txt", [a, b])
    import_list(store, path, signal="url_md5")
    _make_legacy(store, "legacy")
    bank = load_bank(store, "legacy")
    assert bank.values.contains(np.array([a, c], dtype="S16")).tolist() == [True, False]
    # Without a recorded origin, another file (even the same one) is not assumed to be the bank's.
    other = import_list(store, _hexlist(tmp_path / "new" / "legacy.txt", [c]), signal="url_md5")
    assert other.name != "legacy"
    # An explicit new version moves the bank to the versioned layout.
    res = import_list(store, _hexlist(tmp_path / "v2.txt", [b, c]), name="legacy", signal="url_md5")
    assert (res.version, res.added, res.removed) == (2, 1, 1)
    assert not (store.bank_dir("legacy") / "values.parquet").exists()
    assert _stored(store, "legacy") == {b, c}


# ------------------------------------------------------------------------------------------------
# 7. crash safety: die at every rename and fsync of an import, rerun, compare
# ------------------------------------------------------------------------------------------------


def _run_dying_at(n: int, job: Callable[[], object]) -> bool:
    """Run ``job`` in a child killed (SIGKILL) just before its n-th rename, fsync or unlink (the garbage
    collection after a commit); True if it died."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            seen = [0]
            real_replace, real_fsync, real_unlink = os.replace, os.fsync, os.unlink

            def hit() -> None:
                seen[0] += 1
                if seen[0] == n:
                    os.kill(os.getpid(), signal.SIGKILL)

            def replace(*args: Any, **kwargs: Any) -> None:
                hit()
                real_replace(*args, **kwargs)

            def fsync(fd: int) -> None:
                hit()
                real_fsync(fd)

            def unlink(*args: Any, **kwargs: Any) -> None:
                hit()
                real_unlink(*args, **kwargs)

            os.replace = replace  # type: ignore[assignment]
            os.fsync = fsync
            os.unlink = unlink  # type: ignore[assignment]
            job()
        except BaseException:
            code = 3
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == signal.SIGKILL
        return True
    assert os.WEXITSTATUS(status) == 0
    return False


def _bank_state(store: Store, name: str) -> dict[str, Any]:
    """Everything a clean import decides: versions (without the clock), values, deltas, files."""
    info = load_info(store, name)
    versions = [{k: v for k, v in e.items() if k != "imported_at"} for e in info.versions]
    bdir = store.bank_dir(name)
    files = {p: b for p, b in _tree(bdir).items() if p != "bank.json"}
    return {"versions": versions, "origin": info.origin, "values": _stored(store, name), "files": files}


@pytest.mark.parametrize("first_import", [True, False])
def test_import_killed_at_every_rename_and_fsync(tmp_path: Path, first_import: bool) -> None:
    old, new = _md5s("a", "b", "c"), _md5s("b", "c", "d", "e")
    listing = tmp_path / "lists" / "partner.txt"

    def fresh_store(root: Path) -> Store:
        s = Store(root)
        if not first_import:
            _hexlist(listing, old)
            api.import_list(listing, store=root, signal="url_md5", label="L")
        _hexlist(listing, new)
        return s

    ref = fresh_store(tmp_path / "ref")
    api.import_list(listing, store=ref.root, signal="url_md5", label="L")
    expected = _bank_state(ref, "partner")
    before_version = 0 if first_import else 1

    died_at = []
    for n in range(1, 100):
        with tempfile.TemporaryDirectory(dir=tmp_path) as tmp:
            s = fresh_store(Path(tmp) / "store")
            died = _run_dying_at(
                n, lambda s=s: api.import_list(listing, store=s.root, signal="url_md5", label="L")
            )
            if not died:
                break
            died_at.append(n)
            # Killed: the bank is its old version whole, or the new one whole, never a mix.
            if "partner" in s.bank_names():
                info = load_info(s, "partner")
                want = {before_version: set(old), before_version + 1: set(new)}
                assert info.version in want
                assert _stored(s, "partner") == want[info.version]
            else:
                assert before_version == 0
            res = api.import_list(listing, store=s.root, signal="url_md5", label="L")
            assert res.version == before_version + 1
            assert _bank_state(s, "partner") == expected
            # Matching sees the new values, and incremental matching sees what was added.
            bank = load_bank(s, "partner")
            assert bank.values.contains(np.array(new, dtype="S16")).all()
            since = added_since(s, "partner", before_version, 16)
            assert set(
                np.ascontiguousarray(since).tobytes()[i : i + 16] for i in range(0, 16 * len(since), 16)
            ) == (set(new) - (set() if first_import else set(old)))
    # Three value files and bank.json: each a file fsync, a rename and a directory fsync.
    assert len(died_at) >= 12, died_at


def test_values_written_without_bank_json_are_never_read(store: Store, tmp_path: Path) -> None:
    """The reported crash: new values on disk, bank.json not yet replaced. The rerun must import."""
    path = _hexlist(tmp_path / "p.txt", _md5s("a"))
    import_list(store, path, signal="url_md5")
    bdir = store.bank_dir("p")
    # What a killed import of the newer file leaves: version-2 files beside the committed bank.json.
    newer = _md5s("a", "b")
    _hexlist(path, newer)
    committed = _tree(bdir)
    import_list(store, path, signal="url_md5")
    for rel, data in committed.items():  # back to version 1's files, keeping version 2's beside them
        _write(bdir / rel, data)
    assert (bdir / "values-v0002.parquet").is_file()
    assert _stored(store, "p") == set(_md5s("a"))  # readers follow bank.json only
    res = import_list(store, path, signal="url_md5")
    assert (res.version, res.added, res.unchanged) == (2, 1, False)
    assert _stored(store, "p") == set(newer)


# ------------------------------------------------------------------------------------------------
# 8. empty and partial lists
# ------------------------------------------------------------------------------------------------

EMPTY = {
    "empty.txt": b"",
    "comments.txt": b"# SYNTHETIC\n\n# nothing listed yet\n",
    "bom.txt": b"\xef\xbb\xbf",
    "bom-comment.txt": b"\xef\xbb\xbf# c\r\n",
    "whitespace.txt": b"   \n\t\n \r\n",
    "header.csv": b"md5,id,category\n",
    "header-blank.csv": b"\xef\xbb\xbfmd5,id\n\n  \n",
    "pytx-comments.txt": b"# url_md5 lists\n\n",
}


@pytest.mark.parametrize("name", sorted(EMPTY))
def test_a_list_with_no_values_is_refused(store: Store, tmp_path: Path, name: str) -> None:
    path = _write(tmp_path / name, EMPTY[name])
    with pytest.raises(ExpungeError, match=r"no values.*--allow-empty") as info:
        import_list(store, path, signal="url_md5")
    assert info.value.path == str(path)
    assert store.bank_names() == []
    res = import_list(store, path, signal="url_md5", allow_empty=True)
    assert (res.count, res.version) == (0, 1)
    # The same empty file again, without --allow-empty, is refused too (not "unchanged").
    with pytest.raises(ExpungeError, match="no values"):
        import_list(store, path, signal="url_md5")
    assert import_list(store, path, signal="url_md5", allow_empty=True).unchanged


def test_an_empty_list_without_a_signal_says_it_is_empty(store: Store, tmp_path: Path) -> None:
    with pytest.raises(ExpungeError, match="no values"):
        import_list(store, _write(tmp_path / "e.txt", "# c\n"))


def test_an_empty_reimport_never_empties_a_bank(store: Store, tmp_path: Path) -> None:
    values = _md5s("a", "b")
    path = _hexlist(tmp_path / "p.txt", values)
    import_list(store, path, signal="url_md5")
    before = _tree(store.root / "banks")
    for data in (d for n, d in EMPTY.items() if n.endswith(".txt")):
        _write(path, data)
        with pytest.raises(ExpungeError, match="no values"):
            import_list(store, path, signal="url_md5")
        assert _tree(store.root / "banks") == before
    res = import_list(store, path, signal="url_md5", allow_empty=True)
    assert (res.version, res.count, res.removed) == (2, 0, 2)


@pytest.mark.parametrize("signal_name", ["url_md5", "url", "domain"])
@pytest.mark.parametrize("name", ["nul.txt", "nul.csv"])
def test_a_file_of_one_nul_byte_is_refused(store: Store, tmp_path: Path, signal_name: str, name: str) -> None:
    path = _write(tmp_path / name, b"\x00")
    with pytest.raises(ExpungeError) as info:
        import_list(store, path, signal=signal_name, allow_empty=True)
    assert info.value.path == str(path)
    assert store.bank_names() == []


@pytest.mark.parametrize(
    "data",
    [
        b"http://river.example/a\rhttp://stone.example/b\r",  # CR-only line ends: one line, two URLs
        b"http://river.example/\x00\n",
        b"http://river.example/a\x1cb\n",
        b"http://river.example/\x7f\n",
    ],
)
def test_control_characters_in_a_url_list_are_refused(store: Store, tmp_path: Path, data: bytes) -> None:
    path = _write(tmp_path / "urls.txt", data)
    with pytest.raises(ExpungeError, match="control character") as info:
        import_list(store, path, signal="url")
    assert info.value.where == "line 1"
    assert store.bank_names() == []


def test_csv_with_every_hash_field_empty_is_refused(store: Store, tmp_path: Path) -> None:
    path = _write(tmp_path / "l.csv", "md5,id\n,1\n ,2\n")
    with pytest.raises(ExpungeError, match="empty value") as info:
        import_list(store, path, signal="url_md5", allow_empty=True)
    assert info.value.where == "line 2"


def test_csv_row_led_by_hash_is_data(store: Store, tmp_path: Path) -> None:
    a, b = _md5s("a", "b")
    # A '#' in the hash column is a malformed value: the whole list is refused, as for any bad line.
    bad = _write(tmp_path / "bad.csv", f"md5,id\n{a.hex()},1\n#{MARK},2\n{b.hex()},3\n")
    with pytest.raises(ExpungeError) as info:
        import_list(store, bad, signal="url_md5")
    assert info.value.where == "line 3" and MARK not in str(info.value)
    assert store.bank_names() == []
    # A '#' leading another column is just data: the row's value is imported.
    ok = _write(tmp_path / "ok.csv", f"id,md5\n#1,{a.hex()}\n# 2,{b.hex()}\n")
    res = import_list(store, ok, signal="url_md5")
    assert res.count == 2 and _stored(store, "ok") == {a, b}
    # A '#' header column (a row number) is a header like any other.
    numbered = _write(tmp_path / "numbered.csv", f"#,md5\n1,{a.hex()}\n")
    assert import_list(store, numbered, signal="url_md5").count == 1
    # A '#' preamble is not skipped: it is the header, which names no hash column.
    preamble = _write(tmp_path / "pre.csv", f"# exported\nmd5\n{a.hex()}\n")
    with pytest.raises(ExpungeError, match="no hash column") as info:
        import_list(store, preamble, signal="url_md5")
    assert info.value.where == "line 1"


def test_import_result_is_compatible() -> None:
    """Callers that build results positionally keep working: the note is optional."""
    assert ImportResult("b", 1, 2, 2, 0, False).note is None
