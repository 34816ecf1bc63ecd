"""The `desk` command's own help is an admin's first impression: every option explained,
every command's one-line summary whole, and `desk --version` answering."""

from __future__ import annotations

import importlib.metadata
import re

import click
from click.testing import CliRunner

from desk.cli import main


def walk(command: click.Command, path: tuple[str, ...] = ("desk",)
         ) -> list[tuple[tuple[str, ...], click.Command]]:
    found = [(path, command)]
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            found += walk(sub, (*path, name))
    return found


def test_every_option_of_every_command_has_a_help_text() -> None:
    missing = [f"{' '.join(path)} {param.opts[0]}"
               for path, command in walk(main) for param in command.params
               if isinstance(param, click.Option) and not (param.help or "").strip()]
    assert missing == [], "options without help: " + ", ".join(missing)


def listed_summaries(args: list[str]) -> dict[str, str]:
    """The command list of `desk ARGS --help` as an 80-column terminal shows it."""
    result = CliRunner().invoke(main, [*args, "--help"], terminal_width=80,
                                env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    listing = result.output.split("Commands:\n", 1)[1]
    summaries: dict[str, str] = {}
    name = ""
    for line in listing.splitlines():
        if match := re.match(r"  (\S+)\s+(.*)$", line):
            name, summaries[match[1]] = match[1], match[2]
        elif line.strip() and name:  # a summary wrapped onto the next line
            summaries[name] += " " + line.strip()
    return summaries


def test_no_command_summary_is_cut_short() -> None:
    # click cuts a docstring's first line at its first ". " ("Log time on a ticket, e.g.")
    # and shortens what does not fit with "...": either reads as a broken sentence.
    cut: list[str] = []
    for path, command in walk(main):
        if not isinstance(command, click.Group):
            continue
        for name, summary in listed_summaries(list(path[1:])).items():
            if summary.endswith(("...", "e.g.", "i.e.")) or not summary:
                cut.append(f"{' '.join((*path, name))}: {summary!r}")
    assert cut == [], "summaries cut short:\n" + "\n".join(cut)


def test_version_is_the_installed_package_version() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"desk {importlib.metadata.version('desk')}\n"


def test_client_import_help_names_every_column() -> None:
    from desk.store.spreadsheets import CLIENT_COLUMNS, STAFF_COLUMNS

    for group, columns in (("client", CLIENT_COLUMNS), ("staff", STAFF_COLUMNS)):
        text = CliRunner().invoke(main, [group, "import", "--help"]).output
        assert all(re.search(rf"\b{column}\b", text) for column in columns), text
        assert "--dry-run" in text and "--partial" in text
