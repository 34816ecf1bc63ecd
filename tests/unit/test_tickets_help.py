"""`desk tickets --help` and its commands explain themselves: every option has a help
text, and the one-line summaries of the commands are whole sentences, not cut mid-way
(click cuts a long first sentence, and takes "e.g." for the end of one)."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from desk.cli import main
from desk.cli.tickets import COMMANDS, tickets


def commands() -> list[tuple[str, click.Command]]:
    found = [(f"tickets {name}", cmd) for name, cmd in tickets.commands.items()]
    return found + [(cmd.name or "", cmd) for cmd in COMMANDS if cmd is not tickets]


@pytest.mark.parametrize(("name", "command"), commands())
def test_every_option_says_what_it_does(name: str, command: click.Command) -> None:
    silent = [p.name for p in command.params if isinstance(p, click.Option) and not p.help]
    assert silent == [], name


@pytest.mark.parametrize(("args", "ours"), [
    (["tickets", "--help"], set(tickets.commands)), (["--help"], {"tickets", "approve"})])
def test_command_summaries_are_not_cut(args: list[str], ours: set[str]) -> None:
    out = CliRunner().invoke(main, args, terminal_width=80).output
    listed = {line.split()[0]: line.rstrip() for line in out.split("Commands:")[1].splitlines()
              if line.strip()}
    assert ours <= set(listed), out
    for name in ours:
        assert not listed[name].endswith("...") and listed[name].endswith("."), listed[name]
