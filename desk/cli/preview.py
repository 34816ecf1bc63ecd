"""Dry runs that change nothing: `route` and `templates` (preview, list)."""

from __future__ import annotations

import click

from desk.cli.common import Ctx, emit_json, fail, pass_ctx
from desk.store.db import session_factory


@click.command()
@click.option("--from", "sender", required=True, metavar="EMAIL")
@click.option("--subject", required=True)
@click.option("--body", default="")
@click.option("--cc", "cc", multiple=True, metavar="EMAIL")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def route(c: Ctx, sender: str, subject: str, body: str, cc: tuple[str, ...],
          as_json: bool) -> None:
    """Explain where a message would go, without creating anything."""
    from desk.views.explain import explain_route

    data = explain_route(session_factory(c.engine), c.settings, sender, subject, body, list(cc))
    if as_json:
        emit_json(data)
        return
    click.echo(f"A message from {sender} with subject {subject!r}:")
    click.echo(f"  client {data['client'] or '(unknown sender)'}, tier {data['tier'] or '-'}, "
               f"priority {data['priority']}, SLA policy {data['sla_policy'] or '-'}")
    where = "opens a new ticket" if data["new_ticket"] else f"joins ticket #{data['ticket']}"
    click.echo(f"  {where}, owner {data['owner'] or '-'}"
               + (f", workers {', '.join(data['workers'])}" if data["workers"] else "")
               + f", status {data['status']}")
    click.echo(f"  acknowledgement: {'yes' if data['acknowledged'] else 'no'}")
    click.echo("Why:")
    for e in data["events"]:
        click.echo(f"  {e['kind']:<16} {e['detail']}")


@click.group()
def templates() -> None:
    """Mail templates (override any in config/templates/)."""


@templates.command("preview")
@click.argument("name")
@click.option("--ticket", "ref", metavar="REF", help="Use this ticket's real data.")
@click.option("--html", is_flag=True, help="Render the HTML version.")
@pass_ctx
def templates_preview(c: Ctx, name: str, ref: str | None, html: bool) -> None:
    """Render a template, e.g. `desk templates preview ack_support_sla`."""
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
