"""`desk privacy export`: everything the desk stores about one person, as one JSON value
(a subject access request under UK GDPR / GDPR, article 15)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Text, cast, func, or_, select
from sqlalchemy.orm import Session, selectinload

from desk.store.models import (
    Client,
    Contact,
    Estimate,
    Event,
    Feedback,
    Message,
    Outbox,
    Participant,
    Quarantine,
    Staff,
    Ticket,
    TimeEntry,
)
from desk.work.privacy import Person, message_relations, names_of


def _iso(value: datetime | date | None) -> str | None:
    return value.isoformat() if value else None


def _tickets(session: Session, person: Person) -> list[dict[str, Any]]:
    requested = set(session.scalars(select(Ticket.id).where(
        func.lower(Ticket.requester_email) == person.address)))
    taking_part = {tid: kind for tid, kind in session.execute(
        select(Participant.ticket_id, Participant.kind).where(
            func.lower(Participant.email) == person.address))}
    ids = sorted(requested | set(taking_part))
    rows = session.scalars(select(Ticket).where(Ticket.id.in_(ids)).order_by(Ticket.id)
                           .options(selectinload(Ticket.client), selectinload(Ticket.owner)))
    return [{
        "ref": t.ref, "role": "requester" if t.id in requested else taking_part[t.id],
        "subject": t.subject, "status": t.status, "priority": t.priority, "tier": t.tier,
        "client": t.client.name if t.client else None, "requester": t.requester_email,
        "requester_name": t.requester_name, "owner": t.owner.email if t.owner else None,
        "created_at": _iso(t.created_at), "resolved_at": _iso(t.resolved_at),
    } for t in rows]


def _messages(session: Session, person: Person) -> list[dict[str, Any]]:
    relations = message_relations(session, person)
    rows = session.scalars(select(Message).where(Message.id.in_(list(relations)))
                           .order_by(Message.id).options(selectinload(Message.attachments)))
    return [{
        "ticket": str(m.ticket_id), "relation": relations[m.id], "direction": m.direction,
        "from": m.from_addr, "from_name": m.from_name, "to": m.to_addrs, "cc": m.cc_addrs,
        "subject": m.subject, "date": _iso(m.date or m.created_at), "message_id": m.message_id,
        "internal": m.internal, "body_text": m.body_text, "body_html": m.body_html,
        "raw_mail_kept": m.raw_id is not None,
        "attachments": [{"filename": a.filename, "content_type": a.content_type,
                         "size": a.size, "content_kept": a.content is not None, "note": a.note}
                        for a in m.attachments],
    } for m in rows]


def _events(session: Session, person: Person) -> list[dict[str, Any]]:
    rows = session.scalars(select(Event).where(or_(
        person.like_address(Event.actor), person.like_address(Event.detail),
        person.like_address(cast(Event.data, Text)))).order_by(Event.id))
    return [{"ticket": str(e.ticket_id), "at": _iso(e.at), "kind": e.kind, "actor": e.actor,
             "detail": e.detail, "data": e.data} for e in rows
            if person.mentioned_in(e.actor) or person.mentioned_in(e.detail)
            or person.mentioned_in(str(e.data or ""))]


def _directory(session: Session, person: Person) -> dict[str, Any]:
    contacts = session.scalars(select(Contact).where(func.lower(Contact.email) == person.address)
                               .options(selectinload(Contact.client)))
    staff = session.scalars(select(Staff).where(func.lower(Staff.email) == person.address))
    managed = session.scalars(select(Client).where(or_(
        func.lower(Client.account_manager) == person.address,
        func.lower(Client.project_manager) == person.address,
        func.lower(Client.backup) == person.address)).order_by(Client.name))
    return {
        "contacts": [{"email": c.email, "name": c.name, "client": c.client.name,
                      "bouncing": c.bouncing} for c in contacts],
        "staff": [{"email": s.email, "name": s.name, "role": s.role, "active": s.active,
                   "capacity": s.capacity, "away_from": _iso(s.away_from),
                   "away_until": _iso(s.away_until), "created_at": _iso(s.created_at)}
                  for s in staff],
        "clients_managed": [{"client": c.name, "as": [
            role for role, who in (("account_manager", c.account_manager),
                                   ("project_manager", c.project_manager),
                                   ("backup", c.backup))
            if (who or "").lower() == person.address]} for c in managed],
    }


def export_person(session: Session, address: str, now: datetime) -> dict[str, Any]:
    person = Person.of(address, names_of(session, address))
    feedback = session.scalars(select(Feedback).where(
        func.lower(Feedback.from_addr) == person.address).order_by(Feedback.id))
    decisions = session.scalars(select(Estimate).where(
        func.lower(Estimate.decided_by) == person.address).order_by(Estimate.id))
    outbox = session.scalars(select(Outbox).where(person.like_address(cast(Outbox.rcpt_to, Text)))
                             .order_by(Outbox.id))
    quarantined = session.scalars(select(Quarantine).where(
        person.like_address(Quarantine.sender)).order_by(Quarantine.id))
    staff_ids = select(Staff.id).where(func.lower(Staff.email) == person.address)
    time = session.scalars(select(TimeEntry).where(TimeEntry.staff_id.in_(staff_ids))
                           .order_by(TimeEntry.id))
    return {
        "email": person.address,
        "exported_at": now.isoformat(),
        "names": list(person.names),
        **_directory(session, person),
        "tickets": _tickets(session, person),
        "messages": _messages(session, person),
        "feedback": [{"ticket": str(f.ticket_id), "resolved": f.resolved, "rating": f.rating,
                      "comment": f.comment, "at": _iso(f.created_at)} for f in feedback],
        "estimate_decisions": [{"ticket": str(e.ticket_id), "status": e.status,
                                "minutes": e.minutes, "cost": e.cost,
                                "decided_at": _iso(e.decided_at), "words": e.decision_words,
                                "message_id": e.decision_message_id} for e in decisions],
        "events": _events(session, person),
        "mail_sent_to_them": [{"ticket": str(o.ticket_id) if o.ticket_id else None,
                               "kind": o.kind, "subject": o.subject, "status": o.status,
                               "created_at": _iso(o.created_at), "sent_at": _iso(o.sent_at),
                               "message_id": o.message_id} for o in outbox
                              if any(person.mentioned_in(r) for r in o.rcpt_to)],
        "quarantined_mail": [{"id": q.id, "subject": q.subject, "sender": q.sender,
                              "reason": q.reason, "status": q.status,
                              "at": _iso(q.created_at)} for q in quarantined
                             if person.mentioned_in(q.sender)],
        "time_entries": [{"ticket": str(t.ticket_id), "minutes": t.minutes, "note": t.note,
                          "kind": t.kind, "at": _iso(t.at)} for t in time],
    }
