"""Bank names, sources and labels come from users and partners: the CLI prints them as text. A source
like ``[/]`` once made ``lists ls`` fail with Rich's MarkupError (found attacking the proxy import)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from expunge.cli.app import app


def test_markup_in_a_source_or_label_is_printed_as_text(tmp_path: Path) -> None:
    listing = tmp_path / "synthetic.txt"
    listing.write_text("d41d8cd98f00b204e9800998ecf8427e\n")
    store = str(tmp_path / "st")
    runner = CliRunner()
    args = ["lists", "import", str(listing), "--signal", "url_md5", "--store", store]
    made = runner.invoke(app, [*args, "--source", "[/]x[link=http://e.example]", "--label", "[bold]v"])
    assert made.exit_code == 0, made.output
    for cmd in (["lists", "ls", "--store", store], ["lists", "diff", "synthetic", "--store", store]):
        shown = runner.invoke(app, cmd, env={"COLUMNS": "200"})
        assert shown.exit_code == 0, shown.output
        assert "[bold]v" in shown.output
