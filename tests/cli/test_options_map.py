"""Every CLI option reaches the API under its own name: a new option that is declared but not wired
(or wired to the wrong parameter) fails here.

Each command is invoked with a distinct non-default value for every option and argument, against a
recorder standing in for its API function; each value must arrive as the API parameter, or the
``RunConfig`` field, of the same name. Only options that change what is printed may stay in the CLI.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import pytest
import typer
from typer.testing import CliRunner

import expunge.demo
from expunge import api
from expunge.cli.app import app
from expunge.cli.options import RENDERING, RUN_OPTIONS
from expunge.config import RunConfig

# command path -> (module, attribute) of the function it is a thin call into
TARGETS: dict[tuple[str, ...], tuple[Any, str]] = {
    ("index",): (api, "index"),
    ("match",): (api, "match"),
    ("clean",): (api, "clean"),
    ("apply",): (api, "apply"),
    ("hash",): (api, "hash_files"),
    ("report",): (api, "report"),
    ("keygen",): (api, "keygen"),
    ("verify",): (api, "verify"),
    ("diff-release",): (api, "diff_release"),
    ("lists", "import"): (api, "import_list"),
    ("lists", "ls"): (api, "list_banks"),
    ("lists", "diff"): (api, "bank"),
    ("review", "export"): (api, "review_export"),
    ("review", "import"): (api, "review_import"),
    ("review", "status"): (api, "review_status"),
    ("review", "forget"): (api, "review_forget"),
    ("lineage", "build"): (api, "lineage_build"),
    ("lineage", "mark"): (api, "lineage_mark"),
    ("lineage", "report"): (api, "lineage_report"),
    ("lineage", "notices"): (api, "lineage_notices"),
    ("proxy", "export"): (api, "proxy_export"),
    ("proxy", "match"): (api, "proxy_match"),
    ("proxy", "import"): (api, "proxy_import"),
    ("demo",): (expunge.demo, "run_demo"),  # the demo drives the API itself
}


class _Called(Exception):
    def __init__(self, arguments: dict[str, Any]) -> None:
        super().__init__("called")
        self.arguments = arguments


def _commands(group: Any, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """Typer's commands by path (typer carries its own click, so they are read by duck typing)."""
    found: dict[tuple[str, ...], Any] = {}
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):
            found.update(_commands(cmd, (*prefix, name)))
        else:
            found[(*prefix, name)] = cmd
    return found


COMMANDS = _commands(typer.main.get_command(app))


def _kinds(hint: Any) -> set[Any]:
    """The plain types an annotation allows: ``int | None`` -> {int, NoneType}, ``list[str]`` -> {list}."""
    if typing.get_origin(hint) is Annotated:
        hint = typing.get_args(hint)[0]
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return set().union(*(_kinds(h) for h in typing.get_args(hint)))
    return {typing.get_origin(hint) or hint}


def _sample(param: Any, hint: Any) -> tuple[list[str], Any]:
    """Command-line words for a non-default value of ``param``, and the value the API should see."""
    kinds = _kinds(hint)
    option = param.param_type_name == "option"
    if option and param.is_flag:
        return [param.opts[0]], True
    if int in kinds:
        word, value = "7", 7  # no default of any option is 7
    elif float in kinds:
        word, value = "0.375", 0.375  # nor is any float default 0.375
    else:
        word = value = f"v-{param.name}"
    words = [param.opts[0], word] if option else [word]
    return words, [value] if list in kinds else value


def _norm(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list | tuple):
        return [_norm(v) for v in value]
    return value


def test_every_command_has_an_api_target() -> None:
    assert set(COMMANDS) == set(TARGETS), "map each new command to the API function it calls"


def test_run_commands_share_every_run_option() -> None:
    run = {p.name for p in RUN_OPTIONS}
    for path in (("index",), ("match",), ("clean",), ("apply",)):
        names = {p.name for p in COMMANDS[path].params}
        assert run <= names, (path, run - names)


@pytest.mark.parametrize("path", sorted(TARGETS), ids=lambda p: " ".join(p))
def test_each_option_maps_to_the_api_parameter_of_the_same_name(
    path: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    module, attr = TARGETS[path]
    original: Callable[..., Any] = getattr(module, attr)
    signature = inspect.signature(original)

    def recorder(*args: Any, **kwargs: Any) -> Any:
        raise _Called(dict(signature.bind(*args, **kwargs).arguments))

    monkeypatch.setattr(module, attr, recorder)
    argv: list[str] = list(path)
    expected: dict[str, Any] = {}
    command = COMMANDS[path]
    hints = typing.get_type_hints(command.callback, include_extras=True)
    for param in command.params:
        if param.name is None or param.name == "help":
            continue
        words, value = _sample(param, hints[param.name])
        argv += words
        expected[param.name] = value
    result = CliRunner().invoke(app, argv)
    assert isinstance(result.exception, _Called), (argv, result.output, result.exception)
    arguments = result.exception.arguments
    config = next((v for v in arguments.values() if isinstance(v, RunConfig)), None)
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    for name, value in expected.items():
        if name in RENDERING:
            continue
        if name in arguments:
            got = arguments[name]
        elif config is not None and name in fields:
            got = getattr(config, name)
        else:
            raise AssertionError(
                f"{' '.join(path)}: option {name!r} reaches no API parameter or config field"
            )
        assert _norm(got) == _norm(value), (path, name, got, value)
    # Only rendering options may stay in the CLI: everything else was checked above.
    assert set(expected) - set(arguments) - fields <= RENDERING


def test_run_options_build_one_config_with_the_stated_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[RunConfig] = []

    def recorder(dataset: list[str], *, banks: Any = None, opts: RunConfig | None = None) -> Any:
        assert opts is not None
        seen.append(opts)
        raise _Called({})

    monkeypatch.setattr(api, "index", recorder)
    CliRunner().invoke(app, ["index", "ds", "-q"])
    (config,) = seen
    defaults = RunConfig()
    for f in dataclasses.fields(RunConfig):
        if f.name not in ("reporter", "store"):
            assert getattr(config, f.name) == getattr(defaults, f.name), f.name
    assert Path(config.store) == Path(defaults.store)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.workers = 3  # type: ignore[misc]
