"""`desk tickets list` filters and table, and `desk tickets search`, over the real CLI:
on SQLite (FTS5) and PostgreSQL (full-text search), the index following the mail as it is
processed, changed, deleted and erased, and migration 0010 indexing mail already stored."""

from __future__ import annotations

import json
import re
import sqlite3
import unicodedata
from typing import Any

import pytest
from alembic import command
from sqlalchemy import text

from desk.store.db import alembic_config, make_engine
from tests.support import DeskEnv, EnvFactory, make_mail, reply_to

MON_10 = "2026-11-23T10:00:00Z"
MON_11 = "2026-11-23T11:00:00Z"
FRI_10 = "2026-11-27T10:00:00Z"
LONG_SUBJECT = ("Invoice page takes a minute to load and the contact form under it "
                "forgets what was typed whenever the page reloads itself")
# Summary keys of `tickets list --json`, as README documents them: must not change.
LIST_KEYS = {"id", "ref", "subject", "status", "priority", "tier", "client", "requester",
             "assignee", "workers", "created_at", "updated_at", "message_count", "eta"}


def seed(env: DeskEnv) -> dict[str, str]:
    """Four tickets: three on Monday, one on Friday. Returns subject -> ref."""
    env.drop(make_mail(subject="Printer broken on floor 3",
                       body="The printers on floor 3 are not printing anything since the "
                            "update. The café downstairs cannot print menus either.\n"))
    env.drop(make_mail(sender="Bob Boss <boss@retainer.test>", subject="Website down",
                       body="Our website shows error 500 since this morning; the printer "
                            "next to me printed fine, so it is not the network.\n"))
    env.drop(make_mail(sender="Zed <zed@nowhere.test>", subject=LONG_SUBJECT,
                       body="It is slow, slow, slow.\n"))
    env.desk("run", "--once", "--now", MON_10)
    env.drop(make_mail(subject="Contact form broken",
                       body="The contact form on our site does not send anything.\n"))
    env.desk("run", "--once", "--now", FRI_10)
    return {t["subject"]: t["ref"] for t in env.tickets()}


def refs(env: DeskEnv, *args: str) -> list[str]:
    return [t["ref"] for t in env.desk_json(*args)]


def found(env: DeskEnv, *words: str) -> list[str]:
    return [t["ref"] for t in env.desk_json("tickets", "search", *words)["tickets"]]


def width(line: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in line)


def test_tickets_list_filters(env: DeskEnv) -> None:
    ref = seed(env)
    every = env.tickets()
    assert set(every[0]) == LIST_KEYS
    by_paul = [t["ref"] for t in every if t["assignee"] == "paul@agency.test"]
    assert by_paul and len(by_paul) < len(every)
    # The owner by address (any case), full name or a unique part of either.
    for owner in ("PAUL@agency.test", "Paul Porter", "paul"):
        assert refs(env, "tickets", "list", "--owner", owner) == by_paul
    assert refs(env, "tickets", "list", "--client", "client co") == [
        ref["Printer broken on floor 3"], ref["Contact form broken"]]
    assert refs(env, "tickets", "list", "--client", "retainer") == [ref["Website down"]]
    assert refs(env, "tickets", "list", "--client", "none") == [ref[LONG_SUBJECT]]
    assert refs(env, "tickets", "list", "--tier", "unknown") == [ref[LONG_SUBJECT]]
    assert refs(env, "tickets", "list", "--tier", "retainer", "--tier", "unknown") == [
        ref["Website down"], ref[LONG_SUBJECT]]
    wanted = {"P1", "P2"}
    assert refs(env, "tickets", "list", "--priority", "P1", "--priority", "P2") == [
        t["ref"] for t in every if t["priority"] in wanted]
    # --since: a date (from its midnight at the desk), or a duration back from --now.
    assert refs(env, "tickets", "list", "--since", "2026-11-27") == [ref["Contact form broken"]]
    assert refs(env, "--now", "2026-11-30T09:00:00Z", "tickets", "list", "--since", "7d") == \
        [t["ref"] for t in every]
    assert refs(env, "--now", "2026-11-30T09:00:00Z", "tickets", "list", "--since", "3d") == \
        [ref["Contact form broken"]]
    # The filters combine.
    assert refs(env, "tickets", "list", "--client", "Client Co", "--since", "2026-11-24") == [
        ref["Contact form broken"]]

    for args, says in [(("--owner", "a"), "could be 5 staff members"),
                       (("--owner", "nobody@agency.test"), "no staff member"),
                       (("--client", "Co"), "could be"), (("--client", "Acme"), "no client"),
                       (("--since", "last week"), "--since 'last week'")]:
        out = env.desk("tickets", "list", *args, check=False)
        assert out.returncode == 2 and says in out.stderr, (args, out.stderr)


