"""Change requests end to end: estimate -> the client's answer by email -> a traceable
decision; strangers change nothing; an unproven answer waits for staff to #confirm it;
hosting-only work waits for the AM's costing."""

from __future__ import annotations

import json
from email.message import EmailMessage

import pytest
from sqlalchemy import select

from desk.routing.tokens import parse_token, token_address
from desk.store.models import Estimate, TimeEntry
from tests.support import SECRET, DeskEnv, EnvFactory, make_mail, reply_to, said

MON_10 = "2026-11-23T10:00:00Z"
OUR_SERVER_SAYS_AGENCY = "mx.agency.test; dkim=pass header.d=agency.test"


@pytest.fixture
def env(make_env: EnvFactory) -> DeskEnv:
    # Our receiving server's authserv-id: its Authentication-Results can vouch for a client.
    return make_env(extra={"change_requests": {"remind_client": True},
                           "security": {"trusted_authserv_id": "mx.agency.test"}})


def text(mail: EmailMessage) -> str:
    part = mail.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def start(env: DeskEnv, sender: str = "Tom Boss <boss@retainer.test>",
          subject: str = "New team page") -> EmailMessage:
    env.drop(make_mail(sender=sender, subject=subject))
    env.desk("run", "--once", "--now", MON_10)
    owner_mail = [m for m in env.sent() if m["Subject"].startswith("New ticket")]
    return owner_mail[-1]


def staff_says(env: DeskEnv, notice: EmailMessage, who: str, body: str,
               when: str = "2026-11-23T10:10:00Z") -> None:
    """``who`` replies to ``notice``. A notice's reply address proves only its own
    recipient; a colleague answering it is proven by our receiving server instead."""
    mail = reply_to(notice, sender=who, body=body)
    if who not in [a.addr_spec for a in notice["To"].addresses]:
        mail = f"Authentication-Results: {OUR_SERVER_SAYS_AGENCY}\r\n".encode() + mail
    env.drop(mail)
    env.desk("run", "--once", "--now", when)


def estimate_mail(env: DeskEnv, to: str) -> EmailMessage:
    [mail] = [m for m in env.sent_to(to) if m["Subject"].startswith("Estimate for")]
    return mail


def test_estimate_approved_in_a_reply_with_quoted_history(env: DeskEnv) -> None:
    notice = start(env)
    staff_says(env, notice, "paul@agency.test",
               "#estimate 3h £270 Add the new team page with six photos and bios.")
    [t] = env.tickets()
    assert t["status"] == "awaiting_approval"
    est = estimate_mail(env, "boss@retainer.test")
    body = text(est)
    assert "Add the new team page with six photos and bios." in body
    assert "3h" in body and "£270" in body and 'the word "approve"' in body
    assert "Your retainer this month: 0h used and 0h planned of 10h" in body
    assert "with this work it would be 3h" in said(body)
    assert est.get_body(("html",)) is not None
    assert est["Auto-Submitted"] is None  # written by a person, relayed by the desk
    # Its Reply-To is signed for this estimate and its recipient: answering it proves them.
    token = parse_token(str(est["Reply-To"]), env.address)
    assert token is not None and token.kind == "estimate"

    # The reply quotes our mail, which itself says "decline": only new text counts.
    env.drop(reply_to(est, sender="Tom Boss <boss@retainer.test>",
                      body="Yes, approved, thank you!"))
    env.desk("run", "--once", "--now", "2026-11-23T11:00:00Z")
    after = env.ticket(t["ref"])
    assert after["status"] == "open"
    with env.session() as s:
        e = s.scalar(select(Estimate))
        assert e is not None and e.status == "approved"
        assert e.decided_by == "boss@retainer.test"
        assert e.decision_words == "Yes, approved, thank you!"
        assert e.decision_message_id
        planned = s.scalars(select(TimeEntry).where(TimeEntry.kind == "planned")).all()
        assert [p.minutes for p in planned] == [180]
    [told] = [m for m in env.sent_to("paul@agency.test") if "approved" in m["Subject"]]
    assert "Yes, approved, thank you!" in text(told)
    [approved] = [e for e in after["events"] if e["kind"] == "estimate_approved"]
    assert "sent to the estimate's reply address" in approved["detail"]

    log = json.loads(env.desk("decisions", "Retainer Co", "--format", "json").stdout)
    kinds = [r["kind"] for r in log]
    assert kinds[-2:] == ["estimate", "estimate_approved"]
    assert log[-1]["who"] == "boss@retainer.test"
    assert log[-1]["words"] == "Yes, approved, thank you!" and log[-1]["minutes"] == 180
    csv_out = env.desk("decisions", "Retainer Co", "--format", "csv").stdout
    assert csv_out.splitlines()[0].startswith("at,ticket,subject,kind,who")
    assert env.desk("decisions", "Retainer Co", "--since", "2030-01-01").stdout.strip() == \
        "no decisions recorded"


