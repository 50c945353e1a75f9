"""Parsing and naming locations; nothing a Location prints may carry a credential."""

from __future__ import annotations

import os
import string
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from expunge.errors import ExpungeError
from expunge.storage.location import LOCAL, Location, is_remote, parse, redact


def test_local_paths_become_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    loc = parse("data/part-0.parquet")
    assert loc == Location(LOCAL, str(tmp_path / "data" / "part-0.parquet"))
    assert loc.is_local and loc.protocol == "file" and loc.url == loc.path
    assert parse(tmp_path) == Location(LOCAL, str(tmp_path))
    assert parse(f"file://{tmp_path}/a?b") == Location(LOCAL, f"{tmp_path}/a?b")  # file:// is literal
    assert not is_remote(str(tmp_path)) and not is_remote(f"file://{tmp_path}") and not is_remote(tmp_path)


@pytest.mark.parametrize(
    ("spec", "protocol", "path"),
    [
        ("s3://bucket/laion/", "s3", "bucket/laion"),
        ("S3://bucket/a/b.parquet", "s3", "bucket/a/b.parquet"),
        ("s3a://bucket/x", "s3", "bucket/x"),
        ("gcs://b/x", "gs", "b/x"),
        ("gs://b/x", "gs", "b/x"),
        ("az://container/x", "az", "container/x"),
        ("abfss://container/x", "abfs", "container/x"),
        ("hf://datasets/org/name@main/data", "hf", "datasets/org/name@main/data"),
        ("memory:///scratch/x", "memory", "scratch/x"),
    ],
)
def test_remote_urls(spec: str, protocol: str, path: str) -> None:
    loc = parse(spec)
    assert (loc.protocol, loc.path) == (protocol, path)
    assert loc.url == f"{protocol}://{path}" and not loc.is_local and is_remote(spec)
    assert parse(loc.url) == loc  # canonical form round-trips


def test_join_parent_name() -> None:
    root = parse("s3://bucket/release")
    shard = root.join("shards", "part-00001.parquet")
    assert shard.url == "s3://bucket/release/shards/part-00001.parquet"
    assert shard.name == "part-00001.parquet"
    assert shard.parent == root.join("shards")
    assert shard.parent.url == "s3://bucket/release/shards"
    assert parse("s3://bucket").parent == parse("s3://bucket")
    assert root.join() == root
    local = parse("/tmp/x").join("a/b")
    assert local.path == os.path.join("/tmp/x", "a", "b") and local.parent.path == "/tmp/x/a"


@pytest.mark.parametrize("bad", ["..", "a/../../b", "/etc/passwd", "", "a//b", "./a"])
def test_join_refuses_names_that_escape(bad: str) -> None:
    for root in (parse("s3://bucket/release"), parse("/tmp/release")):
        with pytest.raises(ExpungeError, match="refusing"):
            root.join(bad)


def test_unknown_protocol_refused_with_redacted_url() -> None:
    with pytest.raises(ExpungeError) as info:
        parse("ftp://alice:hunter2@host/data?token=sekrit")
    text = str(info.value)
    assert "unknown storage protocol 'ftp://'" in text and "ftp://host/data" in text
    assert "hunter2" not in text and "sekrit" not in text and "alice" not in text


@pytest.mark.parametrize(
    "spec",
    [
        "s3://AKIAXXXX:wJalrSECRET@bucket/key",
        "s3://bucket/key?X-Amz-Signature=abcdef",
        "s3://bucket/k#zzfrag",
    ],
)
def test_credentials_and_queries_refused(spec: str) -> None:
    with pytest.raises(ExpungeError) as info:
        parse(spec)
    text = str(info.value)
    assert "s3://bucket/k" in text
    assert "SECRET" not in text and "AKIA" not in text and "abcdef" not in text and "zzfrag" not in text


@pytest.mark.parametrize(
    "spec",
    [
        "s3://AKIAEXAMPLE:wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY@bucket/key",  # a real secret's shape
        "s3://AKIAEXAMPLE:pa?ss#wo@rd@bucket/key",
        "s3://TOKEN1234@bucket/key",
    ],
)
def test_secrets_with_url_delimiters_never_shown(spec: str) -> None:
    with pytest.raises(ExpungeError, match="may not carry credentials") as info:
        parse(spec)
    assert str(info.value).startswith("s3://bucket/key:")
    assert redact(spec) == "s3://bucket/key"


def test_at_signs_in_keys_are_not_credentials() -> None:
    assert parse("s3://bucket/user@example.org/x.parquet").path == "bucket/user@example.org/x.parquet"
    assert (
        parse("hf://datasets/org/name@refs%2Fconvert%2Fparquet/x")
        .redacted()
        .endswith("@refs%2Fconvert%2Fparquet/x")
    )


@pytest.mark.parametrize("spec", ["s3://", "s3:///", "gs://"])
def test_url_without_bucket_refused(spec: str) -> None:
    with pytest.raises(ExpungeError, match="must name a bucket"):
        parse(spec)


_secret = st.text(alphabet=string.ascii_letters + string.digits + "%+=-_~", min_size=6, max_size=20).map(
    lambda s: "Zq" + s  # a marker that never occurs in the other parts
)
# Pasted cloud secrets hold '/', '+', '=' and sometimes '@', '?', '#', ':'.
_password = st.text(
    alphabet=string.ascii_letters + string.digits + "/+=@?#:%-_~", min_size=6, max_size=24
).map(lambda s: "Zq" + s)
_user = st.text(alphabet=string.ascii_letters + string.digits, min_size=6, max_size=20).map(
    lambda s: "Zq" + s
)
_segment = st.text(alphabet=string.ascii_lowercase + string.digits + "-.", min_size=1, max_size=12)


@settings(max_examples=200, deadline=None)
@given(
    scheme=st.sampled_from(["s3", "gs", "az", "hf", "memory", "ftp", "https", "x-y"]),
    user=_user,
    password=st.one_of(st.none(), _password),
    bucket=_segment,
    key=st.lists(_segment, max_size=4),
    query=st.one_of(st.none(), _secret),
    fragment=st.one_of(st.none(), _secret),
)
def test_redaction_never_shows_userinfo_or_query(
    scheme: str,
    user: str,
    password: str | None,
    bucket: str,
    key: list[str],
    query: str | None,
    fragment: str | None,
) -> None:
    userinfo = user if password is None else f"{user}:{password}"
    url = f"{scheme}://{userinfo}@{bucket}/{'/'.join(key)}"
    if query is not None:
        url += f"?sig={query}&x=1"
    if fragment is not None:
        url += f"#{fragment}"
    secrets = [s for s in (user, password, query, fragment) if s]
    shown = redact(url)
    assert all(s not in shown for s in secrets)
    assert shown.startswith(f"{scheme}://{bucket}")
    with pytest.raises(ExpungeError) as info:
        parse(url)
    assert all(s not in str(info.value) for s in secrets)
    for s in secrets:  # not even a piece of one
        assert s[:6] not in shown and s[:6] not in str(info.value)
    # The same URL without the secret parts parses, and prints without change.
    if scheme in ("s3", "gs", "az", "hf", "memory"):
        clean = parse(shown)
        assert clean.redacted() == clean.url and all(s not in repr(clean) for s in secrets)
