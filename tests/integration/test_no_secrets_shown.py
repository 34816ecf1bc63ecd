"""No command, log line or error shows a password or the desk's secret.

Every command of the `desk` tree runs for real (the table below must name each one, so a
new command cannot slip past) against an installation with password logins everywhere:
Dovecot (IMAP), the SMTP sink (AUTH), PostgreSQL (the password in the URL), the secret
from the environment; then again against a database that refuses the password, and one
whose URL cannot be read. `desk run --once --log-level debug` runs as a process of its
own, in text and JSON. Whatever any of them prints is searched for each secret.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest

from desk.cli import main
from tests.servers import Dovecot, Postgres, SmtpCapture
from tests.support import DeskEnv, EnvFactory, make_mail

IMAP_USER = "helpdesk@agency.test"
IMAP_PW = "imap-Pw-7hQ2xLk9"
SMTP_PW = "smtp-Pw-3vR8mNc4"
PG_ROLE = "deskleak"
PG_PW = "pg-Pw-5tY1wZq6"
WRONG_PG_PW = "pg-Wrong-8uJ3eXs2"
SECRET_VAR = "DESK_LEAK_SECRET"
DESK_SECRET = "leak-secret-Gm4Rb8Tw2Kp6Xz0Nq3Vd7Hs1"
SECRETS = (IMAP_PW, SMTP_PW, PG_PW, WRONG_PG_PW, DESK_SECRET)

# Every command, with a harmless invocation that does real work (or fails for real).
# {ticket}, {qid}, {staff_csv} and {client_csv} are filled in from the installation.
INVOCATIONS: dict[tuple[str, ...], list[str]] = {
    ("init",): [],
    ("check-config",): [],
    ("run",): ["--once"],
    ("status",): ["--json"],
    ("outbox", "list"): ["--all"],
    ("outbox", "retry"): ["1"],
    ("client", "add"): ["Leak Co", "--tier", "retainer", "--domain", "leak.test"],
    ("client", "import"): ["{client_csv}", "--dry-run"],
    ("client", "list"): [],
    ("staff", "add"): ["new@agency.test", "--name", "New Person", "--role", "junior_engineer"],
    ("staff", "import"): ["{staff_csv}"],
    ("staff", "remove"): ["new@agency.test"],
    ("staff", "list"): [],
    ("staff", "forward-address"): ["sam@agency.test"],
    ("staff", "away"): ["jo@agency.test", "--from", "2026-12-01", "--until", "2026-12-03"],
    ("tickets", "list"): [],
    ("tickets", "search"): ["contact", "form"],
    ("tickets", "show"): ["{ticket}"],
    ("tickets", "set"): ["{ticket}", "--priority", "P2"],
    ("tickets", "confirm"): ["{ticket}"],
    ("tickets", "promote"): ["{ticket}"],
    ("tickets", "attachment"): ["{ticket}", "1", "--out", "-"],
    ("approve",): ["1"],
    ("route",): ["--from", "client@client.test", "--subject", "Site down"],
    ("templates", "preview"): ["ack_support_sla", "--ticket", "{ticket}"],
    ("templates", "list"): [],
    ("report",): ["Client Co"],
    ("digest",): [],
    ("feedback", "list"): [],
    ("time", "add"): ["{ticket}", "30m", "--staff", "sam@agency.test"],
    ("decisions",): ["Client Co"],
    ("sla", "status"): [],
    ("sla", "explain"): ["{ticket}"],
    ("privacy", "export"): ["client@client.test"],
    ("privacy", "erase"): ["client@client.test", "--dry-run"],
    ("quarantine", "list"): ["--all"],
    ("quarantine", "show"): ["{qid}"],
    # The entry is a message left on the IMAP server as too big: retry logs in there.
    ("quarantine", "retry"): ["{qid}"],
    ("quarantine", "drop"): ["{qid}"],
    # Logs in to Dovecot and the SMTP sink with the passwords, and sends through it.
    ("check-mail",): ["--send-test", "client@client.test"],
    # Interactive (waits for a browser): a client secrets file that is not there ends it.
    ("init-oauth",): ["google", "--client-secrets", "no-such-client-secret.json",
                      "--no-browser"],
}
# Run as processes of their own: logging set-up, the daemon, uncaught errors as the
# interpreter prints them.
AS_PROCESS = {("run",), ("init",), ("status",), ("check-config",)}


def leaf_commands(group: click.Group = main, prefix: tuple[str, ...] = ()
                  ) -> set[tuple[str, ...]]:
    found: set[tuple[str, ...]] = set()
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found |= leaf_commands(command, (*prefix, name))
        else:
            found.add((*prefix, name))
    return found


def assert_nothing_secret(what: str, text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{what} shows {secret!r}:\n{text}"


_databases = itertools.count(1)


@pytest.fixture
def pg_leak_url(postgres: Postgres) -> Iterator[str]:
    """A database owned by a role of its own, with a password to look for."""
    if not postgres.running:
        postgres.start()
    name = f"leak_{next(_databases)}"
    with postgres._admin() as conn:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (PG_ROLE,)).fetchone() is None:
            conn.execute(f"CREATE ROLE {PG_ROLE} LOGIN PASSWORD '{PG_PW}'")
        conn.execute(f"CREATE DATABASE {name} OWNER {PG_ROLE}")
    yield f"postgresql+psycopg://{PG_ROLE}:{PG_PW}@{postgres.host}:{postgres.port}/{name}"
    postgres.drop_database(name)


@pytest.fixture
def smtp_auth(tmp_path: Path) -> Iterator[SmtpCapture]:
    sink = SmtpCapture().start(tmp_path / "smtp-auth", auth=("support@agency.test", SMTP_PW))
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture
def settings(imap: Dovecot, smtp_auth: SmtpCapture,
             monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    if imap.users.get(IMAP_USER) != IMAP_PW:
        imap.add_user(IMAP_USER, IMAP_PW)
    monkeypatch.setenv(SECRET_VAR, DESK_SECRET)
    assert imap.imap_port is not None
    return {
        "mailbox": {"source": "imap", "host": imap.host, "port": imap.imap_port, "tls": False,
                    "username": IMAP_USER, "password": IMAP_PW},
        "smtp": {"transport": "smtp", "host": smtp_auth.host, "port": smtp_auth.port,
                 "security": "none", "username": "support@agency.test", "password": SMTP_PW,
                 "timeout_seconds": 10},
        "extra": {"desk": {"secret": None, "secret_env": SECRET_VAR},
                  "intake": {"max_message_bytes": 20_000}},
    }


def run_every_command(env: DeskEnv, values: dict[str, str]) -> dict[tuple[str, ...], str]:
    assert set(INVOCATIONS) == leaf_commands(), "give every command an invocation here"
    outputs: dict[tuple[str, ...], str] = {}
    for path, args in INVOCATIONS.items():
        argv = [*path, *(a.format(**values) for a in args)]
        # env= makes it a process of its own (DeskEnv.desk)
        proc = env.desk(*argv, check=False, env={} if path in AS_PROCESS else None)
        outputs[path] = text = f"{proc.stdout}\n{proc.stderr}"
        assert_nothing_secret(f"desk {' '.join(argv)}", text)
    return outputs


def test_no_command_or_log_line_shows_a_secret(imap: Dovecot, smtp_auth: SmtpCapture,
                                               pg_leak_url: str, settings: dict[str, Any],
                                               make_env: EnvFactory, tmp_path: Path) -> None:
    env = make_env(database_url=pg_leak_url, **settings)
    imap.append(IMAP_USER, make_mail(subject="Portal down"))
    imap.append(IMAP_USER, b"Subject: no sender at all\r\n\r\nwho am I?\r\n")
    imap.append(IMAP_USER, make_mail(subject="Huge logs", body="log line of some length\n" * 2000))

    # The daemon's own log, everything it says, against servers that all want passwords.
    for fmt in ("text", "json"):
        proc = env.desk("run", "--once", "--log-level", "debug", "--log-format", fmt,
                        check=False, env={})
        log = f"{proc.stdout}\n{proc.stderr}"
        assert_nothing_secret(f"desk run --once ({fmt} log)", log)
        assert proc.returncode == 0, log
    assert "imapclient" in log and "quarantined" in log  # the log says what happened
    assert len(smtp_auth.messages()) >= 2  # it logged in to the SMTP server and sent

    tickets = env.tickets()
    oversized = [q for q in env.desk_json("quarantine", "list")
                 if "left on the server" in q["reason"]]
    assert tickets and oversized
    (tmp_path / "staff.csv").write_text("email,name,role,capacity\n"
                                        "kim@agency.test,Kim Key,junior_engineer,8\n")
    (tmp_path / "clients.csv").write_text(
        "name,tier,domains,contacts,account_manager,project_manager,backup,hours_per_month,"
        "timezone\nCsv Co,hosting,csv.test,,alice@agency.test,paul@agency.test,,,\n")
    values = {"ticket": str(tickets[0]["ref"]), "qid": str(oversized[0]["id"]),
              "staff_csv": str(tmp_path / "staff.csv"),
              "client_csv": str(tmp_path / "clients.csv")}

    outputs = run_every_command(env, values)
    assert f"{PG_ROLE}:***@" in outputs[("check-config",)], outputs[("check-config",)]
    assert "over the 20,000 byte cap" in outputs[("quarantine", "retry")]

    # The database refuses the password: every command says so, naming the URL masked.
    wrong = pg_leak_url.replace(PG_PW, WRONG_PG_PW)
    broken = make_env("broken", database_url=wrong, seed=False, **settings)
    outputs = run_every_command(broken, values)
    assert f"cannot use the database postgresql+psycopg://{PG_ROLE}:***@" in \
        outputs[("status",)], outputs[("status",)]
    assert "password authentication failed" in outputs[("run",)], outputs[("run",)]
    assert "Traceback" not in "".join(outputs.values())

    # A URL the driver cannot even read.
    unreadable = make_env("unreadable", seed=False, **settings,
                          database_url=wrong.replace(f":{broken_port(wrong)}/", ":port/"))
    for path in (("status",), ("init",), ("tickets", "list")):
        proc = unreadable.desk(*path, check=False, env={})
        assert_nothing_secret(f"desk {' '.join(path)} (unreadable URL)",
                              f"{proc.stdout}\n{proc.stderr}")
        assert proc.returncode == 2 and "desk.database_url" in proc.stderr, proc.stderr


def broken_port(url: str) -> str:
    return url.rsplit(":", 1)[1].split("/")[0]