def test_estimate_declined_tells_the_owner(env: DeskEnv) -> None:
    notice = start(env)
    staff_says(env, notice, "paul@agency.test", "#estimate 5h €600 Redesign the menu.")
    est = estimate_mail(env, "boss@retainer.test")
    env.drop(reply_to(est, sender="boss@retainer.test", body="No thanks, too expensive now."))
    env.desk("run", "--once", "--now", "2026-11-23T11:00:00Z")
    [t] = env.tickets()
    assert [e["kind"] for e in env.ticket(t["ref"])["events"]].count("estimate_declined") == 1
    [told] = [m for m in env.sent_to("paul@agency.test") if "declined" in m["Subject"]]
    assert "too expensive" in text(told)
    with env.session() as s:
        assert s.scalar(select(TimeEntry.id)) is None  # nothing booked


def test_a_stranger_cannot_approve(env: DeskEnv) -> None:
    notice = start(env)
    staff_says(env, notice, "paul@agency.test", "#estimate 2h £180 Plugin updates.")
    est = estimate_mail(env, "boss@retainer.test")
    # Someone outside the client got hold of the mail (forwarded) and answers it.
    env.drop(reply_to(est, sender="mallory@evil.test", body="Approved!"))
    env.desk("run", "--once", "--now", "2026-11-23T11:00:00Z")
    [t] = env.tickets()
    after = env.ticket(t["ref"])
    assert after["status"] == "awaiting_approval"
    refused = [e for e in after["events"] if e["kind"] == "decision_refused"]
    assert refused and "mallory@evil.test" in refused[0]["detail"]
    with env.session() as s:
        e = s.scalar(select(Estimate))
        assert e is not None and e.status == "pending"


def test_hosting_only_needs_the_am_costing_before_any_engineer(env: DeskEnv) -> None:
    notice = start(env, sender="Rosa <rosa@hosting.test>", subject="Add a dentist")
    [t] = env.tickets()
    assert t["status"] == "awaiting_approval" and t["assignee"] == "alice@agency.test"
    staff_says(env, notice, "sam@agency.test", "#take")
    staff_says(env, notice, "sam@agency.test", "#estimate 1h £90 Add the dentist.")
    staff_says(env, notice, "alice@agency.test", "#assign sam@agency.test")
    refusals = [text(m) for m in env.sent() if m["Subject"].startswith("Not done")]
    assert len(refusals) == 3
    assert "no engineering work before that" in said(refusals[0])
    assert "costing from the account manager" in said(refusals[1])
    assert "no engineering work before that" in said(refusals[2])
    assert env.ticket(t["ref"])["assignee"] == "alice@agency.test"

    staff_says(env, notice, "alice@agency.test", "#estimate 1h £90 Add the new dentist's "
               "photo and bio to the team page.")
    est = estimate_mail(env, "rosa@hosting.test")
    assert "Your plan covers hosting only" in text(est)
    env.drop(reply_to(est, sender="rosa@hosting.test", body="Approve"))
    env.desk("run", "--once", "--now", "2026-11-23T12:00:00Z")
    assert env.ticket(t["ref"])["status"] == "open"
    staff_says(env, notice, "alice@agency.test", "#assign sam@agency.test",
               "2026-11-23T12:10:00Z")
    assert env.ticket(t["ref"])["assignee"] == "sam@agency.test"


