"""The account manager's allowance alert says how much of the month's hours is really
used ("83% used: 2.5 h of 3 h"), not only which threshold was crossed, and one jump over
two thresholds is one alert."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default

from sqlalchemy import select
from sqlalchemy.orm import Session

from desk.config.settings import Settings
from desk.store.models import Client, Event, Outbox, Ticket, TimeEntry
from desk.work.allowance import check_allowance

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def _ticket(session: Session, hours: float) -> Ticket:
    client = session.scalar(select(Client).where(Client.tier == "retainer"))
    assert client is not None
    client.hours_per_month = hours
    ticket = Ticket(subject="Monthly work", status="open", priority="P3", tier="retainer",
                    client=client, requester_email="boss@retainer.test", created_at=NOW,
                    updated_at=NOW)
    session.add(ticket)
    session.flush()
    return ticket


def _log(session: Session, ticket: Ticket, minutes: int, at: datetime) -> None:
    session.add(TimeEntry(ticket_id=ticket.id, client_id=ticket.client_id, minutes=minutes,
                          at=at))
    session.flush()


def _alerts(session: Session) -> list[tuple[str, str]]:
    session.flush()
    out = []
    for row in session.scalars(select(Outbox).where(Outbox.kind == "allowance_alert")
                               .order_by(Outbox.id)):
        body = message_from_bytes(row.raw, policy=default).get_body(("plain",))
        assert body is not None
        out.append((row.subject, " ".join(str(body.get_content()).split())))
    return out


def test_the_alert_gives_the_real_share(session: Session, settings: Settings) -> None:
    ticket = _ticket(session, 3)
    _log(session, ticket, 150, NOW)  # 2.5 h of 3 h: 83%
    check_allowance(session, settings, ticket, NOW)
    [(subject, text)] = _alerts(session)
    assert subject == "retainer client: 83% of this month's hours used"
    assert "retainer client has used 83% of this month's hours (2026-11): 2.5 h of 3 h, " \
           "0.5 h left." in text
    assert "(The 80% alert for 2026-11" in text
    event = session.scalar(select(Event).where(Event.kind == "allowance_alert"))
    assert event is not None and "has used 83% (2.5 h of 3 h this month" in event.detail


def test_a_jump_past_both_thresholds_is_one_alert(session: Session,
                                                  settings: Settings) -> None:
    ticket = _ticket(session, 10)
    _log(session, ticket, 12 * 60, NOW)  # 0% -> 120% in one entry
    check_allowance(session, settings, ticket, NOW)
    check_allowance(session, settings, ticket, NOW + timedelta(hours=1))  # nothing new
    [(subject, text)] = _alerts(session)
    assert subject == "retainer client: 120% of this month's hours used"
    assert "12 h of 10 h, 2 h over." in text and "over their allowance" in text
