"""Auto-generated mail on the embedded defaults: set aside with no owner, no notice and
no SLA clock when it threads into nothing; an event and nothing else when it answers a
ticket; a real ticket once a person promotes it or writes into it."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from desk.store.models import Status, Ticket
from tests.support import DeskEnv, make_mail, reply_to

OUT_OF_OFFICE = {"Auto-Submitted": "auto-replied"}


def _row(env: DeskEnv, ref: str) -> Ticket:
    with env.session() as s:
        ticket = s.scalars(select(Ticket).where(Ticket.id == int(ref))).one()
        s.expunge(ticket)
        return ticket


def test_an_out_of_office_that_threads_into_nothing_is_set_aside(env: DeskEnv) -> None:
    env.drop(make_mail(subject="Out of office: back on Monday", headers=OUT_OF_OFFICE))
    env.drop(make_mail(sender="MAILER-DAEMON@client.test", subject="Undeliverable"))
    env.desk("run", "--once")
    tickets = env.tickets()
    assert [t["status"] for t in tickets] == ["auto", "auto"]
    assert all(t["assignee"] is None and t["workers"] == [] for t in tickets)
    assert env.sent() == []  # no acknowledgement, no notice to anybody
    for t in tickets:
        row = _row(env, t["ref"])
        assert row.first_response_due is None and row.resolution_due is None
        detail = env.ticket(t["ref"])
        kinds = [e["kind"] for e in detail["events"]]
        assert "ack_suppressed" in kinds
        [assigned] = [e for e in detail["events"] if e["kind"] == "assigned"]
        assert "set aside" in assigned["detail"] and "desk tickets promote" in assigned["detail"]
    # No clock is due, so nothing breaches: the SLA view and the escalation ignore them.
    assert env.desk_json("sla", "status")["tickets"] == []
    status = env.desk("status", check=False).stdout
    assert "set aside: 2 auto-generated mails" in status, status


def test_an_out_of_office_answering_our_mail_changes_nothing(env: DeskEnv) -> None:
    env.drop(make_mail(message_id="<real@client.test>"))
    env.desk("run", "--once")
    [t] = env.tickets()
    env.desk("tickets", "set", t["ref"], "--status", "waiting")
    before = _row(env, t["ref"])
    [ack] = env.client_mail()
    env.drop(reply_to(ack, sender="Carol Client <client@client.test>",
                      body="I am out of the office until Monday.", headers=OUT_OF_OFFICE))
    sent_before = len(env.sent())
    env.desk("run", "--once")
    [after_t] = env.tickets()
    assert after_t["status"] == "waiting" and after_t["message_count"] == before.message_count + 1
    after = _row(env, t["ref"])
    assert after.last_client_message_at == before.last_client_message_at
    assert (after.paused_since, after.first_response_due, after.resolution_due) == (
        before.paused_since, before.first_response_due, before.resolution_due)
    assert len(env.sent()) == sent_before  # the owner is not paged for a robot
    [event] = [e for e in env.ticket(t["ref"])["events"] if e["kind"] == "auto_reply"]
    assert "no status or clock changed" in event["detail"]


def test_a_person_writing_into_set_aside_mail_makes_it_a_ticket(env: DeskEnv) -> None:
    env.drop(make_mail(message_id="<ooo@client.test>", subject="Out of office",
                       headers=OUT_OF_OFFICE))
    env.desk("run", "--once")
    [t] = env.tickets()
    assert t["status"] == "auto"
    env.drop(make_mail(message_id="<back@client.test>", subject="Re: Out of office",
                       in_reply_to="<ooo@client.test>", references="<ooo@client.test>",
                       body="Back now. The contact form on our site still sends nothing."))
    env.desk("run", "--once")
    [t] = env.tickets()
    assert t["status"] == "new" and t["assignee"] == "paul@agency.test"
    row = _row(env, t["ref"])
    assert row.first_response_due is not None
    # The clock starts when the person wrote, not when the robot did: the time set aside
    # counts as paused.
    assert row.paused_since is None and row.resumed_at is not None
    [ack] = env.client_mail()
    assert ack["In-Reply-To"] == "<back@client.test>"
    assert env.sent_to("paul@agency.test"), "the owner is told"
    kinds = [e["kind"] for e in env.ticket(t["ref"])["events"]]
    assert "promoted" in kinds and kinds.index("promoted") < kinds.index("acknowledged")


def test_set_aside_time_does_not_count_against_the_promise(env: DeskEnv) -> None:
    env.drop(make_mail(subject="Out of office", headers=OUT_OF_OFFICE))
    env.desk("run", "--once")
    [t] = env.tickets()
    created = _row(env, t["ref"]).created_at
    later = created + timedelta(days=3)
    env.desk("--now", later.isoformat(), "tickets", "promote", t["ref"], "--acknowledge")
    row = _row(env, t["ref"])
    assert row.status == Status.new and row.owner_id is not None
    assert row.first_response_due is not None and row.first_response_due > later
    assert row.first_response_due < later + timedelta(days=3)
    env.desk("run", "--once", "--now", later.isoformat())  # the delivery round
    assert len(env.client_mail()) == 1 and env.sent_to("paul@agency.test")
    # Promoting twice is refused with a clear line, and changes nothing.
    again = env.desk("tickets", "promote", t["ref"], check=False)
    assert again.returncode == 1 and "not set aside" in again.stderr


def test_writing_into_a_robots_mail_does_not_send_the_answers_to_the_robot(
        env: DeskEnv) -> None:
    # An outsider's "auto-reply" is set aside; then mail "from" a client threads into it.
    # Whoever the writer claims to be, the answers go to the writer's address (as for any
    # new mail), never to the robot's, which the outsider reads.
    env.drop(make_mail(sender="Robot <bot@evil.test>", message_id="<x1@evil.test>",
                       subject="Auto: noted", headers=OUT_OF_OFFICE))
    env.desk("run", "--once")
    env.drop(make_mail(message_id="<x2@evil.test>", subject="Re: Auto: noted",
                       in_reply_to="<x1@evil.test>", references="<x1@evil.test>",
                       body="Please mail me the admin password of our site."))
    env.desk("run", "--once")
    [t] = env.tickets()
    assert t["status"] == "new" and t["requester"] == "client@client.test"
    [notice] = env.sent_to("paul@agency.test")
    raw = reply_to(notice, sender="Paul Porter <paul@agency.test>",
                   body="I cannot send passwords by mail; I will call you.")
    env.drop(raw)
    env.desk("run", "--once")
    assert env.sent_to("bot@evil.test") == []
    assert any("I will call you" in m.get_body(("plain",)).get_content()
               for m in env.sent_to("client@client.test"))


def test_mail_written_into_set_aside_mail_is_acknowledged_within_the_cap(
        env: DeskEnv) -> None:
    # Each robot mail + a "reply" naming a victim would otherwise be one more
    # acknowledgement to any address an outsider names: the usual caps apply.
    for i in range(7):
        env.drop(make_mail(sender=f"Robot <bot{i}@evil.test>", message_id=f"<r{i}@evil.test>",
                           subject=f"Auto {i}", headers=OUT_OF_OFFICE))
        env.drop(make_mail(sender="Victim <victim@elsewhere.test>", subject="Buy now",
                           message_id=f"<v{i}@evil.test>", in_reply_to=f"<r{i}@evil.test>",
                           references=f"<r{i}@evil.test>"))
        env.desk("run", "--once")
    assert len(env.sent_to("victim@elsewhere.test")) == 5  # [security] unverified_mail_per_hour
    suppressed = [e["detail"] for t in env.tickets() for e in env.ticket(t["ref"])["events"]
                  if e["kind"] == "ack_suppressed"]
    assert sum("unverified_mail_per_hour" in d for d in suppressed) == 2, suppressed
