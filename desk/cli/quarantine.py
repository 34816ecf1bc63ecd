"""Messages that could not be processed: `quarantine` (list, show, retry, drop)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click
from sqlalchemy import select

from desk.cli.common import JSON_HELP, Ctx, emit_json, fail, pass_ctx
from desk.inbox.intake import IngestResult
from desk.logs import mask_secrets
from desk.store.db import session_factory
from desk.store.models import Quarantine, QuarantineStatus
from desk.views.tickets import quarantine_dict

if TYPE_CHECKING:
    from desk.work.ingest import Ingestor


def _masked(entry: dict[str, Any]) -> dict[str, Any]:
    # Reasons and tracebacks quote errors, and errors may quote a database URL. The raw
    # message is left as received.
    for key in ("reason", "detail"):
        if key in entry:
            entry[key] = mask_secrets(entry[key])
    return entry


@click.group()
def quarantine() -> None:
    """Messages that could not be processed, kept with the reason."""


@quarantine.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include retried and dropped entries.")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@pass_ctx
def quarantine_list(c: Ctx, show_all: bool, as_json: bool) -> None:
    """List quarantined messages."""
    with c.session() as s:
        q = select(Quarantine).order_by(Quarantine.id)
        if not show_all:
            q = q.where(Quarantine.status == QuarantineStatus.held)
        rows = [_masked(quarantine_dict(x)) for x in s.scalars(q)]
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("quarantine is empty")
    for r in rows:
        click.echo(f"{r['id']:<5} {r['created_at'][:19]} {r['status']:<8} {r['sender'][:30]:<30} "
                   f"{r['subject'][:40]:<40} {r['reason']}")


@quarantine.command("show")
@click.argument("qid", type=int)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@click.option("--raw", is_flag=True, help="Print the raw message only.")
@pass_ctx
def quarantine_show(c: Ctx, qid: int, as_json: bool, raw: bool) -> None:
    """Show one quarantined message with its reason."""
    with c.session() as s:
        row = s.get(Quarantine, qid)
        if row is None:
            fail(f"no quarantine entry {qid}")
        data = _masked(quarantine_dict(row, with_raw=True))
        raw_bytes = row.raw
    if raw:
        sys.stdout.buffer.write(raw_bytes)
        return
    if as_json:
        emit_json(data)
        return
    for key in ("id", "status", "source", "sender", "subject", "size", "created_at", "reason"):
        click.echo(f"{key:>10}: {data[key]}")
    if data["detail"]:
        click.echo("\n" + data["detail"])


@quarantine.command("retry", short_help="Run the pipeline again on a quarantined message.")
@click.argument("qid", type=int)
@pass_ctx
def quarantine_retry(c: Ctx, qid: int) -> None:
    """Run the pipeline again on a quarantined message (one left on the IMAP server as too
    big is fetched from there first, and marked processed there after)."""
    from desk.work.ingest import Ingestor
    from desk.work.pipeline import Unprocessable

    ingestor = Ingestor(session_factory(c.engine), c.settings, c.now)
    try:
        at_source = ingestor.left_at_source(qid)
        if at_source is None:
            result = ingestor.retry_quarantined(qid)
        else:
            result = _retry_from_source(c, ingestor, qid, at_source)
    except LookupError as exc:
        fail(str(exc))
    except Unprocessable as exc:
        fail(f"still cannot process {qid}: {exc}")
    except Exception as exc:
        fail(f"still cannot process {qid}: {type(exc).__name__}: {exc}")
    where = f"ticket #{result.ticket_id}" if result.ticket_id else result.outcome
    click.echo(f"quarantine {qid} processed: {where} (run `desk run --once` to send replies)")


def _retry_from_source(c: Ctx, ingestor: Ingestor, qid: int, source_key: str
                       ) -> IngestResult:
    from desk.inbox.sources.imap.refetch import NotFetched, refetch

    mailbox = c.settings.mailbox
    if mailbox is None or mailbox.source != "imap":
        fail(f"quarantine {qid} holds only the headers of a message left on an IMAP server "
             f"({source_key}), and [mailbox] is not that server now")
    try:
        with refetch(mailbox, source_key, max_bytes=ingestor.max_message_bytes) as fetched:
            result = ingestor.retry_quarantined(qid, raw=fetched.raw)
            try:
                fetched.acknowledge()
            except Exception as exc:  # recorded all the same: only the flag is missing
                click.echo(f"desk: warning: quarantine {qid} is processed but could not be "
                           f"marked processed on the server: {mask_secrets(str(exc))}",
                           err=True)
    except NotFetched as exc:
        fail(f"cannot retry quarantine {qid}: {exc}")
    return result


@quarantine.command("drop", short_help="Stop listing a quarantined message (kept for audit).")
@click.argument("qid", type=int)
@pass_ctx
def quarantine_drop(c: Ctx, qid: int) -> None:
    """Mark a quarantined message as dropped (kept for audit, no longer listed)."""
    with c.session() as s:
        row = s.get(Quarantine, qid)
        if row is None:
            fail(f"no quarantine entry {qid}")
        row.status = QuarantineStatus.dropped
        row.resolved_at = c.now()
    click.echo(f"quarantine {qid} dropped")


COMMANDS: tuple[click.Command, ...] = (quarantine,)
