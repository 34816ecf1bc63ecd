"""Reports and time: `report`, `digest`, `feedback`, `time`, `decisions`, `sla`."""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import Any

import click
from sqlalchemy import select

from desk.cli.common import JSON_HELP, Ctx, emit_json, fail, pass_ctx
from desk.store.models import Client, Staff, Ticket
from desk.store.tickets import get_ticket
from desk.words import plural


@click.command("report")
@click.argument("client_name", metavar="CLIENT")
@click.option("--period", type=click.Choice(["week", "fortnight"]), default="week",
              show_default=True, help="How far back the report looks from now.")
@click.option("--format", "fmt", type=click.Choice(["text", "html", "json"]), default="text",
              show_default=True, help="Plain text, the HTML mail, or JSON for scripts.")
@click.option("--send", is_flag=True, help="Queue it to the client's contacts now.")
@pass_ctx
def report_cmd(c: Ctx, client_name: str, period: str, fmt: str, send: bool) -> None:
    """A client's report for the period that ends now."""
    from desk.outbound.render import render
    from desk.reports.client_report import Period, build_report
    from desk.reports.scheduler import queue_report

    now = c.now()
    span = Period(period, now - (timedelta(days=14) if period == "fortnight"
                                 else timedelta(days=7)), now)
    with c.session() as s:
        client_row = s.scalar(select(Client).where(Client.name == client_name))
        if client_row is None:
            fail(f"no client {client_name!r} (see `desk client list`)")
        data = build_report(s, c.settings, client_row, span)
        if send:
            row = queue_report(s, c.settings, client_row, span, now,
                               key=f"report:{client_row.id}:manual:{now.isoformat()}")
            if row is None:
                fail(f"{client_name} has no contacts to send the report to", code=1)
            click.echo(f"report queued to {', '.join(row.rcpt_to)} (sent on the next "
                       "delivery round)", err=True)
    if fmt == "json":
        emit_json(data)
    else:
        context = {"r": data, "desk_name": c.settings.desk.name}
        click.echo(render(f"report.{'html' if fmt == 'html' else 'txt'}.j2", context,
                          c.settings.template_override_dir), nl=False)


@click.command("digest")
@click.option("--format", "fmt", type=click.Choice(["text", "html", "json"]),
              default="text", show_default=True,
              help="Plain text or the HTML as mailed, or JSON for scripts.")
@click.option("--send", is_flag=True, help="Queue it to every account and project manager.")
@pass_ctx
def digest_cmd(c: Ctx, fmt: str, send: bool) -> None:
    """The managers' weekly digest."""
    from desk.outbound.render import render
    from desk.reports.digest import build_digest
    from desk.reports.scheduler import queue_digest

    now = c.now()
    with c.session() as s:
        data = build_digest(s, now, c.settings.desk.timezone, c.settings)
        if send:
            count = queue_digest(s, c.settings, now)
            click.echo(f"digest queued to {plural(count, 'manager')}", err=True)
    if fmt == "json":
        emit_json(data)
    else:
        click.echo(render(f"digest.{'html' if fmt == 'html' else 'txt'}.j2",
                          {"d": data, "staff_name": "team", "desk_name": c.settings.desk.name},
                          c.settings.template_override_dir), nl=False)


@click.group()
def feedback() -> None:
    """What clients said when their tickets were resolved."""


@feedback.command("list")
@click.option("--client", "client_name", metavar="CLIENT",
              help="Only this client's feedback (its name as in `desk client list`).")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@pass_ctx
def feedback_list(c: Ctx, client_name: str | None, as_json: bool) -> None:
    """List feedback, newest last, with the average rating."""
    from desk.store.models import Feedback

    with c.session() as s:
        q = select(Feedback, Ticket.subject, Client.name).join(
            Ticket, Ticket.id == Feedback.ticket_id).outerjoin(
            Client, Client.id == Feedback.client_id).order_by(Feedback.id)
        if client_name:
            q = q.where(Client.name == client_name)
        rows: list[dict[str, Any]] = [
            {"ticket": str(f.ticket_id), "subject": subj, "client": cname,
             "resolved": f.resolved, "rating": f.rating, "comment": f.comment,
             "from": f.from_addr, "at": f.created_at.isoformat()}
            for f, subj, cname in s.execute(q)]
    ratings = [r["rating"] for r in rows if r["rating"] is not None]
    average = round(sum(ratings) / len(ratings), 1) if ratings else None
    if as_json:
        emit_json({"average": average, "count": len(rows), "feedback": rows})
        return
    for r in rows:
        resolved = {True: "yes", False: "no", None: "-"}[r["resolved"]]
        click.echo(f"{r['at'][:10]} #{r['ticket']:<5} {(r['client'] or '-')[:20]:<20} "
                   f"resolved {resolved:<3} rating {r['rating'] or '-':<3} "
                   f"{r['comment'][:50]}")
    click.echo(f"average rating: {average if average is not None else '-'} "
               f"({plural(len(ratings), 'rating')})")


