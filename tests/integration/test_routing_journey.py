"""Routing end to end: one client of each tier plus an unknown sender through real
Dovecot and SMTP; forwards, CCs, `desk route`, the client overview import."""

from __future__ import annotations

from pathlib import Path

from tests.servers import Dovecot, SmtpCapture
from tests.support import (
    SUPPORT_USER,
    TRUSTED_AUTH,
    DeskEnv,
    imap_mailbox,
    make_mail,
    said,
    smtp_to,
)

EXPECTED = {
    # sender: (client, tier, priority, owner, status, workers)
    "a@retainer.test": ("Retainer Co", "retainer", "P3", "paul@agency.test", "new", []),
    "a@project.test": ("Project Co", "project", "P3", "paul@agency.test", "new", []),
    "a@past.test": ("Past Co", "post_project", "P4", "alice@agency.test", "new", []),
    "a@hosting.test": ("Hosting Co", "hosting", "P4", "alice@agency.test", "awaiting_approval",
                       []),
    "a@hostsla.test": ("HostSLA Co", "hosting_sla", "P2", "paul@agency.test", "new", []),
    "a@client.test": ("Client Co", "support_sla", "P1", "paul@agency.test", "new",
                      ["sam@agency.test"]),
    "who@unknown.test": (None, None, "P3", "alice@agency.test", "new", []),
}


def test_every_tier_and_an_unknown_sender_through_dovecot(
        tmp_path: Path, imap: Dovecot, smtp_capture: SmtpCapture) -> None:
    env = DeskEnv(tmp_path / "d", mailbox=imap_mailbox(imap), smtp=smtp_to(smtp_capture))
    for sender in EXPECTED:
        subject = "Site down!" if sender == "a@client.test" else f"Question from {sender}"
        imap.append(SUPPORT_USER, make_mail(sender=sender, subject=subject))
    env.desk("run", "--once")
    tickets = {t["requester"]: t for t in env.tickets()}
    assert set(tickets) == set(EXPECTED)
    for sender, (client, tier, prio, owner, status, workers) in EXPECTED.items():
        t = tickets[sender]
        assert (t["client"], t["tier"], t["priority"], t["assignee"], t["status"],
                t["workers"]) == (client, tier, prio, owner, status, workers), sender
        assigned = [e for e in env.ticket(t["ref"])["events"] if e["kind"] == "assigned"]
        assert "rule '" in assigned[0]["detail"]
    acks = {m.rcpt_tos[0]: m.msg for m in smtp_capture.wait_for(len(EXPECTED))}
    hosting = acks["a@hosting.test"].get_body(("plain",)).get_content()
    assert "costed estimate" in said(hosting)
    env.close()


def test_staff_forward_opens_the_ticket_for_the_client(env: DeskEnv) -> None:
    body = ("Can someone take this one?\n\n---------- Forwarded message ---------\n"
            "From: Carol Client <client@client.test>\nDate: Mon, 23 Nov 2026\n"
            "Subject: Checkout broken\nTo: Sam <sam@agency.test>\n\n"
            "Our checkout shows a blank page.\n")
    # Sam's own mail server vouches for him (a forward needs proof: README, Security model).
    env.drop(make_mail(sender="Sam Senior <sam@agency.test>", subject="Fwd: Checkout broken",
                       body=body, headers={"Authentication-Results": TRUSTED_AUTH}))
    env.desk("run", "--once")
    [t] = env.tickets()
    assert t["requester"] == "client@client.test" and t["client"] == "Client Co"
    assert t["subject"] == "Checkout broken"
    classified = env.ticket(t["ref"])["events"][0]["detail"]
    assert "forwarded by staff sam@agency.test on behalf of client@client.test" in classified
    [ack] = env.client_mail()
    assert ack["To"].addresses[0].addr_spec == "client@client.test"


