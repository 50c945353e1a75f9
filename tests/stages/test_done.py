"""The one completion mechanism: a record that matches its fingerprint, with its outputs in place."""

from __future__ import annotations

from pathlib import Path

from expunge import atomic
from expunge.stages import done


def test_missing_record_matches_only_an_empty_fingerprint(tmp_path: Path) -> None:
    assert done.read_record(tmp_path / "none.json") is None
    assert not done.is_done(None, {"plan": "x"})
    assert done.is_done(None, {})


def test_changed_fingerprint_or_missing_output_is_not_done(tmp_path: Path) -> None:
    out = tmp_path / "out.bin"
    out.write_bytes(b"x")
    record = {"size": 1, "mtime_ns": 5, "other": "kept"}
    assert done.is_done(record, {"size": 1, "mtime_ns": 5}, [out])
    assert not done.is_done(record, {"size": 1, "mtime_ns": 6}, [out])
    assert not done.is_done(record, {"size": 1, "absent": None}, [out])  # a field the record lacks
    out.unlink()
    assert not done.is_done(record, {"size": 1, "mtime_ns": 5}, [out])


def test_callable_fingerprint_is_computed_only_when_outputs_exist(tmp_path: Path) -> None:
    calls: list[int] = []

    def fingerprint() -> dict[str, int]:
        calls.append(1)
        return {"size": 1}

    assert not done.is_done({"size": 1}, fingerprint, [tmp_path / "gone"])
    assert calls == []
    (tmp_path / "here").write_bytes(b"")
    assert done.is_done({"size": 1}, fingerprint, [tmp_path / "here"])
    assert calls == [1]


def test_mark_done_writes_what_earlier_stores_wrote(tmp_path: Path) -> None:
    """Byte-compatible with the findings state files and clean markers of existing stores."""
    record = {"b": 2, "a": [1, "x"]}
    done.mark_done(tmp_path / "new.json", record, tmp_path)
    atomic.write_json(tmp_path / "old.json", record, tmp_path)
    assert (tmp_path / "new.json").read_bytes() == (tmp_path / "old.json").read_bytes()
    assert done.read_record(tmp_path / "new.json") == record
    done.forget(tmp_path / "new.json", tmp_path / "never-written.json")
    assert done.read_record(tmp_path / "new.json") is None


def test_present_parts_need_their_file(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"")
    assert done.present(["a", "b"], lambda p: tmp_path / p) == {"a"}
