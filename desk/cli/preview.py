"""Dry runs that change nothing: `route` and `templates` (preview, list)."""

from __future__ import annotations

import click

from desk.cli.common import JSON_HELP, Ctx, emit_json, fail, pass_ctx
from desk.store.db import session_factory


@click.command(short_help="Explain where a message would go, changing nothing.")
@click.option("--from", "sender", required=True, metavar="EMAIL",
              help="The made-up message's sender.")
@click.option("--subject", required=True, help="Its subject (a [#REF] tag is honoured).")
@click.option("--body", default="", help="Its text, for urgent phrases and keywords.")
@click.option("--cc", "cc", multiple=True, metavar="EMAIL",
              help="An address in its Cc (repeat for several).")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@pass_ctx
def route(c: Ctx, sender: str, subject: str, body: str, cc: tuple[str, ...],
          as_json: bool) -> None:
    """Explain where a message would go: the client, tier and priority, the ticket, its
    owner and workers, the mail that would be queued, and why. The real pipeline runs and
    is rolled back: nothing is created and nothing is sent."""
    from desk.views.explain import explain_route

    data = explain_route(session_factory(c.engine), c.settings, sender, subject, body,
                         list(cc), c.now())
    if as_json:
        emit_json(data)
        return
    click.echo(f"A message from {sender} with subject {subject!r} would:")
    for sentence in data["would"]:
        click.echo(f"  {sentence}")
    click.echo("Why (the events the ticket would record):")
    for e in data["events"]:
        click.echo(f"  {e['kind']:<16} {e['detail']}")
    click.echo("Dry run: nothing was created or sent.")


@click.group()
def templates() -> None:
    """Mail templates (override any in config/templates/)."""


@templates.command("preview", short_help="Render a template with sample or real data.")
@click.argument("name")
@click.option("--ticket", "ref", metavar="REF", help="Use this ticket's real data.")
@click.option("--html", is_flag=True, help="Render the HTML version.")
@pass_ctx
def templates_preview(c: Ctx, name: str, ref: str | None, html: bool) -> None:
    """Render template NAME with sample data, or with a ticket's real data.

    For example: desk templates preview ack_support_sla --ticket 12"""
    from desk.views.preview import PreviewError, preview

    try:
        click.echo(preview(session_factory(c.engine), c.settings, name, ref,
                           "html" if html else "txt"), nl=False)
    except PreviewError as exc:
        fail(str(exc))
    except Exception as exc:  # TemplateNotFound and friends: one clear line
        fail(f"cannot render {name}: {type(exc).__name__}: {exc}")


@templates.command("list")
@pass_ctx
def templates_list(c: Ctx) -> None:
    """List the templates and where each comes from."""
    from importlib.resources import files

    override = c.settings.template_override_dir
    for entry in sorted(p.name for p in files("desk").joinpath("templates").iterdir()):
        mine = override / entry
        click.echo(f"{entry:<28} {'overridden by ' + str(mine) if mine.exists() else 'built in'}")


COMMANDS: tuple[click.Command, ...] = (route, templates)