@click.group("time")
def time_group() -> None:
    """Time spent on tickets."""


@time_group.command("add", short_help="Log time spent on a ticket.")
@click.argument("ref")
@click.argument("duration")
@click.option("--staff", "staff_email", required=True, metavar="EMAIL",
              help="Who spent the time (a staff member's address).")
@click.option("--note", default="", help="What the time was spent on.")
@pass_ctx
def time_add(c: Ctx, ref: str, duration: str, staff_email: str, note: str) -> None:
    """Log time spent on ticket REF: DURATION such as 1h30m, 45m or 2h.

    For example: desk time add 12 1h30m --staff sam@agency.example"""
    from desk.work.actions import Actor, Refused, log_time
    from desk.work.allowance import check_allowance

    now = c.now()
    with c.session() as s:
        t = get_ticket(s, ref)
        if t is None:
            fail(f"no ticket {ref}")
        person = s.scalar(select(Staff).where(Staff.email == staff_email.strip().lower()))
        if person is None:
            fail(f"{staff_email} is not on the staff list", code=2)
        try:
            click.echo(log_time(s, t, Actor(person, person.email),
                                f"{duration} {note}".strip(), now))
        except Refused as exc:
            fail(str(exc), code=2)
        s.flush()
        check_allowance(s, c.settings, t, now)


@click.command("decisions", short_help="A client's decision log: estimates, approvals, owners.")
@click.argument("client_name", metavar="CLIENT")
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), help="From this date on.")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "csv"]), default="text",
              show_default=True, help="Text to read, JSON for scripts, CSV for a spreadsheet.")
@pass_ctx
def decisions_cmd(c: Ctx, client_name: str, since: Any, fmt: str) -> None:
    """A client's decision log: estimates, approvals, declines, scope, priority, owners."""
    from desk.reports.decisions import as_csv, decisions

    with c.session() as s:
        client_row = s.scalar(select(Client).where(Client.name == client_name))
        if client_row is None:
            fail(f"no client {client_name!r} (see `desk client list`)")
        rows = decisions(s, client_row, since.replace(tzinfo=UTC) if since else None)
    if fmt == "json":
        emit_json(rows)
    elif fmt == "csv":
        click.echo(as_csv(rows), nl=False)
    else:
        if not rows:
            click.echo("no decisions recorded")
        for r in rows:
            click.echo(f"{r['at'][:16]} #{r['ticket']:<5} {r['kind']:<19} {r['who']:<26} "
                       f"{r['detail']}")


@click.group()
def sla() -> None:
    """Where every promise stands."""


@sla.command("status")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@pass_ctx
def sla_status_cmd(c: Ctx, as_json: bool) -> None:
    """Open tickets with time left, at risk and breached, per client."""
    from desk.sla.report import sla_status

    with c.session() as s:
        data = sla_status(s, c.settings, c.now())
    if as_json:
        emit_json(data)
        return
    marks = {"breached": "BREACHED", "at_risk": "at risk", "ok": "ok"}
    for r in data["tickets"]:
        left = (f"{r['minutes_left']} min left" if r["minutes_left"] is not None
                and r["minutes_left"] >= 0 else
                f"{-r['minutes_left']} min late" if r["minutes_left"] is not None else "")
        click.echo(f"#{r['ref']:<5} {marks.get(r['state'], r['state']):<9} {r['priority']} "
                   f"{(r['client'] or '-')[:18]:<18} {(r['deadline'] or '').replace('_', ' '):<15}"
                   f" {left:<16} {r['subject'][:40]}")
    click.echo("\nPer client:")
    for name, s in sorted(data["clients"].items()):
        click.echo(f"  {name:<28} open {s['open']}, ok {s['ok']}, at risk {s['at_risk']}, "
                   f"breached {s['breached']}")


@sla.command("explain", short_help="The arithmetic behind a ticket's deadlines.")
@click.argument("ref")
@pass_ctx
def sla_explain_cmd(c: Ctx, ref: str) -> None:
    """The calendar, pauses and arithmetic behind each deadline of a ticket."""
    from desk.sla.report import sla_explain

    with c.session() as s:
        t = get_ticket(s, ref)
        if t is None:
            fail(f"no ticket {ref}")
        for line in sla_explain(t, c.settings, c.now()):
            click.echo(line)


COMMANDS: tuple[click.Command, ...] = (report_cmd, digest_cmd, feedback, time_group,
                                       decisions_cmd, sla)
