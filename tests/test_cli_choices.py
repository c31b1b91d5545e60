"""Every choice option of every command, as the command receives it: a valid value arrives as its
member, a bad one is exit 2 with one message, and a required choice that arrives as None (what
typer before 0.29 made of an Enum-annotated `parser=` option, typer issue #223) is an error,
never a silent default."""

from __future__ import annotations

import functools
import inspect
import typing
from typing import Annotated

import pytest
import typer
from typer.testing import CliRunner

from cnnbench.cli import app
from cnnbench.cli.app import CnnbenchGroup, CnnbenchTyper
from cnnbench.cli.options import Format, choice_parameters, require_choices
from cnnbench.errors import CnnbenchError

runner = CliRunner()


def _commands():
    """(name, registered info, the command's own function, its choices) of each command with
    choice options."""
    for info in app.registered_commands:
        inner = info.callback.__wrapped__ if hasattr(info.callback, "__wrapped__") else None
        choices = choice_parameters(inner) if inner is not None else {}
        if choices:
            yield info.name or inner.__name__.rstrip("_"), info, inner, choices


def _line(inner, choices, name: str, value: str | None) -> list[str]:
    """The arguments in order (a dummy for each required one that is no choice), then the option
    with `value` (None: left out)."""
    args = []
    for pname, parameter in inspect.signature(inner).parameters.items():
        if parameter.default is inspect.Parameter.empty:
            other = next(iter(choices[pname].kind)).value if pname in choices else "x"
            args.append(value if pname == name else other)
    option = choices[name]
    return (args if option.default is inspect.Parameter.empty or value is None
            else [*args, option.label, value])


COMMANDS = list(_commands())
CASES = [(command, info, inner, choices, name) for command, info, inner, choices in COMMANDS
         for name in choices]


def test_every_command_with_a_choice_is_found():
    names = {command for command, *_ in COMMANDS}
    assert {"run", "plan", "status", "report", "compare", "list", "profile"} <= names


@pytest.mark.parametrize("command, info, inner, choices, name", CASES,
                         ids=[f"{c}-{n}" for c, _, _, _, n in CASES])
def test_each_value_reaches_the_command_as_itself(command, info, inner, choices, name,
                                                  monkeypatch):
    seen = {}

    @functools.wraps(inner)
    def record(**kwargs):
        seen.update(kwargs)

    monkeypatch.setattr(info, "callback", require_choices(record))
    kind, default = choices[name].kind, choices[name].default
    for member in kind:
        seen.clear()
        result = runner.invoke(app, [command, *_line(inner, choices, name, member.value)])
        assert result.exit_code == 0, result.output
        assert seen[name] is member
    if default is not inspect.Parameter.empty:  # left out: its default, as a member too
        seen.clear()
        result = runner.invoke(app, [command, *_line(inner, choices, name, None)])
        assert result.exit_code == 0, result.output
        assert seen[name] is default


@pytest.mark.parametrize("command, info, inner, choices, name", CASES,
                         ids=[f"{c}-{n}" for c, _, _, _, n in CASES])
def test_a_bad_value_is_exit_2_with_one_message(command, info, inner, choices, name,
                                                monkeypatch):
    monkeypatch.setattr(info, "callback", require_choices(functools.wraps(inner)(
        lambda **kwargs: pytest.fail("the command ran"))))
    result = runner.invoke(app, [command, *_line(inner, choices, name, "nope")])
    assert result.exit_code == 2
    valid = ", ".join(member.value for member in choices[name].kind)
    assert result.output.count(f"'nope'; choose one of: {valid}") == 1, result.output


def test_no_choice_parameter_is_annotated_with_its_enum():
    """typer converts an Enum-annotated value again after the parser (before 0.29: to None);
    a `str` it leaves alone in every release."""
    for _, _, inner, choices in COMMANDS:
        hints = typing.get_type_hints(inner)
        for name in choices:
            assert hints[name] in (str, str | None), (inner.__name__, name, hints[name])


@pytest.mark.parametrize("command, info, inner, choices, name",
                         [c for c in CASES if c[3][c[4]].required],
                         ids=[f"{c}-{n}" for c, _, _, ch, n in CASES if ch[n].required])
def test_a_required_choice_arriving_as_none_is_an_error(command, info, inner, choices, name):
    """As typer 0.13–0.28 handed it on: the command refuses, naming the option."""
    args = {}
    for pname, parameter in inspect.signature(inner).parameters.items():
        args[pname] = parameter.default
        if parameter.default is inspect.Parameter.empty:  # a required argument: any valid value
            args[pname] = next(iter(choices[pname].kind)) if pname in choices else "x"
    with pytest.raises(CnnbenchError, match="arrived as None"):
        info.callback(**{**args, name: None})


def _lost(value):
    """A parser that loses the value, as typer 0.13–0.28 did after one."""
    return None


_lost.kind, _lost.noun = Format, "format"
stand_in = CnnbenchTyper(cls=CnnbenchGroup)
ran = []


@stand_in.command()
def show(fmt: Annotated[str, typer.Option("--format", parser=_lost)] = Format.table) -> None:
    ran.append(fmt)


@stand_in.command()
def other() -> None:  # two commands, so that `show` is a sub-command as in cnnbench
    pass


def test_none_from_the_parser_is_exit_2_not_the_default():
    """End to end, on a stand-in command whose parser loses the value."""
    result = runner.invoke(stand_in, ["show", "--format", "csv"])
    assert result.exit_code == 2 and not ran
    assert "--format arrived as None" in result.output
