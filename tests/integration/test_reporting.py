"""Accounts and reporting end to end: time and allowance alerts, the client report's
figures against real tickets, scheduled reports exactly once, feedback, the digest."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.support import DeskEnv, EnvFactory, make_mail, reply_to

MON_10 = "2026-11-23T10:00:00Z"


@pytest.fixture
def env(make_env: EnvFactory) -> DeskEnv:
    return make_env(extra={"reports": {"period": "week", "digest": True}})


def body(mail: EmailMessage) -> str:
    part = mail.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def new_ticket(env: DeskEnv, subject: str, when: str = MON_10,
               sender: str = "boss@retainer.test") -> tuple[str, EmailMessage]:
    env.drop(make_mail(sender=sender, subject=subject))
    env.desk("run", "--once", "--now", when)
    notice = [m for m in env.sent() if m["Subject"].startswith("New ticket")
              and subject in m["Subject"]][-1]
    ref = notice["Subject"].split("[#")[1].split("]")[0]
    return ref, notice


def staff(env: DeskEnv, notice: EmailMessage, text: str, when: str,
          who: str = "paul@agency.test") -> None:
    env.drop(reply_to(notice, sender=who, body=text))
    env.desk("run", "--once", "--now", when)


def test_allowance_alerts_at_80_and_100_percent_once_each(env: DeskEnv) -> None:
    ref, notice = new_ticket(env, "Monthly work")  # Retainer Co: 10 h a month
    staff(env, notice, "#time 7h", "2026-11-23T11:00:00Z")

    def alerts() -> list[str]:
        return [m["Subject"] for m in env.sent_to("alice@agency.test")
                if "hours used" in m["Subject"]]

    assert alerts() == []
    staff(env, notice, "#time 1h", "2026-11-23T12:00:00Z")  # 80%
    staff(env, notice, "#time 1h", "2026-11-23T13:00:00Z")  # 90%: nothing new
    env.desk("--now", "2026-11-23T13:30:00Z", "time", "add", ref, "1h",  # 100%, by the CLI
             "--staff", "sam@agency.test")
    env.desk("run", "--once", "--now", "2026-11-23T14:00:00Z")
    staff(env, notice, "#time 2h", "2026-11-23T15:00:00Z")  # 120%: nothing new
    assert alerts() == ["Retainer Co: 80% of this month's hours used",
                        "Retainer Co: 100% of this month's hours used"]
    # Owner notices show the numbers.
    _, later = new_ticket(env, "Another thing", "2026-11-24T10:00:00Z")
    assert "12.0 h of 10.0 h used this month, -2.0 h left" in body(later)


def test_report_figures_match_the_tickets(env: DeskEnv) -> None:
    done_ref, done = new_ticket(env, "Fix the form")
    staff(env, done, "#time 2h\n#status resolved\n\nFixed.", "2026-11-23T11:00:00Z")
    wait_ref, wait = new_ticket(env, "New photos", "2026-11-24T10:00:00Z")
    staff(env, wait, "#time 30m\n#status waiting\n\nCould you send the photos?",
          "2026-11-24T11:00:00Z")
    eta_ref, eta = new_ticket(env, "Newsletter", "2026-11-25T10:00:00Z")
    staff(env, eta, "#eta 2026-12-02\n\nWe'll do it next week.", "2026-11-25T11:00:00Z")
    staff(env, eta, "#estimate 3h £270 Build the newsletter template.", "2026-11-25T11:30:00Z")
    [est] = [m for m in env.sent_to("boss@retainer.test") if "Estimate" in m["Subject"]]
    env.drop(reply_to(est, sender="boss@retainer.test", body="Approved"))
    env.desk("run", "--once", "--now", "2026-11-25T12:00:00Z")

    import json

    at = ("--now", "2026-11-27T16:00:00Z")
    data = json.loads(env.desk(*at, "report", "Retainer Co", "--format", "json").stdout)
    assert [t["ref"] for t in data["work_done"]] == [done_ref]
    assert data["work_done"][0]["hours"] == 2.0
    assert data["hours"]["month_to_date"] == 2.5
    assert data["hours"]["planned_this_month"] == 3.0
    assert data["hours"]["allowance"] == 10.0 and data["hours"]["left"] == 7.5
    assert sorted(t["ref"] for t in data["open"]) == sorted([wait_ref, eta_ref])
    assert [t["ref"] for t in data["blockers"]] == [wait_ref]
    assert [(t["ref"], t["eta"]) for t in data["next"]] == [(eta_ref, "2026-12-02")]
    assert [a["by"] for a in data["approvals"]] == ["boss@retainer.test"]
    assert data["sla"]["compliance_pct"] == 100
    # The chart's numbers: eight weeks to the report's end, against the allowance's pace
    # (10 h a month spread over the year's weeks).
    assert [w["hours"] for w in data["weeks"]] == [0.0] * 7 + [2.5]
    assert data["weeks"][-1] == {"to": "2026-11-27", "label": "27 Nov", "hours": 2.5}
    assert data["hours"]["pace_per_week"] == 2.31
    text = env.desk(*at, "report", "Retainer Co").stdout
    assert "This month so far: 2.5 h of 10.0 h used, 7.5 h left" in text
    assert f"#{wait_ref} New photos: waiting for your reply" in text
    assert "Your allowance pace: 2.3 h a week (10 h a month)" in text
    assert "  Week to 27 Nov   2.5 h  above pace\n" in text
    assert "  Week to 20 Nov   0.0 h\n" in text
    assert "Promises kept: 100% of 3 tickets with agreed times" in text


def test_scheduled_report_goes_out_once_per_period_across_restarts(env: DeskEnv) -> None:
    _, notice = new_ticket(env, "Something", "2026-11-20T10:00:00Z")
    staff(env, notice, "#time 1h30m", "2026-11-23T11:00:00Z")  # inside the week to Friday
    def reports(period: str) -> list[EmailMessage]:
        return [m for m in env.sent_to("boss@retainer.test")
                if "weekly report" in m["Subject"] and period in m["Subject"]]

    this_week = "2026-11-20 to 2026-11-27"
    env.desk("run", "--once", "--now", "2026-11-27T15:59:00Z")  # Friday, a minute early
    assert reports(this_week) == []
    assert len(reports("2026-11-13 to 2026-11-20")) == 1  # last week's caught up on Monday
    for _ in range(3):  # restarts at and after the moment: one report
        env.desk("run", "--once", "--now", "2026-11-27T16:01:00Z")
    env.desk("run", "--once", "--now", "2026-11-28T09:00:00Z")
    [mail] = reports(this_week)
    # The chart is the HTML itself (table cells with bgcolor), not a picture a mail
    # program may block: the mail carries no image at all, and the numbers are text.
    assert not [p for p in mail.walk() if p.get_content_maintype() == "image"]
    html_part = mail.get_body(("html",))
    assert html_part is not None
    html = html_part.get_content()
    assert "<img" not in html and "background-image" not in html
    assert "Hours per week, last 8 weeks</strong>, against your allowance pace of 2.3 h " \
           "a week (10 h a month)" in html
    assert html.count('bgcolor="#') >= 8  # a bar for each of the eight weeks
    assert "27 Nov</td>" in html and "1.5 h</strong>" in html
    assert "This period: 1.5 h" in body(mail)
    assert "  Week to 27 Nov   1.5 h\r\n" in body(mail)
    # "1 ticket", not "1 tickets"
    assert "Promises kept: 0% of 1 ticket with agreed times (1 late)" in body(mail)
    env.desk("run", "--once", "--now", "2026-12-04T16:05:00Z")  # next Friday
    assert len(reports("2026-11-27 to 2026-12-04")) == 1
    assert len(reports("")) == 3
    # Other clients without contacts get none; digest went to managers once that Monday.
    # The managers' digest: one per Monday in range (16, 23, 30 Nov), never repeated.
    digests = [m for m in env.sent_to("alice@agency.test") if "digest" in m["Subject"]]
    assert len(digests) == 3 and "RETAINER BURN" in body(digests[0])
    assert digests[0]["Subject"] == "Weekly digest: 1 open ticket, 0 breaches"
    assert digests[0].get_body(("html",)) is not None


def test_fortnightly_clients_get_a_report_every_other_week(env: DeskEnv) -> None:
    env.desk("client", "add", "Retainer Co", "--tier", "retainer", "--report", "fortnight")
    new_ticket(env, "Something", "2026-11-20T10:00:00Z")
    for day in ("2026-11-27", "2026-12-04", "2026-12-11", "2026-12-18"):
        env.desk("run", "--once", "--now", f"{day}T16:01:00Z")
    reports = [m for m in env.sent_to("boss@retainer.test") if "report" in m["Subject"]]
    assert len(reports) == 2 and all("fortnightly" in m["Subject"] for m in reports)


@pytest.mark.parametrize("answer, resolved, rating, alert", [
    ("8", None, 8, False),
    ("8/10", None, 8, False),
    ("Yes, thanks!", True, None, False),
    ("No, still broken. 3/10", False, 3, True),
    ("yes, 9", True, 9, False),
    ("5", None, 5, True),
])
def test_feedback_is_recorded_never_reopens_and_low_scores_alert_the_am(
        env: DeskEnv, answer: str, resolved: bool | None, rating: int, alert: bool) -> None:
    ref, notice = new_ticket(env, "Broken form")
    staff(env, notice, "#status resolved\n\nAll fixed.", "2026-11-23T11:00:00Z")
    [request] = [m for m in env.sent_to("boss@retainer.test")
                 if m["Subject"].startswith("Was this resolved")]
    assert "How did we do, 1 to 10?" in body(request)
    env.drop(reply_to(request, sender="boss@retainer.test", body=answer))  # quotes the request
    env.desk("run", "--once", "--now", "2026-11-23T12:00:00Z")
    assert env.ticket(ref)["status"] == "resolved"  # never reopened
    assert len(env.tickets()) == 1
    data = env.desk_json("feedback", "list")
    [fb] = data["feedback"]
    assert (fb["resolved"], fb["rating"]) == (resolved, rating)
    alerts = [m for m in env.sent_to("alice@agency.test") if "Unhappy" in m["Subject"]]
    assert bool(alerts) is alert
    assert data["average"] == rating


def test_a_client_without_a_time_zone_counts_its_month_in_the_agencys(tmp_path: Path) -> None:
    env = DeskEnv(tmp_path / "nz", extra={"desk": {"timezone": "Pacific/Auckland"}})
    env.desk("--now", DeskEnv.SEEDED_AT, "client", "add", "Kiwi Co", "--tier", "retainer",
             "--domain", "kiwi.test", "--account-manager", "alice@agency.test",
             "--project-manager", "paul@agency.test", "--hours-per-month", "10")
    # 09:00 UTC on 30 November is 22:00 in Auckland: still November there.
    ref, _ = new_ticket(env, "Late November work", "2026-11-30T08:00:00Z", "ana@kiwi.test")
    env.desk("--now", "2026-11-30T09:00:00Z", "time", "add", ref, "9h",
             "--staff", "paul@agency.test")
    # 12:00 UTC is 01:00 on 1 December in Auckland: a new month, whatever UTC says.
    _, notice = new_ticket(env, "First of December", "2026-11-30T12:00:00Z", "ana@kiwi.test")
    assert "0.0 h of 10.0 h used this month" in body(notice)
    env.close()


def test_the_digest_shows_promises_kept_per_client_in_text_and_bars(env: DeskEnv) -> None:
    _, kept = new_ticket(env, "Fix the menu")  # Retainer Co, answered within the hour
    staff(env, kept, "#status resolved\n\nFixed: the menu is back.", "2026-11-23T10:30:00Z")
    new_ticket(env, "Site down", sender="client@client.test")  # Client Co: nobody answers
    env.desk("run", "--once", "--now", "2026-11-24T12:00:00Z")  # the first response is late
    env.desk("run", "--once", "--now", "2026-11-30T08:01:00Z")  # Monday: the digest
    digest = [m for m in env.sent_to("alice@agency.test") if "digest" in m["Subject"]][-1]
    text = body(digest)
    # The least kept first: where a manager looks.
    assert "PROMISES KEPT PER CLIENT (last 7 days, tickets with agreed times)\r\n" \
           "  Client Co                        0%  0 of 1 ticket on time, 1 late\r\n" \
           "  Retainer Co                    100%  1 of 1 ticket on time\r\n" in text
    html_part = digest.get_body(("html",))
    assert html_part is not None
    html = html_part.get_content()
    assert not [p for p in digest.walk() if p.get_content_maintype() == "image"]
    assert "<img" not in html and "background-image" not in html
    # The same numbers beside each bar, in the same order.
    assert html.index("Client Co") < html.index("Retainer Co")
    assert "0 of 1 ticket on time, " in html and "1 late</span>" in html
    assert "<strong>0%</strong>" in html and "<strong>100%</strong>" in html
    # Each client's bar: on time (dark blue) and late (red) cells, across the whole width.
    client_row = html[html.index("Client Co"):html.index("Retainer Co")]
    assert 'width="100%" height="14" bgcolor="#c0392b"' in client_row
