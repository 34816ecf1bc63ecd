"""The ``desk`` command line: the root group ``main``; the commands live in the submodules."""

from __future__ import annotations

import click

from desk.cli import (
    checkmail,
    directory,
    oauth,
    operations,
    preview,
    privacy,
    quarantine,
    reports,
    tickets,
)
from desk.cli.common import Ctx, DeskGroup
from desk.logs import mask_uncaught


@click.group(cls=DeskGroup)
@click.version_option(package_name="desk", prog_name="desk", message="%(prog)s %(version)s",
                      help="Print desk's version and exit.")
@click.option("--config", "config", envvar="DESK_CONFIG", metavar="PATH",
              help="Configuration file (default: $DESK_CONFIG, else config/desk.toml).")
@click.option("--now", "fixed_now", metavar="ISO-TIME",
              help="Act as if it were this time (rehearsals, back-dated reports, tests).")
@click.pass_context
def main(ctx: click.Context, config: str | None, fixed_now: str | None) -> None:
    """desk: an email-driven support desk."""
    mask_uncaught()
    ctx.obj = Ctx(config, fixed_now)
    ctx.call_on_close(ctx.obj.close)


# Registered here rather than with @main.command in the submodules: they would have to
# import this package for `main`, an import cycle.
for _module in (operations, directory, tickets, preview, reports, quarantine, privacy,
                checkmail, oauth):
    for _command in _module.COMMANDS:
        main.add_command(_command)

__all__ = ["main"]