def test_unanswered_estimate_reminds_the_owner_and_the_client_once(env: DeskEnv) -> None:
    notice = start(env)
    staff_says(env, notice, "paul@agency.test", "#estimate 2h £180 Plugin updates.")
    env.desk("run", "--once", "--now", "2026-11-25T10:00:00Z")  # 2 working days: too early
    assert not [m for m in env.sent_to("paul@agency.test") if "not answered" in m["Subject"]]
    for _ in range(2):
        env.desk("run", "--once", "--now", "2026-11-26T10:30:00Z")  # 3 working days
    assert len([m for m in env.sent_to("paul@agency.test")
                if "Estimate not answered" in m["Subject"]]) == 1
    reminders = [m for m in env.sent_to("boss@retainer.test")
                 if m["Subject"].startswith("Reminder")]
    assert len(reminders) == 1 and "approve" in text(reminders[0])
    env.desk("run", "--once", "--now", "2026-12-10T10:30:00Z")
    assert len([m for m in env.sent_to("boss@retainer.test")
                if m["Subject"].startswith("Reminder")]) == 1  # at most once


def test_a_juniors_estimate_is_reviewed_before_the_client_sees_it(env: DeskEnv) -> None:
    notice = start(env)
    staff_says(env, notice, "jo@agency.test", "#estimate 1h £90 Update the opening hours.")
    assert not [m for m in env.sent_to("boss@retainer.test")
                if m["Subject"].startswith("Estimate for")]
    [request] = [m for m in env.sent_to("paul@agency.test") if "Approve" in m["Subject"]]
    staff_says(env, request, "paul@agency.test", "#approve", "2026-11-23T10:20:00Z")
    est = estimate_mail(env, "boss@retainer.test")
    assert "Update the opening hours." in text(est)
    assert env.tickets()[0]["status"] == "awaiting_approval"


# -- proof: a decision with money attached counts only when it is the client's ----------

def forged_decision(env: DeskEnv, ref: str, how: str, body: str = "Approved, go ahead.",
                    headers: dict[str, str] | None = None) -> None:
    """The client's From, but not an answer to the estimate mail: the ticket's tag in the
    subject to the support address, or the ticket's ordinary (unbound) reply address."""
    to = (token_address(env.address, SECRET, ref) if how == "ticket address"
          else env.address)
    env.drop(make_mail(sender="Tom Boss <boss@retainer.test>", to=to,
                       subject=f"Re: Estimate for your approval: New team page [#{ref}]",
                       body=body, headers=headers))
    env.desk("run", "--once", "--now", "2026-11-23T11:00:00Z")


def confirm_requests(env: DeskEnv) -> list[EmailMessage]:
    return [m for m in env.sent_to("paul@agency.test")
            if m["Subject"].startswith("Confirm the client's")]


def planned_minutes(env: DeskEnv) -> list[int]:
    with env.session() as s:
        return [t.minutes for t in s.scalars(select(TimeEntry)
                                             .where(TimeEntry.kind == "planned"))]


def estimate_status(env: DeskEnv) -> str:
    with env.session() as s:
        e = s.scalar(select(Estimate))
        assert e is not None
        return e.status


def unconfirmed_approval(env: DeskEnv, how: str = "subject tag") -> str:
    notice = start(env)
    staff_says(env, notice, "paul@agency.test", "#estimate 3h £270 New team page.")
    [t] = env.tickets()
    clients_before = len(env.client_mail())
    forged_decision(env, t["ref"], how)
    assert len(env.client_mail()) == clients_before  # no client hears of it
    return str(t["ref"])


@pytest.mark.parametrize("how", ["subject tag", "ticket address"])
def test_an_unproven_approval_changes_nothing_and_asks_the_owner(env: DeskEnv,
                                                                 how: str) -> None:
    ref = unconfirmed_approval(env, how)
    after = env.ticket(ref)
    assert after["status"] == "awaiting_approval"
    assert estimate_status(env) == "pending" and planned_minutes(env) == []
    assert not [e for e in after["events"] if e["kind"] == "estimate_approved"]
    [held] = [e for e in after["events"] if e["kind"] == "decision_unconfirmed"]
    assert "boss@retainer.test" in held["detail"] and "'approve'" in held["detail"]
    assert "not sent to the estimate's reply address" in held["detail"]
    [request] = confirm_requests(env)  # the owner (Paul) is asked, at his own address
    body = text(request)
    assert "boss@retainer.test" in body and "Approved, go ahead." in body
    assert "#confirm" in body and f"desk tickets confirm {ref}" in body
    token = parse_token(str(request["Reply-To"]), env.address)
    assert token is not None and token.kind == "staff"