def test_breached_lists_what_sla_status_calls_breached(env: DeskEnv) -> None:
    seed(env)
    assert refs(env, "--now", FRI_10, "tickets", "list", "--breached") == sorted(
        (t["ref"] for t in env.desk_json("--now", FRI_10, "sla", "status")["tickets"]
         if t["state"] == "breached"), key=int)
    assert refs(env, "--now", MON_10, "tickets", "list", "--breached") == []
    late = refs(env, "--now", "2026-12-31T10:00:00Z", "tickets", "list", "--breached")
    assert late  # by new year every ticket with a clock is overdue
    # A breach the clock task recorded stays a breach after the ticket is resolved.
    env.desk("run", "--once", "--now", "2026-12-31T10:00:00Z")
    env.desk("tickets", "set", late[0], "--status", "resolved")
    assert late[0] in refs(env, "--now", "2026-12-31T11:00:00Z", "tickets", "list",
                           "--breached")


def test_the_table_fits_the_terminal(env: DeskEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    ref = seed(env)
    out = env.desk("tickets", "list", env={"COLUMNS": "80"}).stdout.splitlines()
    header, *rows, total = out
    assert header.split() == ["REF", "STATUS", "PRI", "TIER", "CLIENT", "OWNER", "SUBJECT"]
    assert total == "4 tickets" and len(rows) == 4
    assert all(width(line) <= 80 for line in out), out
    start = header.index("SUBJECT")  # every row's subject starts under its header
    [long_row] = [r for r in rows if r.startswith(f"#{ref[LONG_SUBJECT]} ")]
    assert long_row.endswith("…") and LONG_SUBJECT.startswith(long_row[start:-1])
    assert {r.index("P") for r in rows} == {header.index("PRI")}  # aligned
    # Piped without a width: whole subjects, for grep.
    monkeypatch.delenv("COLUMNS", raising=False)
    assert any(r.endswith(LONG_SUBJECT) for r in env.desk("tickets", "list").stdout.splitlines())
    assert env.desk("tickets", "list", "--tier", "hosting").stdout == "no tickets match\n"


def test_search_finds_words_as_people_write_them(env: DeskEnv) -> None:
    ref = seed(env)
    printer, website = ref["Printer broken on floor 3"], ref["Website down"]
    # Word forms count alike (Porter stemming): printing, printed; printers, printer.
    assert found(env, "prints") == [printer, website]  # best first: twice in #1
    assert found(env, "PRINTERS") == [printer, website]  # best first: in the subject
    assert found(env, '"floor 3"') == [printer]
    assert found(env, '"3 floor"') == []
    assert found(env, "cafe") == [printer]  # without the accent
    assert found(env, "contact", "form") == [ref["Contact form broken"], ref[LONG_SUBJECT]]
    assert found(env, "web*") == [website]
    assert found(env, "printer", "network") == [website]  # every word must be there

    data = env.desk_json("tickets", "search", "printing")
    assert data["total"] == 2 and data["terms"] == ["printing"]
    first = data["tickets"][0]
    assert set(first) >= LIST_KEYS and first["score"] > data["tickets"][1]["score"]
    assert first["snippet"].startswith("The printers on floor 3 are not **printing**")

    limited = env.desk_json("tickets", "search", "printer", "--limit", "1")
    assert limited["total"] == 2 and [t["ref"] for t in limited["tickets"]] == [printer]
    text_out = env.desk("tickets", "search", "printer", "--limit", "1").stdout
    assert "2 tickets match; the best 1 shown (--limit 2 for all)" in text_out
    assert "The printers on floor 3" in text_out  # the passage, under the ticket
    # Filters apply to search too.
    assert found(env, "printer", "--client", "retainer") == [website]


def test_search_text_is_never_syntax(env: DeskEnv) -> None:
    ref = seed(env)
    for words in ['"', 'printer"', "AND", "printer OR", "NOT printer", "NEAR(printer floor)",
                  "printer*)", "(", "printer-", "subject:printer", "printer'", "^printer",
                  "a\"b", "\\", "{subject body}: printer", "printer:*", "'printer'", "*printer",
                  "printer AND website", "printer -- drop table tickets;"]:
        out = env.desk("tickets", "search", words, check=False)
        assert out.returncode in (0, 2), (words, out.stderr)
        assert "syntax" not in out.stderr.lower() and "fts5" not in out.stderr.lower(), words
    # Syntax characters are only punctuation: the words around them still count.
    assert found(env, "subject:printer") == []  # both "subject" and "printer" required
    assert found(env, "printer)") == found(env, "(printer") == found(env, "printer")
    assert found(env, "NEAR(floor printer)") == []  # "near" is a word nobody wrote
    # A leading "-" is an option to the shell's command line, unless after "--".
    minus = env.desk("tickets", "search", "--json", "--", "-printer").stdout
    assert ref["Printer broken on floor 3"] in [t["ref"] for t in json.loads(minus)["tickets"]]
    out = env.desk("tickets", "search", "*** ((", check=False)
    assert out.returncode == 2 and "nothing to search for" in out.stderr
    # A pasted paragraph (SQLite takes at most 500 arms of a compound SELECT): said, not run.
    pasted = " ".join(f"word{i}" for i in range(600))
    out = env.desk("tickets", "search", pasted, check=False)
    assert out.returncode == 2 and "at most 32" in out.stderr and "Traceback" not in out.stderr


def test_the_desks_own_mail_is_not_searched(env: DeskEnv) -> None:
    seed(env)
    theirs = " ".join(t["subject"] + " " + m["body_text"] for t in env.tickets()
                      for m in env.ticket(t["ref"])["messages"] if m["direction"] == "in")
    ours = " ".join(str(m.get_body(("plain",)).get_content()) for m in env.sent())
    only_ours = {w for w in re.findall(r"[a-z]{6,}", ours.lower())
                 if w not in theirs.lower()}
    assert len(only_ours) > 5  # acknowledgements and notices say plenty
    for word in sorted(only_ours)[:8]:
        assert found(env, word) == [], word


def test_search_follows_the_mail(env: DeskEnv) -> None:
    ref = seed(env)
    printer = ref["Printer broken on floor 3"]
    # A staff reply is searchable, and words from different mails of a ticket combine.
    notice = [m for m in env.sent_to("paul@agency.test")
              if m["Subject"].startswith("New ticket") and "Printer broken" in m["Subject"]][-1]
    env.drop(reply_to(notice, sender="Paul Porter <paul@agency.test>",
                      body="I replaced the toner cartridge; please try again."))
    env.desk("run", "--once", "--now", MON_11)
    assert found(env, "toner") == [printer]
    assert found(env, "toner", "floor") == [printer]

    with env.session() as s:  # a subject changed beneath desk (any code path)
        s.execute(text("UPDATE tickets SET subject = 'Xylograph jammed' WHERE id = :id"),
                  {"id": int(printer)})
        s.commit()
    assert found(env, "xylograph") == [printer]
    with env.session() as s:
        s.execute(text("UPDATE tickets SET subject = 'Printer fixed' WHERE id = :id"),
                  {"id": int(printer)})
        s.commit()
    assert found(env, "xylograph") == []
    with env.session() as s:  # a message deleted: its words go with it
        s.execute(text("DELETE FROM attachments WHERE message_pk IN (SELECT id FROM messages "
                       "WHERE body_text LIKE '%toner%')"))
        s.execute(text("DELETE FROM messages WHERE body_text LIKE '%toner%'"))
        s.commit()
    assert found(env, "toner") == []
    assert found(env, "printing") == [printer, ref["Website down"]]


def shadow_tables_holding(env: DeskEnv, needle: bytes) -> list[str]:
    """The search index's own tables whose stored bytes contain ``needle``."""
    with sqlite3.connect(env.root / "desk.db") as db:
        names = [r[0] for r in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND "
            "(name LIKE 'message_search_%' OR name LIKE 'ticket_search_%')")]
        assert names
        hits = []
        for name in names:
            for row in db.execute(f'SELECT * FROM "{name}"'):
                if any(needle in (v if isinstance(v, bytes) else str(v).encode())
                       for v in row if v is not None):
                    hits.append(name)
        return sorted(set(hits))


