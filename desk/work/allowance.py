"""Retainer and SLA hours: the account manager hears at 80% and at 100% of a client's
monthly allowance, once each per month, before budget burn becomes a surprise."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from desk.config.settings import Settings
from desk.outbound.mail import OutgoingMail
from desk.outbound.messages import queue_mail, staff_address
from desk.reports.hours import month_start, month_usage
from desk.store.models import Staff, Ticket
from desk.store.tickets import add_event


def check_allowance(session: Session, settings: Settings, ticket: Ticket, now: datetime) -> None:
    client = ticket.client
    if client is None or not client.hours_per_month:
        return
    usage = month_usage(session, client, now, zone=settings.desk.timezone)
    assert usage.allowance_minutes
    share = usage.used_minutes / usage.allowance_minutes
    month = month_start(client, now, settings.desk.timezone).strftime("%Y-%m")
    am = session.scalar(select(Staff).where(Staff.email == client.account_manager)) \
        if client.account_manager else None
    for threshold in sorted(settings.reports.allowance_alerts):
        if share < threshold:
            continue
        pct = round(threshold * 100)
        key = f"allowance:{client.id}:{month}:{pct}"
        if am is None:
            continue
        row = queue_mail(session, settings, OutgoingMail(
            kind="allowance_alert", event_key=key, to=[staff_address(am)], staff_id=am.id,
            subject=f"{client.name}: {pct}% of this month's hours used", template="allowance_alert",
            internal=True,
            context={"staff_name": am.name.split()[0], "client": client.name, "pct": pct,
                     "used": usage.used_hours, "allowance": usage.allowance_hours,
                     "left": usage.left_hours, "month": month, "ref": ticket.ref,
                     "desk_name": settings.desk.name},
        ), ticket=ticket, now=now)
        if row is not None:
            add_event(session, ticket, "allowance_alert", f"{client.name} reached {pct}% of "
                      f"{usage.allowance_hours:g} h this month ({usage.used_hours:g} h used); "
                      f"told {am.email}", at=now)