def test_ccd_colleagues_become_participants_strangers_do_not(env: DeskEnv) -> None:
    env.drop(make_mail(cc="Dan <dan@client.test>, Eve <eve@elsewhere.test>"))
    env.desk("run", "--once")
    [t] = env.tickets()
    detail = env.ticket(t["ref"])
    assert [p["email"] for p in detail["participants"]] == ["dan@client.test"]
    # Dan may now write into the ticket by its [#ref]; Eve may not.
    env.drop(make_mail(sender="dan@client.test", subject=f"Re: [#{t['ref']}] more"))
    env.drop(make_mail(sender="eve@elsewhere.test", subject=f"Re: [#{t['ref']}] more"))
    env.desk("run", "--once")
    assert env.ticket(t["ref"])["message_count"] == 3
    assert len(env.tickets()) == 2


def test_route_explains_without_creating_anything(env: DeskEnv) -> None:
    out = env.desk("route", "--from", "a@client.test", "--subject", "Site down").stdout
    assert "Client Co" in out and "P1" in out and "paul@agency.test" in out
    assert "sam@agency.test" in out and "least loaded" in out
    data = env.desk_json("route", "--from", "x@nowhere.test", "--subject", "Hi")
    assert data["client"] is None and data["owner"] == "alice@agency.test"
    assert data["new_ticket"] is True and data["acknowledged"] is True
    assert env.tickets() == []
    with env.session() as s:
        from sqlalchemy import func, select

        from desk.store.models import Event, Outbox

        assert s.scalar(select(func.count()).select_from(Outbox)) == 0
        assert s.scalar(select(func.count()).select_from(Event)) == 0


def test_away_owner_cli_routes_to_backup(env: DeskEnv) -> None:
    env.desk("staff", "away", "paul@agency.test", "--from", "2000-01-01", "--until",
             "2999-12-31")
    env.drop(make_mail(sender="a@project.test"))
    env.desk("run", "--once")
    [t] = env.tickets()
    assert t["assignee"] == "ben@agency.test"
    env.desk("staff", "away", "paul@agency.test", "--clear")
    env.desk("staff", "remove", "ben@agency.test")
    assert [s["active"] for s in env.desk_json("staff", "list")
            if s["email"] == "ben@agency.test"] == [False]


def test_client_import_dry_run_partial_and_idempotent(env: DeskEnv) -> None:
    csv = env.root / "overview.csv"
    csv.write_text(
        "name,tier,domains,contacts,account_manager,project_manager,backup,hours_per_month,"
        "timezone\n"
        "Acme,retainer,acme.test;acme.example,ceo@acme.test,alice@agency.test,"
        "paul@agency.test,ben@agency.test,12,Europe/Paris\n"
        "Broken,gold,broken.test,,,,,,\n"
        "Zed,project,zed.test,,,,,,Mars/Base\n")
    dry = env.desk("client", "import", str(csv), "--dry-run", check=False)
    assert "line 2: Acme: new client Acme (retainer)" in dry.stdout
    assert "line 3: error: unknown tier 'gold'" in dry.stderr
    assert "line 4: error: unknown time zone 'Mars/Base'" in dry.stderr
    assert "nothing applied" in dry.stdout and dry.returncode == 1
    # Without --partial a bad row means nothing is applied.
    assert env.desk("client", "import", str(csv), check=False).returncode == 1
    assert "Acme" not in [c["name"] for c in env.desk_json("client", "list")]
    partial = env.desk("client", "import", str(csv), "--partial", check=False)
    assert partial.returncode == 1 and "applied 1 row; not applied: 2 rows with errors" \
        in partial.stdout
    acme = next(c for c in env.desk_json("client", "list") if c["name"] == "Acme")
    assert acme["domains"] == ["acme.example", "acme.test"]
    assert acme["contacts"] == ["ceo@acme.test"] and acme["hours_per_month"] == 12
    again = env.desk("client", "import", str(csv), "--partial", check=False).stdout
    assert "line 2: Acme: no change" in again