def test_an_erased_persons_words_leave_the_index(env: DeskEnv) -> None:
    env.drop(make_mail(sender="Dana Quillfeather <dana@client.test>", subject="Cannot log in",
                       body="Hello, the door code is zqxbanana and my dog is called "
                            "Wolfgangus.\n"))
    env.drop(make_mail(subject="Zqxbanana mentioned by Carol",
                       body="Dana Quillfeather (dana@client.test) told me about zqxbanana.\n"))
    env.desk("run", "--once", "--now", MON_10)
    assert len(found(env, "zqxbanana")) == 2 and len(found(env, "wolfgangus")) == 1
    assert len(found(env, "quillfeather")) == 1  # Carol's mail names her
    # Stored stemmed ("wolfgangu"), each term once per page: the check can see an entry.
    assert shadow_tables_holding(env, b"olfgangu")

    env.desk("privacy", "erase", "dana@client.test")
    assert found(env, "wolfgangus") == []
    assert found(env, "quillfeather") == []  # her name left Carol's mail too
    # Carol's own words stay searchable.
    assert [t["subject"] for t in env.desk_json("tickets", "search", "zqxbanana")["tickets"]] \
        == ["Zqxbanana mentioned by Carol"]
    # Not only unfindable: gone from the index's stored pages.
    assert shadow_tables_holding(env, b"olfgangu") == []
    assert shadow_tables_holding(env, b"uillfeath") == []


