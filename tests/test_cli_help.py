"""Every command teaches itself: each positional argument has help, each command's --help shows
a worked example (README.md, "every command teaches its options")."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from coldchain.cli import app

NO_EXAMPLE_YET: set[tuple[str, ...]] = set()
"""Commands allowed to go without a worked example: none."""


def _commands(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    for name, command in sorted(group.commands.items()):
        if hasattr(command, "commands"):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name), command


COMMANDS = list(_commands(typer.main.get_command(app)))


def test_the_walk_finds_every_command_of_every_sub_app():
    names = {" ".join(p) for p, _ in COMMANDS}
    assert {"demo", "dossier", "shipment create", "alerts ack", "custody add", "signer add"} <= (
        names
    )
    assert len(names) >= 29


def _params(commands: list[tuple[tuple[str, ...], Any]]) -> list[Any]:
    return [pytest.param(p, c, id=" ".join(p)) for p, c in commands]


@pytest.mark.parametrize(("path", "command"), _params(COMMANDS))
def test_every_positional_argument_has_help(path, command):
    missing = [p.name for p in command.params if p.param_type_name == "argument" and not p.help]
    assert missing == [], f"coldchain {' '.join(path)}: arguments without help: {missing}"


@pytest.mark.parametrize(
    ("path", "command"), _params([(p, c) for p, c in COMMANDS if p not in NO_EXAMPLE_YET])
)
def test_every_command_help_shows_a_worked_example(path, command):
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    lines = [line.strip() for line in result.output.splitlines()]
    assert any(line.startswith("Example") for line in lines), result.output
    usage = "coldchain " + " ".join(path)
    assert any(line == usage or line.startswith(usage + " ") for line in lines), (
        f"no example line starting with {usage!r} in:\n{result.output}"
    )


def test_help_shows_settings_sections_in_brackets_instead_of_eating_them_as_markup():
    """Typer renders help as rich markup, where "[dossier]" would be a style tag."""
    text = " ".join(CliRunner().invoke(app, ["dossier", "--help"]).output.split())
    assert "the Ed25519 key of [dossier] signing_key" in text
    text = " ".join(CliRunner().invoke(app, ["verify", "--help"]).output.split())
    assert "separately: [dossier] trusted_keys" in text
