"""Retainer and SLA hours: the account manager hears at 80% and at 100% of a client's
monthly allowance, at most once each per month, before budget burn becomes a surprise.
The alert gives the real share ("83% used: 2.5 h of 3 h"), not only the threshold."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from desk.config.settings import Settings
from desk.names import staff_greeting
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
    # The real share, rounded down: "83% used" never claims a threshold not yet reached.
    used_pct = usage.used_minutes * 100 // usage.allowance_minutes
    month = month_start(client, now, settings.desk.timezone).strftime("%Y-%m")
    crossed = [t for t in sorted(settings.reports.allowance_alerts) if used_pct >= round(t * 100)]
    if not crossed:
        return
    am = session.scalar(select(Staff).where(Staff.email == client.account_manager)) \
        if client.account_manager else None
    if am is None:
        return
    # Only the highest threshold crossed: one jump from 50% to 120% is one mail about
    # 120%, not an 80% and a 100% alert that both say 120%.
    pct = round(crossed[-1] * 100)
    key = f"allowance:{client.id}:{month}:{pct}"
    row = queue_mail(session, settings, OutgoingMail(
        kind="allowance_alert", event_key=key, to=[staff_address(am)], staff_id=am.id,
        subject=f"{client.name}: {used_pct}% of this month's hours used",
        template="allowance_alert", internal=True,
        context={"staff_name": staff_greeting(am.name, am.email), "client": client.name,
                 "pct": pct, "used_pct": used_pct, "used": usage.used_hours,
                 "allowance": usage.allowance_hours, "left": usage.left_hours,
                 "month": month, "ref": ticket.ref, "desk_name": settings.desk.name},
    ), ticket=ticket, now=now)
    if row is not None:
        add_event(session, ticket, "allowance_alert", f"{client.name} has used {used_pct}% "
                  f"({usage.used_hours:g} h of {usage.allowance_hours:g} h this month, alert at "
                  f"{pct}%); told {am.email}", at=now)