def test_the_owner_confirms_by_reply_once(env: DeskEnv) -> None:
    ref = unconfirmed_approval(env)
    [request] = confirm_requests(env)
    staff_says(env, request, "paul@agency.test", "#confirm", "2026-11-23T12:00:00Z")
    after = env.ticket(ref)
    assert after["status"] == "open"
    assert estimate_status(env) == "approved" and planned_minutes(env) == [180]
    [confirmed] = [e for e in after["events"] if e["kind"] == "decision_confirmed"]
    assert "paul@agency.test confirmed boss@retainer.test's 'approve'" in confirmed["detail"]
    [approved] = [e for e in after["events"] if e["kind"] == "estimate_approved"]
    assert "confirmed by paul@agency.test" in approved["detail"]
    with env.session() as s:
        e = s.scalar(select(Estimate))
        assert e is not None and e.decided_by == "boss@retainer.test"
        assert e.decision_words == "Approved, go ahead."
    assert [m for m in env.sent_to("paul@agency.test") if "approved" in m["Subject"]]

    # Nothing is left to confirm: a second #confirm is refused and books nothing more.
    staff_says(env, request, "paul@agency.test", "#confirm", "2026-11-23T12:10:00Z")
    [refusal] = [m for m in env.sent_to("paul@agency.test")
                 if m["Subject"].startswith("Not done")]
    assert "nothing to confirm" in said(text(refusal))
    assert planned_minutes(env) == [180]


def test_confirm_from_the_cli(env: DeskEnv) -> None:
    ref = unconfirmed_approval(env)
    at = ("--now", "2026-11-23T12:00:00Z")
    # A senior who does not own the ticket may not vouch for the client's money decision.
    refused = env.desk(*at, "tickets", "confirm", ref, "--by", "sam@agency.test", check=False)
    assert refused.returncode == 2 and "owner and account managers" in refused.stderr
    assert estimate_status(env) == "pending"

    out = env.desk(*at, "tickets", "confirm", ref, "--by", "alice@agency.test").stdout
    assert "approved" in out
    after = env.ticket(ref)
    assert after["status"] == "open"
    assert estimate_status(env) == "approved" and planned_minutes(env) == [180]
    [confirmed] = [e for e in after["events"] if e["kind"] == "decision_confirmed"]
    assert confirmed["detail"].startswith("alice@agency.test confirmed")

    again = env.desk(*at, "tickets", "confirm", ref, check=False)
    assert again.returncode == 2 and "nothing to confirm" in again.stderr
    assert planned_minutes(env) == [180]


def test_confirm_applies_the_latest_unconfirmed_decline(env: DeskEnv) -> None:
    ref = unconfirmed_approval(env)
    forged_decision(env, ref, "subject tag", body="No thanks, too expensive.")
    assert len(confirm_requests(env)) == 2  # one for each verdict
    env.desk("--now", "2026-11-23T12:00:00Z", "tickets", "confirm", ref)
    assert estimate_status(env) == "declined" and planned_minutes(env) == []
    env.desk("run", "--once", "--now", "2026-11-23T12:01:00Z")  # delivers the owner's mail
    assert env.ticket(ref)["status"] == "open"
    assert [m for m in env.sent_to("paul@agency.test") if "declined" in m["Subject"]]


def test_our_receiving_server_can_vouch_for_the_client(env: DeskEnv) -> None:
    notice = start(env)
    staff_says(env, notice, "paul@agency.test", "#estimate 3h £270 New team page.")
    [t] = env.tickets()
    # Written by the sender, below our server's header: proves nothing.
    forged_decision(env, t["ref"], "subject tag", headers={
        "Authentication-Results": "mx.retainer.test; dkim=pass header.d=retainer.test"})
    assert estimate_status(env) == "pending"
    # Our own server (the trusted authserv-id) saw a DKIM signature of the client's domain.
    forged_decision(env, t["ref"], "subject tag", headers={
        "Authentication-Results": "mx.agency.test; dkim=pass header.d=retainer.test"})
    assert estimate_status(env) == "approved" and planned_minutes(env) == [180]
    [approved] = [e for e in env.ticket(t["ref"])["events"]
                  if e["kind"] == "estimate_approved"]
    assert "dkim=pass for retainer.test" in approved["detail"]
