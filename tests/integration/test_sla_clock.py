"""The SLA clock with a controlled clock (`desk run --once --now`): warnings, the
escalation ladder exactly once across restarts, pauses, nights, weekends, holidays,
nudges, P1 prompts, client status updates and ETA warnings."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import DeskEnv, EnvFactory, make_mail, reply_to

MON_10 = "2026-11-23T10:00:00Z"  # Monday; London is on UTC in November


@pytest.fixture
def env(make_env: EnvFactory) -> DeskEnv:
    return make_env(extra={"sla": {"calendar": {"country": "GB", "subdivision": "ENG"}}})


def run_at(env: DeskEnv, when: str) -> str:
    return env.desk("run", "--once", "--now", when).stdout


def subjects(env: DeskEnv, who: str) -> list[str]:
    return [m["Subject"].split(":")[0] for m in env.sent_to(who)]


def events(env: DeskEnv, ref: str, kind: str) -> list[str]:
    return [e["detail"] for e in env.ticket(ref)["events"] if e["kind"] == kind]


def test_warning_then_each_ladder_step_exactly_once_across_restarts(env: DeskEnv) -> None:
    env.drop(make_mail())  # Client Co, support_sla, P2: first response 1h -> due 11:00
    run_at(env, MON_10)
    [t] = env.tickets()
    assert env.ticket(t["ref"])["events"]  # ticket exists
    run_at(env, "2026-11-23T10:30:00Z")
    assert subjects(env, "paul@agency.test") == ["New ticket"]  # nothing due yet

    for _ in range(2):  # a restart at the same moment changes nothing
        run_at(env, "2026-11-23T10:46:00Z")
    assert subjects(env, "paul@agency.test") == ["New ticket", "Due soon (first response)"]

    for _ in range(2):
        run_at(env, "2026-11-23T11:01:00Z")  # breached: step 1, the owner
    assert subjects(env, "paul@agency.test")[-1] == "Overdue (first response)"
    assert subjects(env, "alice@agency.test") == []
    run_at(env, "2026-11-23T11:31:00Z")  # step 2: project manager = the owner: not twice
    run_at(env, "2026-11-23T12:01:00Z")  # step 3: account manager
    run_at(env, "2026-11-23T12:01:00Z")
    run_at(env, "2026-11-23T12:31:00Z")  # step 4: backup manager
    run_at(env, "2026-11-23T15:00:00Z")  # nothing more
    assert subjects(env, "paul@agency.test").count("Overdue (first response)") == 1
    assert subjects(env, "alice@agency.test") == ["Overdue (first response)"]
    assert subjects(env, "ben@agency.test") == ["Overdue (first response)"]
    steps = events(env, t["ref"], "escalated")
    assert len(steps) == 4
    assert "already told" in steps[1]
    assert len(events(env, t["ref"], "sla_breached")) == 1
    assert len(events(env, t["ref"], "sla_warning")) == 1


def test_first_reply_stops_the_first_response_clock(env: DeskEnv) -> None:
    env.drop(make_mail())
    run_at(env, MON_10)
    [notice] = env.sent_to("paul@agency.test")
    env.drop(reply_to(notice, sender="paul@agency.test", body="Looking at it now."))
    run_at(env, "2026-11-23T10:20:00Z")
    run_at(env, "2026-11-23T12:00:00Z")
    assert "Overdue (first response)" not in subjects(env, "paul@agency.test")
    assert "Due soon (first response)" not in subjects(env, "paul@agency.test")


def test_nights_and_weekends_do_not_count(env: DeskEnv) -> None:
    env.drop(make_mail(sender="a@retainer.test"))  # retainer P3: first response 1 working day
    run_at(env, "2026-11-27T16:00:00Z")  # Friday 16:00
    [t] = env.tickets()
    status = env.desk_json("sla", "status")
    [row] = status["tickets"]
    # One working day after Friday 16:00 is Monday 16:00, not Saturday.
    assert row["due"].startswith("2026-11-30T16:00")
    run_at(env, "2026-11-29T12:00:00Z")  # Sunday
    assert events(env, t["ref"], "sla_warning") == []


def test_public_holidays_do_not_count(env: DeskEnv) -> None:
    env.drop(make_mail(sender="a@hostsla.test"))  # hosting_sla P2: first response 2h
    run_at(env, "2026-12-24T17:00:00Z")  # Thursday 17:00, 30 min before closing
    [row] = env.desk_json("sla", "status")["tickets"]
    # 25 Dec (Christmas), 26-27 weekend, 28 Dec (Boxing Day, observed): due Tue 29 at 10:30.
    assert row["due"].startswith("2026-12-29T10:30")
    explained = env.desk("sla", "explain", "1").stdout
    assert "Christmas Day" in explained and "Boxing Day" in explained


def test_waiting_pauses_the_clock_and_the_reply_resumes_it(env: DeskEnv) -> None:
    env.drop(make_mail(sender="a@client.test", subject="Question"))  # support_sla P2
    run_at(env, MON_10)  # resolution target 2 working days -> Wed 10:00
    [t] = env.tickets()
    [notice] = env.sent_to("paul@agency.test")
    env.drop(reply_to(notice, sender="paul@agency.test",
                      body="#status waiting\n\nCould you send us the admin login?"))
    run_at(env, "2026-11-23T11:00:00Z")
    assert env.desk_json("sla", "status")["tickets"][0]["state"] == "paused"
    [relay] = [m for m in env.client_mail() if "admin login" in str(m.get_body(("plain",)))]
    env.drop(reply_to(relay, sender="a@client.test", body="Here it is."))
    run_at(env, "2026-11-24T11:00:00Z")  # one business day (8.5 h) later
    detail = env.ticket(t["ref"])
    assert detail["status"] == "open"
    [row] = env.desk_json("sla", "status")["tickets"]
    assert row["deadline"] == "next_update"
    explained = env.desk("sla", "explain", t["ref"]).stdout
    assert "paused so far: 510 business minutes" in explained
    # The resolution moved by the paused time: Wed 10:00 + 8h30 -> Thu 10:00.
    assert "resolution: target 2 working days since the ticket opened, plus 510" in explained
    assert "-> due 2026-11-26T10:00:00+00:00" in explained


def test_silence_nudges_the_owner_and_p1_prompts_hourly(env: DeskEnv) -> None:
    env.drop(make_mail(sender="a@project.test", subject="Change the footer"))
    env.drop(make_mail(sender="b@client.test", subject="Site down"))
    run_at(env, MON_10)
    notices = {m["Subject"].split("[#")[1][0]: m for m in env.sent_to("paul@agency.test")}
    for ref, text in (("1", "On it, will report back."), ("2", "#status open\n\nOn it.")):
        env.drop(reply_to(notices[ref], sender="paul@agency.test", body=text))
    run_at(env, "2026-11-23T10:05:00Z")
    run_at(env, "2026-11-23T11:10:00Z")  # P1 (#2): hourly prompt; P1 escalations aside
    assert "P1 update due" in subjects(env, "paul@agency.test")
    assert len(events(env, "2", "nudged")) == 1
    run_at(env, "2026-11-25T10:10:00Z")  # #1 silent for 2 working days
    assert len(events(env, "1", "nudged")) == 1
    assert "Client waiting for news" in subjects(env, "paul@agency.test")
    run_at(env, "2026-11-25T10:10:00Z")
    assert len(events(env, "1", "nudged")) == 1  # once per silent period


def test_client_updates_policy_writes_to_the_client_itself(tmp_path: Path) -> None:
    env = DeskEnv(tmp_path / "upd", extra={"sla": {"policies": {"project": {
        "client_updates": True,
        "P3": {"first_response": "1 working day", "next_update": "2 working days"}}}}})
    env.drop(make_mail(sender="a@project.test", subject="Change the footer"))
    run_at(env, MON_10)
    [notice] = env.sent_to("paul@agency.test")
    env.drop(reply_to(notice, sender="paul@agency.test", body="#eta 2026-12-04\n\nOn it."))
    run_at(env, "2026-11-23T10:05:00Z")
    run_at(env, "2026-11-25T10:10:00Z")
    updates = [m for m in env.sent_to("a@project.test") if m["Subject"].startswith("Update")]
    assert len(updates) == 1
    text = str(updates[0].get_body(("plain",)).get_content())
    assert "Status: being worked on" in text and "Expected: 2026-12-04" in text
    env.close()


def test_eta_warning_reaches_the_project_manager_before_the_date(env: DeskEnv) -> None:
    env.drop(make_mail(sender="a@retainer.test", subject="Menu update"))
    run_at(env, MON_10)
    [notice] = env.sent_to("paul@agency.test")
    env.drop(reply_to(notice, sender="paul@agency.test", body="#eta 2026-11-27\n\nBy Friday."))
    run_at(env, "2026-11-23T10:05:00Z")
    run_at(env, "2026-11-25T17:00:00Z")  # Wednesday: too early
    assert not events(env, "1", "eta_warning")
    run_at(env, "2026-11-26T09:01:00Z")  # Thursday opening: the last working day before
    run_at(env, "2026-11-26T12:00:00Z")
    assert len(events(env, "1", "eta_warning")) == 1
    assert subjects(env, "paul@agency.test").count("ETA 2026-11-27 at risk") == 1


def test_hosting_without_sla_has_no_clocks(env: DeskEnv) -> None:
    env.drop(make_mail(sender="a@hosting.test"))
    run_at(env, MON_10)
    [row] = env.desk_json("sla", "status")["tickets"]
    assert row["state"] == "paused"  # awaiting the costed sign-off
    assert "no SLA clocks" in env.desk("sla", "explain", "1").stdout
    run_at(env, "2026-12-10T10:00:00Z")
    assert not events(env, "1", "escalated")
