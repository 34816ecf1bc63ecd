"""Scheduled mail: each client's report once per period and the managers' digest once a
week, exactly once (keyed by period in the outbox), also across restarts; a desk that
was down at the scheduled moment catches up with the latest period only."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from desk.config.settings import Settings
from desk.inbox.message import Address
from desk.names import staff_greeting
from desk.outbound.mail import OutgoingMail
from desk.outbound.messages import queue_mail, staff_address
from desk.reports.client_report import (
    WEEKDAYS,
    Period,
    build_report,
    period_ending,
    send_moment,
)
from desk.reports.digest import build_digest
from desk.store.db import transaction
from desk.store.models import Client, Contact, Outbox, Role, Staff
from desk.words import plural

log = logging.getLogger("desk.reports")

CATCH_UP = timedelta(days=6)  # an older missed report is not worth sending late


def report_key(client: Client, period: Period) -> str:
    return f"report:{client.id}:{period.end.isoformat()}"


def queue_report(session: Session, settings: Settings, client: Client, period: Period,
                 now: datetime, *, key: str | None = None) -> Outbox | None:
    """Queue the report to the client's contacts. None if there is nobody to send it to or
    it was already sent for this period."""
    to = [Address(c.name, c.email) for c in session.scalars(
        select(Contact).where(Contact.client_id == client.id, Contact.bouncing.is_(False))
        .order_by(Contact.email))]
    if not to:
        return None
    data = build_report(session, settings, client, period)
    return queue_mail(session, settings, OutgoingMail(
        kind="report", event_key=key or report_key(client, period), to=to,
        subject=f"Your {period.kind}ly report from {settings.desk.name}: "
                f"{data['period']['from']} to {data['period']['to']}",
        # No image: the chart is table bars in the HTML, which every mail program shows
        # without loading anything, and the text part carries the same numbers.
        template="report", context={"r": data, "desk_name": settings.desk.name},
    ), ticket=None, now=now)


def _digest_moment(settings: Settings, now: datetime) -> datetime:
    zone = ZoneInfo(settings.desk.timezone)
    local = now.astimezone(zone)
    hh, mm = (int(x) for x in settings.reports.digest_time.split(":"))
    day = local.date() - timedelta(
        days=(local.weekday() - WEEKDAYS.index(settings.reports.digest_weekday)) % 7)
    moment = datetime.combine(day, time(hh, mm), tzinfo=zone)
    if moment > local:
        moment -= timedelta(days=7)
    return moment.astimezone(UTC)


def queue_digest(session: Session, settings: Settings, now: datetime,
                 key_base: str | None = None, week_of: datetime | None = None) -> int:
    data = build_digest(session, now, settings.desk.timezone, settings)
    sent = 0
    for person in session.scalars(select(Staff).where(
            Staff.active.is_(True),
            Staff.role.in_((Role.account_manager, Role.project_manager)))):
        if week_of is not None and person.created_at > week_of:
            continue  # no digest for a week before someone joined
        row = queue_mail(session, settings, OutgoingMail(
            kind="digest", event_key=f"{key_base or 'digest:' + now.isoformat()}:{person.id}",
            to=[staff_address(person)], staff_id=person.id,
            subject=f"Weekly digest: {plural(data['open_total'], 'open ticket')}, "
                    f"{plural(len(data['breaches']), 'breach')}",
            template="digest", internal=True,
            context={"d": data, "staff_name": staff_greeting(person.name, person.email),
                     "desk_name": settings.desk.name},
        ), ticket=None, now=now)
        sent += row is not None
    return sent


def _sent(session: Session, key: str) -> bool:
    return session.scalar(select(Outbox.id).where(Outbox.event_key == key)) is not None


def run_scheduled(factory: sessionmaker[Session], settings: Settings, now: datetime) -> int:
    """Queue every report and digest that is due and not yet sent; returns how many."""
    queued = 0
    with factory() as session:
        clients = list(session.scalars(select(Client).where(Client.active.is_(True))))
    for client in clients:
        moment = send_moment(client, settings, now)
        if moment is None or moment < client.created_at or now - moment > CATCH_UP:
            continue
        period = period_ending(client, settings, moment)
        with transaction(factory) as session:
            if _sent(session, report_key(client, period)):
                continue
            live = session.get(Client, client.id)
            assert live is not None
            if queue_report(session, settings, live, period, now) is not None:
                queued += 1
                log.info("report for %s (%s) queued", client.name, period.kind)
    if settings.reports.digest:
        moment = _digest_moment(settings, now)
        base = f"digest:{moment.date().isoformat()}"
        if now - moment <= CATCH_UP:
            with transaction(factory) as session:
                if not session.scalar(select(Outbox.id).where(
                        Outbox.event_key.like(f"{base}:%")).limit(1)):
                    queued += queue_digest(session, settings, now, base, week_of=moment)
    return queued