def downgrade_to_0009(url: str) -> None:
    engine = make_engine(url)
    cfg = alembic_config(url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0009")
    engine.dispose()


def test_upgrading_indexes_the_mail_already_stored(env: DeskEnv) -> None:
    ref = seed(env)
    downgrade_to_0009(env.database_url)
    out = env.desk("tickets", "search", "printer", check=False)
    assert out.returncode == 2 and "desk init" in out.stderr
    env.desk("init")
    assert found(env, "printing") == [ref["Printer broken on floor 3"], ref["Website down"]]
    assert found(env, "xylograph") == []


# -- PostgreSQL -----------------------------------------------------------------------

def test_list_and_search_on_postgresql(make_env: EnvFactory, pg_url: str) -> None:
    env = make_env("pg", database_url=pg_url)
    ref = seed(env)
    printer, website = ref["Printer broken on floor 3"], ref["Website down"]
    assert refs(env, "tickets", "list", "--client", "client co", "--since", "2026-11-24") == [
        ref["Contact form broken"]]
    assert found(env, "printing") == [printer, website]
    assert found(env, '"floor 3"') == [printer]
    assert found(env, "café") == [printer]  # the english configuration keeps accents
    assert found(env, "web*") == [website]
    assert found(env, "printer", "network") == [website]
    assert found(env, "the") == []  # a stop word alone: nothing to look for
    assert found(env, "the", "printers") == [printer, website]  # ... and ignored
    first = env.desk_json("tickets", "search", "printing")["tickets"][0]
    assert "The printers on floor 3 are not **printing**" in first["snippet"]
    for words in ['"', "printer'", "NEAR(printer floor)", "printer:*", "a & b | !c", "(",
                  "<->", "printer*)", "'printer':*"]:
        out = env.desk("tickets", "search", words, check=False)
        assert out.returncode in (0, 2) and "syntax" not in out.stderr.lower(), words

    # The expressions the queries use are those the indexes were built on.
    from desk.store import search

    with env.session() as s:
        s.execute(text("SET enable_seqscan = off"))
        plan: Any = " ".join(r[0] for r in s.execute(text(
            f"EXPLAIN SELECT id FROM messages WHERE {search._PG_MESSAGE_SEARCHED} AND "
            f"{search._PG_MESSAGE_DOC} @@ phraseto_tsquery('english', 'printer')")))
        assert "ix_messages_search" in plan, plan
        plan = " ".join(r[0] for r in s.execute(text(
            f"EXPLAIN SELECT id FROM tickets WHERE {search._PG_TICKET_DOC} "
            "@@ phraseto_tsquery('english', 'printer')")))
        assert "ix_tickets_search" in plan, plan

    env.drop(make_mail(sender="Dana Doe <dana@client.test>", subject="Cannot log in",
                       body="My dog is called Wolfgangus.\n"))
    env.desk("run", "--once", "--now", MON_11)
    assert len(found(env, "wolfgangus")) == 1
    env.desk("privacy", "erase", "dana@client.test")
    assert found(env, "wolfgangus") == []

    downgrade_to_0009(pg_url)
    env.desk("init")  # builds the indexes over the mail already there
    assert found(env, "printing") == [printer, website]
    assert json.loads(env.desk("tickets", "search", "printing", "--json").stdout)["total"] == 2
