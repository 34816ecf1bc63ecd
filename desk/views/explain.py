"""`desk route`: run the real pipeline (the same list of stages, work/pipeline.py) on a
made-up message and roll everything back, so the explanation is exactly what would
happen, and nothing is created.

The pipeline writes its events as things done ("acknowledgement queued to ..."); a dry
run reports them as things that would be done, so nobody reads it as having happened.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import make_msgid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from desk.config.settings import Settings
from desk.inbox.message import Address, ParsedMessage
from desk.store.models import Event, Outbox, Ticket
from desk.work.pipeline import process

# What each kind of mail is called in a sentence ("would queue an acknowledgement").
_MAIL_NAMES = {
    "ack": "an acknowledgement", "notice_new": "a new-ticket notice",
    "notice_reply": "a notice of the client's reply", "relay": "the reply relayed",
    "refusal": "a \"Not done\" reply", "impersonation": "a \"Someone wrote as you\" warning",
    "approval_request": "an approval request", "rejection": "a rejection",
}


def _mail_name(kind: str) -> str:
    if kind in _MAIL_NAMES:
        return _MAIL_NAMES[kind]
    if kind.startswith("notice_"):
        return f"a notice ({kind.removeprefix('notice_').replace('_', ' ')})"
    return f"a {kind.replace('_', ' ')} mail"


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _would_detail(kind: str, detail: str) -> str:
    """An event's text as something that would happen, for the kinds that say what the
    desk did; the others describe a reason and read the same either way."""
    if kind == "acknowledged":
        return "would queue an acknowledgement" + detail.removeprefix("acknowledgement queued")
    if kind == "participant":
        return detail.replace(" joins the conversation", " would join the conversation")
    if kind == "reopened":
        return f"would reopen: {detail}"
    if kind == "status":
        return f"would change the status: {detail}"
    return detail


def _sentences(data: dict[str, Any], mail: list[dict[str, Any]],
               suppressed: str | None) -> list[str]:
    """What the desk would do with such a message, one sentence each, in the order it
    would do it."""
    who = (f"belong to client {data['client']} (tier {data['tier']})" if data["client"]
           else "come from an unknown sender (no contact, no client domain)")
    policy = f"SLA policy {data['sla_policy']}" if data["sla_policy"] else "no SLA policy"
    owner = f"owned by {data['owner']}" if data["owner"] else "with no owner"
    workers = f", worked by {_and(data['workers'])}" if data["workers"] else ""
    where = ("open a new ticket" if data["new_ticket"]
             else f"join ticket #{data['ticket']}")
    said = [f"{who}, priority {data['priority']}, {policy}",
            f"{where}, {owner}{workers}, status {data['status']}"]
    kinds: dict[str, list[str]] = {}
    for row in mail:
        kinds.setdefault(row["kind"], []).extend(row["to"])
    said += [f"queue {_mail_name(kind)} to {_and(list(dict.fromkeys(to)))}"
             for kind, to in kinds.items()]
    if "ack" not in kinds:
        said.append(f"send no acknowledgement: {suppressed}" if suppressed else
                    "send no acknowledgement" + ("" if data["new_ticket"] else
                                                  " (only a new ticket is acknowledged)"))
    return said


def explain_route(
    factory: sessionmaker[Session], settings: Settings, sender: str, subject: str, body: str,
    cc: list[str], now: datetime | None = None,
) -> dict[str, Any]:
    msg = ParsedMessage(
        message_id=make_msgid(domain="desk-route.invalid")[1:-1],
        sender=Address("", sender.strip().lower()),
        to=[Address("", settings.desk.address)],
        cc=[Address("", a.strip().lower()) for a in cc],
        subject=subject,
        text_body=body,
    )
    now = now or datetime.now(UTC)
    with factory() as session:
        session.begin()
        try:
            outcome = process(session, msg, settings, now=now, source="route")
            ticket = session.get(Ticket, outcome.ticket_id)
            assert ticket is not None
            events = session.scalars(
                select(Event).where(Event.ticket_id == ticket.id, Event.at == now)
                .order_by(Event.id)).all()
            mail = [{"kind": o.kind, "to": list(o.rcpt_to), "held": o.status == "held"}
                    for o in session.scalars(select(Outbox).where(
                        Outbox.ticket_id == ticket.id, Outbox.created_at == now)
                        .order_by(Outbox.id))]
            suppressed = next((e.detail for e in events if e.kind == "ack_suppressed"), None)
            data: dict[str, Any] = {
                "new_ticket": outcome.new_ticket,
                "ticket": None if outcome.new_ticket else ticket.ref,
                "client": ticket.client.name if ticket.client else None,
                "tier": ticket.tier,
                "priority": ticket.priority,
                # A ticket it joins keeps the policy it was opened with.
                "sla_policy": next(((e.data or {}).get("sla_policy") for e in events
                                    if e.kind == "classified"), None) if outcome.new_ticket
                else ticket.sla_policy or ((ticket.client.settings or {}).get("sla_policy")
                                           if ticket.client else None) or ticket.tier,
                "owner": ticket.owner.email if ticket.owner else None,
                "workers": [w.email for w in ticket.workers],
                "status": ticket.status,
                # Kept under its old name for scripts: true means it *would* be sent.
                "acknowledged": bool(outcome.new_ticket and any(
                    m["kind"] == "ack" for m in mail)),
                "mail": mail,
                "events": [{"kind": e.kind, "detail": _would_detail(e.kind, e.detail)}
                           for e in events],
                "stages": outcome.stages,
            }
            data["would"] = _sentences(data, mail, suppressed)
            return data
        finally:
            session.rollback()
