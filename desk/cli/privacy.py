"""Personal data (UK GDPR / GDPR): `privacy export` and `privacy erase`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from desk.cli.common import Ctx, fail, pass_ctx
from desk.store.db import session_factory
from desk.words import plural


def _address(c: Ctx, email: str) -> str:
    address = email.strip().lower()
    local, _, domain = address.rpartition("@")
    if not local or not domain:
        fail(f"{email!r} is not an email address", code=2)
    if address == c.settings.desk.address:
        fail(f"{address} is the desk's own address, not a person's", code=2)
    return address


@click.group(short_help="Export or erase everything stored about a person.")
def privacy() -> None:
    """A person's data: export everything stored about them, or erase it."""


@privacy.command("export", short_help="Everything stored about a person, as JSON.")
@click.argument("email")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Write the JSON there (readable by its owner only) instead of stdout.")
@pass_ctx
def privacy_export(c: Ctx, email: str, out: Path | None) -> None:
    """Everything stored about EMAIL as JSON: messages with bodies, tickets, attachments'
    metadata, feedback, estimate decisions, contact and staff records, events."""
    from desk.views.privacy import export_person

    address = _address(c, email)
    with c.session() as s:
        data = export_person(s, address, c.now())
    text = json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n"
    found = any(data[k] for k in ("contacts", "staff", "tickets", "messages", "events",
                                  "feedback", "quarantined_mail", "mail_sent_to_them"))
    if out is None:
        click.echo(text, nl=False)
    else:
        # Personal data: not for other users of the machine to read.
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # also when the file was already there
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        click.echo(f"wrote {out}: {plural(len(data['tickets']), 'ticket')}, "
                   f"{plural(len(data['messages']), 'message')}, "
                   f"{plural(len(data['events']), 'event')} about {address}", err=True)
    if not found:
        click.echo(f"nothing stored about {address}", err=True)


@privacy.command("erase", short_help="Erase a person's data (they become a pseudonym).")
@click.argument("email")
@click.option("--dry-run", is_flag=True, help="Show what would change; change nothing.")
@pass_ctx
def privacy_erase(c: Ctx, email: str, dry_run: bool) -> None:
    """Erase EMAIL's personal data: their mail's bodies, attachments and raw bytes go, and
    their address and name become a pseudonym everywhere. Tickets stay countable."""
    from desk.work.privacy import erase, is_pseudonym, settle_sqlite

    address = _address(c, email)
    if is_pseudonym(address):
        click.echo(f"{address} is already a pseudonym: nothing to erase")
        return
    with session_factory(c.engine)() as session:
        session.begin()
        try:
            done = erase(session, address, c.settings.desk.secret, c.now())
        except BaseException:
            session.rollback()
            raise
        if dry_run or not done.found:
            session.rollback()
        else:
            session.commit()
    if not dry_run and done.found:
        settle_sqlite(c.engine)
    if not done.found:
        click.echo(f"nothing stored about {address}")
        return
    verb = "would be erased" if dry_run else "erased"
    click.echo(f"{address} {verb} as {done.pseudonym}:")
    width = max(len(kind) for kind in done.counts)
    for kind, n in done.counts.items():
        click.echo(f"  {kind:<{width}}  {n}")
    for note in done.notes:
        click.echo(f"note: {note}")
    if address == c.settings.desk.triage:
        click.echo("note: the configuration still names them ([desk] triage)")
    if dry_run:
        click.echo("dry run: nothing was changed")


COMMANDS: tuple[click.Command, ...] = (privacy,)
