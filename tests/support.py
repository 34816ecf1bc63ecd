"""A throwaway desk installation for tests: config file, database, directory.

``DeskEnv.desk(...)`` runs the real ``desk`` command in a subprocess, exactly as an admin
or cron would; ``session()`` gives direct read access for assertions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy.orm import Session

from desk.store.db import make_engine, session_factory

REPO = Path(__file__).resolve().parents[1]
DESK = [sys.executable, "-m", "desk"]
# Long enough for desk to accept ([desk] secret needs 32 characters), and distinctive: the
# leak test (tests/integration/test_no_secrets_shown.py) looks for it in every output.
SECRET = "test-secret-0123456789abcdef-ghijklmnopqrstuv"


def toml_value(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, bool) else str(value).lower()


def toml(sections: dict[str, dict[str, Any]], prefix: str = "") -> str:
    """Nested dicts become [a.b] tables; None values are left out."""
    lines: list[str] = []
    for name, body in sections.items():
        lines.append(f"[{prefix}{name}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in body.items()
                  if v is not None and not isinstance(v, dict)]
        lines.append("")
        nested = {k: v for k, v in body.items() if isinstance(v, dict)}
        if nested:
            lines.append(toml(nested, f"{prefix}{name}."))
    return "\n".join(lines)


class DeskEnv:
    def __init__(
        self,
        root: Path,
        *,
        mailbox: dict[str, Any] | bool | None = None,
        smtp: dict[str, Any] | None = None,
        database_url: str | None = None,
        extra: dict[str, dict[str, Any]] | None = None,
        seed: bool = True,
    ) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.address = "support@agency.test"
        self.database_url = database_url or f"sqlite:///{root / 'desk.db'}"
        sections: dict[str, dict[str, Any]] = {
            "desk": {"address": self.address, "name": "Agency Support",
                     "timezone": "Europe/London", "database_url": self.database_url,
                     "secret": SECRET, "triage": "alice@agency.test"},
            "mailbox": mailbox or {"source": "maildir", "path": str(root / "inbox")},
            "smtp": smtp or {"transport": "maildir", "path": str(root / "sent")},
        }
        if mailbox is False:  # LMTP-only installations have no mailbox to read
            del sections["mailbox"]
        # In-process runs share the test's working directory: keep the journal apart.
        sections["smtp"] = {**sections["smtp"], "journal_dir": str(root / "journal")}
        # Scheduled reports and digests are their own concern (tests/integration/
        # test_reporting.py turns them on): elsewhere they would only add mail to count.
        sections["reports"] = {"period": "none", "digest": False}
        # As README asks of an agency: desk trusts what its own receiving server says
        # (tests write that server's header with ``TRUSTED_AUTH``).
        sections["security"] = {"trusted_authserv_id": "mx.agency.test"}
        for name, body in (extra or {}).items():
            sections.setdefault(name, {}).update(body)
        self.config = root / "desk.toml"
        self.config.write_text(toml(sections))
        self._engine = None
        if seed:
            self.desk("init")
            self.seed_directory()

    # -- running desk ---------------------------------------------------------------
    def desk(self, *args: str, check: bool = True, timeout: float = 120,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run a desk command in-process through click's runner (same code, no interpreter
        start-up per call). A long-running `desk run` gets its own process, as in
        production: see DaemonProcess."""
        if env is None and (args[:1] != ("run",) or "--once" in args):
            return self._in_process(args, check)
        proc = subprocess.run(
            [*DESK, "--config", str(self.config), *args],
            capture_output=True, text=True, timeout=timeout, cwd=self.root,
            env={**os.environ, **(env or {})},
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"desk {' '.join(args)} exited {proc.returncode}\n"
                f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc

    def _in_process(self, args: tuple[str, ...], check: bool) -> subprocess.CompletedProcess[str]:
        from click.testing import CliRunner

        from desk.cli import main

        result = CliRunner().invoke(main, ["--config", str(self.config), *args],
                                    catch_exceptions=False)
        proc = subprocess.CompletedProcess(["desk", *args], result.exit_code,
                                           result.stdout, result.stderr)
        if check and proc.returncode != 0:
            raise AssertionError(f"desk {' '.join(args)} exited {proc.returncode}\n"
                                 f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
        return proc

    def desk_json(self, *args: str) -> Any:
        return json.loads(self.desk(*args, "--json").stdout)

    # The directory is created at a fixed moment, so tests never depend on today's date.
    SEEDED_AT = "2026-11-01T00:00:00Z"

    def seed_directory(self) -> None:
        staff = self.root / "staff.csv"
        staff.write_text(
            "email,name,role,capacity\n"
            "alice@agency.test,Alice Archer,account_manager,40\n"
            "paul@agency.test,Paul Porter,project_manager,30\n"
            "sam@agency.test,Sam Senior,senior_engineer,15\n"
            "jo@agency.test,Jo Junior,junior_engineer,8\n"
            "ben@agency.test,Ben Backup,project_manager,30\n"
        )
        self.desk("--now", self.SEEDED_AT, "staff", "import", str(staff))
        clients = self.root / "clients.csv"
        am, pm, bk = "alice@agency.test", "paul@agency.test", "ben@agency.test"
        rows = [
            ("Retainer Co", "retainer", "retainer.test", "boss@retainer.test", 10),
            ("Project Co", "project", "project.test", "", ""),
            ("Past Co", "post_project", "past.test", "", ""),
            ("Hosting Co", "hosting", "hosting.test", "", ""),
            ("HostSLA Co", "hosting_sla", "hostsla.test", "", ""),
            ("Client Co", "support_sla", "client.test", "client@client.test", 20),
        ]
        lines = ["name,tier,domains,contacts,account_manager,project_manager,backup,"
                 "hours_per_month,timezone"]
        for name, tier, dom, contact, hours in rows:
            lines.append(f"{name},{tier},{dom},{contact},{am},{pm},{bk},{hours},Europe/London")
        clients.write_text("\n".join(lines) + "\n")
        self.desk("--now", self.SEEDED_AT, "client", "import", str(clients))

    # -- state ----------------------------------------------------------------------
    @contextmanager
    def session(self) -> Iterator[Session]:
        if self._engine is None:
            self._engine = make_engine(self.database_url)
        with session_factory(self._engine)() as s:
            yield s

    def tickets(self) -> list[dict[str, Any]]:
        return self.desk_json("tickets", "list")

    def ticket(self, ref: int | str) -> dict[str, Any]:
        return self.desk_json("tickets", "show", str(ref))

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()

    # -- local maildirs -----------------------------------------------------------------
    def drop(self, raw: bytes, name: str | None = None) -> Path:
        new = self.root / "inbox" / "new"
        new.mkdir(parents=True, exist_ok=True)
        for sub in ("cur", "tmp"):
            (self.root / "inbox" / sub).mkdir(exist_ok=True)
        self._dropped = getattr(self, "_dropped", 0) + 1
        path = new / (name or f"{self._dropped:05d}.eml")
        path.write_bytes(raw)
        return path

    def sent_to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.sent()
                if address in [a.addr_spec for a in m["To"].addresses]]

    def client_mail(self) -> list[EmailMessage]:
        """What clients received: everything not addressed to agency staff."""
        return [m for m in self.sent()
                if not m["To"].addresses[0].addr_spec.endswith("@agency.test")]

    def sent(self) -> list[EmailMessage]:
        new = self.root / "sent" / "new"
        if not new.exists():
            return []
        files = sorted(new.iterdir(), key=lambda p: p.stat().st_mtime_ns)
        return [message_from_bytes(p.read_bytes(), policy=policy.default) for p in files]  # type: ignore[misc]


class EnvFactory(Protocol):
    """The `make_env` fixture (tests/integration/conftest.py): a DeskEnv under the test's
    ``tmp_path / name``, closed after the test; the keyword arguments are DeskEnv's."""

    def __call__(self, name: str = "desk", *, mailbox: dict[str, Any] | bool | None = None,
                 smtp: dict[str, Any] | None = None, database_url: str | None = None,
                 extra: dict[str, dict[str, Any]] | None = None,
                 seed: bool = True) -> DeskEnv: ...


def make_mail(
    *,
    sender: str = "Carol Client <client@client.test>",
    to: str = "support@agency.test",
    subject: str = "Contact form broken",
    body: str = "Hello, the contact form on our site does not send anything.\n",
    message_id: str | None = None,
    in_reply_to: str | None = None,
    references: str | None = None,
    cc: str | None = None,
    headers: dict[str, str] | None = None,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    if cc:
        msg["Cc"] = cc
    msg["Subject"] = subject
    msg["Date"] = "Mon, 23 Nov 2026 10:00:00 +0000"
    msg["Message-ID"] = message_id or make_msgid(domain="client.test")
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if references:
        msg["References"] = references
    for k, v in (headers or {}).items():
        msg[k] = v
    msg.set_content(body)
    return msg.as_bytes()


def reply_to(original: EmailMessage, *, sender: str, body: str, to: str | None = None,
             subject: str | None = None, headers: dict[str, str] | None = None) -> bytes:
    """What a mail program produces when the user hits Reply on ``original``."""
    mid = str(original["Message-ID"])
    refs = f"{original['References'] or ''} {mid}".strip()
    return make_mail(
        sender=sender,
        to=to or str(original["Reply-To"] or original["From"]),
        subject=subject or f"Re: {original['Subject']}",
        body=body + "\n\nOn Mon, 23 Nov 2026, Agency Support wrote:\n> earlier text\n",
        in_reply_to=mid,
        references=refs,
        headers=headers,
    )


SUPPORT_USER = "support@agency.test"
# The Authentication-Results header the agency's receiving server adds to a staff
# member's genuine mail (DeskEnv trusts the authserv-id mx.agency.test).
TRUSTED_AUTH = "mx.agency.test; dkim=pass header.d=agency.test header.s=mail"


def imap_mailbox(dovecot: Any, **extra: Any) -> dict[str, Any]:
    """[mailbox] settings for the test Dovecot's support account (plaintext loopback)."""
    s = dovecot.imap_settings(SUPPORT_USER)
    return {"source": "imap", "host": s["host"], "port": s["port"], "tls": False,
            "username": s["username"], "password": s["password"], **extra}


def smtp_to(capture: Any) -> dict[str, Any]:
    return {"transport": "smtp", "host": capture.host, "port": capture.port,
            "security": "none", "timeout_seconds": 10}


class DaemonProcess:
    """`desk run` as a real long-running process, stopped with SIGTERM like systemd does."""

    def __init__(self, env: DeskEnv, *extra: str) -> None:
        self.env = env
        self.log = env.root / f"daemon-{id(self)}.log"
        self._fh = self.log.open("wb")
        self.proc = subprocess.Popen(
            [*DESK, "--config", str(env.config), "run", "--log-level", "debug", *extra],
            stdout=self._fh, stderr=subprocess.STDOUT, cwd=env.root,
        )
        self.wait_for_log("started")

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_log(self, needle: str, timeout: float = 20.0) -> None:
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.output():
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"desk run exited {self.proc.returncode}:\n{self.output()}")
            time.sleep(0.05)
        raise AssertionError(f"{needle!r} not logged within {timeout}s:\n{self.output()}")

    def stop(self, timeout: float = 40.0) -> int:
        import signal

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._fh.close()
        return code

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self._fh.close()


def wait_until(predicate: Any, timeout: float = 10.0, interval: float = 0.05) -> Any:
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def to_clients(mails: list[Any]) -> list[Any]:
    """Captured mails addressed to clients (staff notices go to @agency.test)."""
    return [m for m in mails if not all(r.endswith("@agency.test") for r in m.rcpt_tos)]


def wait_for_client_mail(capture: Any, count: int, timeout: float = 10.0) -> list[Any]:
    return wait_until(lambda: (found := to_clients(capture.messages())) and
                      len(found) >= count and found, timeout=timeout)


def said(text: str) -> str:
    """Text as a reader takes it in: mail is wrapped at 72 columns, so a phrase may cross
    a line break; compare words, not line layout."""
    return " ".join(text.split())
