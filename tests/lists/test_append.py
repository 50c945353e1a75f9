"""Re-importing a list file that only grew parses only the lines it gained (issue 12: the daily
update), and gives exactly the bank a full parse gives."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from expunge.errors import ExpungeError
from expunge.lists.bank import import_list, load_bank, load_info, read_values
from expunge.store import Store

_LINE = st.one_of(
    st.binary(min_size=16, max_size=16).map(lambda b: b.hex()),
    st.just(""),
    st.just("# a comment"),
)


def _bank(store: Store, name: str) -> tuple[list[bytes], int]:
    info = load_info(store, name)
    values = load_bank(store, name).values.values
    return [bytes(v).ljust(16, b"\0") for v in values.tolist()], info.count


@settings(max_examples=40, deadline=None)
@given(first=st.lists(_LINE, min_size=1, max_size=20), more=st.lists(_LINE, max_size=20), crlf=st.booleans())
def test_an_appended_file_gives_the_bank_a_full_parse_gives(
    tmp_path_factory: pytest.TempPathFactory, first: list[str], more: list[str], crlf: bool
) -> None:
    tmp = tmp_path_factory.mktemp("append")
    end = "\r\n" if crlf else "\n"
    listing = tmp / "daily.txt"
    listing.write_text("".join(line + end for line in first), newline="")
    store = Store(tmp / "st").ensure()
    if not any(len(line) == 32 for line in first):
        return  # an empty first list is refused; nothing to append to
    import_list(store, listing, None, "url_md5", "raw", "SYNTHETIC")
    before = set(_bank(store, "daily")[0])
    with listing.open("a", newline="") as fh:
        fh.write("".join(line + end for line in more))
    res = import_list(store, listing, None, "url_md5", "raw", "SYNTHETIC")
    fresh = Store(tmp / "fresh").ensure()
    import_list(fresh, listing, None, "url_md5", "raw", "SYNTHETIC")
    assert _bank(store, "daily") == _bank(fresh, "daily")
    added = {bytes.fromhex(v) for v in more if len(v) == 32} - before
    assert res.added == len(added) and res.removed == 0
    if added:
        info = load_info(store, "daily")
        delta = read_values(store.bank_delta("daily", info.version, "added"), 16)
        assert {bytes(v).ljust(16, b"\0") for v in delta.tolist()} == added


def test_a_bad_appended_line_is_named_by_its_line_in_the_file(tmp_path: Path) -> None:
    listing = tmp_path / "daily.txt"
    listing.write_text("\n".join(hashlib.md5(str(i).encode()).hexdigest() for i in range(5)) + "\n")
    store = Store(tmp_path / "st").ensure()
    import_list(store, listing, None, "url_md5", "raw", "SYNTHETIC")
    with listing.open("a") as fh:
        fh.write("# appended\n" + "ab" * 15 + "\n")  # line 7: 30 hex digits
    with pytest.raises(ExpungeError) as err:
        import_list(store, listing, None, "url_md5", "raw", "SYNTHETIC")
    assert "line 7" in str(err.value) and "ab" * 15 not in str(err.value)


def test_an_edited_file_is_parsed_whole_and_removals_are_kept(tmp_path: Path) -> None:
    values = [hashlib.md5(str(i).encode()).hexdigest() for i in range(6)]
    listing = tmp_path / "daily.txt"
    listing.write_text("\n".join(values) + "\n")
    store = Store(tmp_path / "st").ensure()
    import_list(store, listing, None, "url_md5", "raw", "SYNTHETIC")
    listing.write_text("\n".join(values[1:]) + "\n" + hashlib.md5(b"new").hexdigest() + "\n")
    res = import_list(store, listing, None, "url_md5", "raw", "SYNTHETIC")
    assert (res.added, res.removed, res.count) == (1, 1, 6)
    # A last line without its newline may continue in the next file: parsed whole too.
    listing.write_bytes(listing.read_bytes().rstrip(b"\n"))
    import_list(store, listing, None, "url_md5", "raw", "SYNTHETIC")
    with listing.open("a") as fh:
        fh.write("ff" + "\n")  # joins the last value: 34 hex digits
    with pytest.raises(ExpungeError, match="line 6"):
        import_list(store, listing, None, "url_md5", "raw", "SYNTHETIC")
    assert np.array_equal(load_bank(store, "daily").values.values, load_bank(store, "daily").values.values)
