"""A throwaway desk with eight weeks of believable history, for the scripts that need real
mail to look at: render_reports.py (screenshots of the report and the digest) and
spam_check.py (what SpamAssassin makes of every kind of mail desk sends).

It is the demo's own configuration (config/: the clients, staff and settings an agency
starts from) in a temporary directory, driven through the real `desk` commands in this
process: mail dropped into the inbox, `desk run --once` at chosen moments, time logged
and tickets resolved with the CLI. Nothing outside the directory is touched.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session

REPO = Path(__file__).resolve().parents[1]

# The moment the sample report is due: a Friday at 16:00 in London, as [reports] says.
REPORT_AT = datetime(2026, 11, 27, 16, 0, tzinfo=UTC)
# The managers' digest the Monday after.
DIGEST_AT = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)

STAFF = "paul@agency.example"  # the project manager of every sample client

@dataclass(frozen=True)
class Request:
    weeks_ago: int  # the week it came in, counted back from REPORT_AT
    sender: str
    subject: str
    hours: tuple[float, ...] = ()  # logged on the following days
    reply_after: int | None = 30  # the owner's first reply, minutes after; None: none yet
    then: str = "resolved"  # resolved, or left: open, waiting (for the client)
    eta: str | None = None


HISTORY = [
    Request(8, "orders@bramblebakery.example", "Autumn menu on the website", (1.5,), 40),
    Request(7, "orders@bramblebakery.example", "Opening hours for the half-term week",
            (2.0,), 25),
    Request(6, "orders@bramblebakery.example", "Online orders not reaching the shop",
            (3.0, 1.5), 15),
    Request(5, "orders@bramblebakery.example", "New photos for the cake gallery", (1.0,), 90),
    Request(3, "orders@bramblebakery.example", "Allergen information on product pages",
            (2.5,), 60),
    Request(2, "orders@bramblebakery.example", "Christmas pre-order form", (1.5, 1.0), 30,
            "waiting"),
    Request(1, "orders@bramblebakery.example", "Newsletter sign-up on the home page", (0.5,),
            45, "open", "2026-12-02"),
    Request(6, "it@granitehealth.example", "Patient portal login page slow", (4.0,), 20),
    Request(4, "it@granitehealth.example", "SSL certificate renewal", (1.0,), 30),
    Request(3, "it@granitehealth.example", "Appointment booking shows the wrong clinic",
            (6.0, 2.0), 50),
    Request(2, "it@granitehealth.example", "Staff directory photos missing", (3.0,), 35,
            "waiting"),
    Request(1, "it@granitehealth.example", "Booking confirmation emails delayed", (5.5, 3.0),
            200, "open", "2026-12-01"),
    Request(1, "it@granitehealth.example", "Two-factor codes not arriving", (1.0,), 20),
    Request(2, "ops@fjordfreight.example", "Tracking page times out", (2.0,), 30),
    Request(1, "ops@fjordfreight.example", "Customs form upload fails", (), None, "open"),
    Request(1, "reception@elmdental.example", "Change the opening hours banner", (), None,
            "open"),
]


# A Monday morning's mail, more at once than a person's notice cap ([notices]
# max_per_staff, 10 in the demo) so the rest come in one summary: every tier and an
# unknown sender, one of them written in HTML as most mail programs send it.
BUSY_MORNING = [
    ("hello@cobalt.example", "Staging site password"),
    ("office@dunmore.example", "Which support package after the launch?"),
    ("someone@mailbox.example", "A quote for a new website"),
    ("rosa@bramblebakery.example", "Photos for the Christmas page"),
    ("orders@bramblebakery.example", "Delivery slots on the order form"),
    ("it@granitehealth.example", "Password reset link expired"),
    ("ward7@granitehealth.example", "Ward pages show last week's rota"),
    ("ops@fjordfreight.example", "Invoice PDF download fails"),
    ("dispatch@fjordfreight.example", "Driver app login loops"),
    ("reception@elmdental.example", "New hygienist on the team page"),
    ("dr.elm@elmdental.example", "Add the Saturday clinic"),
    ("hello@cobalt.example", "Logo files for the footer"),
    ("finance@cobalt.example", "VAT number in the site footer"),
    ("shop@bramblebakery.example", "Gift card page shows the old price"),
    ("it@granitehealth.example", "Cookie banner covers the menu on phones"),
    ("ops@fjordfreight.example", "Add Gothenburg to the depot list"),
]


def mail(sender: str, subject: str, at: datetime, body: str | None = None, *,
         html: bool = False) -> bytes:
    msg = EmailMessage()
    name = sender.split("@")[0].capitalize()
    msg["From"] = f"{name} <{sender}>"
    msg["To"] = "support@agency.example"
    msg["Subject"] = subject
    msg["Date"] = format_datetime(at)
    msg["Message-ID"] = make_msgid(domain=sender.split("@")[1])
    text = body or f"Hello,\n\n{subject}: could you have a look, please?\n\nThanks,\n{name}\n"
    msg.set_content(text)
    if html:
        paragraphs = "".join(f"<p>{p.replace(chr(10), '<br>')}</p>" for p in text.split("\n\n"))
        msg.add_alternative(f"<html><body>{paragraphs}</body></html>", subtype="html")
    return msg.as_bytes()


class SampleDesk:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        shutil.copytree(REPO / "config", root / "config", dirs_exist_ok=True)
        # The demo's configuration has paths relative to the directory desk runs in.
        os.chdir(root)
        os.environ["DESK_CONFIG"] = str(root / "config" / "desk.toml")
        os.environ["DESK_SECRET"] = secrets.token_urlsafe(32)
        for sub in ("new", "cur", "tmp"):
            (root / "var" / "mail" / "inbox" / sub).mkdir(parents=True, exist_ok=True)
        self._dropped = 0
        start = (REPORT_AT - timedelta(weeks=9)).isoformat()
        self.desk("init", now=start)
        self.desk("staff", "import", "config/staff.csv", now=start)
        self.desk("client", "import", "config/clients.csv", now=start)

    def desk(self, *args: str, now: datetime | str | None = None) -> str:
        from desk.cli import main

        when = now.isoformat() if isinstance(now, datetime) else now
        result = CliRunner().invoke(main, [*(("--now", when) if when else ()), *args],
                                    catch_exceptions=False)
        if result.exit_code != 0:
            raise RuntimeError(f"desk {' '.join(args)} exited {result.exit_code}:\n"
                               f"{result.stdout}\n{result.stderr}")
        return result.stdout

    def drop(self, raw: bytes) -> None:
        self._dropped += 1
        (self.root / "var" / "mail" / "inbox" / "new" / f"sample-{self._dropped}").write_bytes(raw)

    def run(self, at: datetime) -> None:
        self.desk("run", "--once", "--log-level", "warning", now=at)

    @contextmanager
    def session(self) -> Iterator[Session]:
        from desk.config.settings import load_settings
        from desk.store.db import make_engine, session_factory

        settings = load_settings(os.environ["DESK_CONFIG"])
        engine = make_engine(settings.desk.database_url)
        try:
            with session_factory(engine)() as s:
                yield s
        finally:
            engine.dispose()

    def ref_of(self, subject: str) -> str:
        from desk.store.models import Ticket

        with self.session() as s:
            ticket = s.scalar(select(Ticket).where(Ticket.subject == subject))
            assert ticket is not None, subject
            return str(ticket.ref)

    def busy_morning(self, at: datetime) -> None:
        """BUSY_MORNING arrives at once; the notices over the cap go out as one summary
        when the window closes."""
        for i, (sender, subject) in enumerate(BUSY_MORNING):
            self.drop(mail(sender, subject, at, html=i == 3))
        self.run(at)
        self.run(at + timedelta(minutes=20))

    def staff_reply(self, ref: str, text: str, at: datetime) -> None:
        """The owner answers the notice desk sent them, from their own address to the
        Reply-To bound to them (proof enough under the demo's staff_proof = "either")."""
        from email import message_from_bytes, policy

        from desk.store.models import Outbox

        with self.session() as s:
            row = s.scalar(select(Outbox).where(Outbox.ticket_id == int(ref),
                                                Outbox.recipient == STAFF)
                           .order_by(Outbox.id).limit(1))
            assert row is not None, f"no notice to {STAFF} about #{ref}"
            notice = message_from_bytes(row.raw, policy=policy.default)
        msg = EmailMessage()
        msg["From"] = f"Paul Porter <{STAFF}>"
        msg["To"] = str(notice["Reply-To"])
        msg["Subject"] = f"Re: {notice['Subject']}"
        msg["Date"] = format_datetime(at)
        msg["Message-ID"] = make_msgid(domain="agency.example")
        msg["In-Reply-To"] = str(notice["Message-ID"])
        msg["References"] = str(notice["Message-ID"])
        msg.set_content(text)
        self.drop(msg.as_bytes())
        self.run(at)

    def play_history(self, weeks: int = 8) -> None:
        """The last ``weeks`` weeks of tickets, replies, time and resolutions; the clock
        runs as the history goes, so a late first reply breaches its SLA as it would."""
        for r in sorted((r for r in HISTORY if r.weeks_ago <= weeks),
                        key=lambda r: -r.weeks_ago):
            # Tuesday 10:00 of that week (the weeks end on REPORT_AT, a Friday).
            opened = REPORT_AT - timedelta(weeks=r.weeks_ago) + timedelta(days=4, hours=-6)
            self.drop(mail(r.sender, r.subject, opened))
            self.run(opened)
            ref = self.ref_of(r.subject)
            if r.reply_after is not None:
                self.run(opened + timedelta(minutes=r.reply_after - 1))  # the clock, on time
                self.staff_reply(ref, "Hello,\n\nThanks for letting us know: I am looking "
                                 "into it now and will update you today.\n\nPaul\n",
                                 opened + timedelta(minutes=r.reply_after))
            if r.then == "waiting":
                self.desk("tickets", "set", ref, "--status", "waiting",
                          now=opened + timedelta(minutes=(r.reply_after or 0) + 1))
            if r.eta:
                self.desk("tickets", "set", ref, "--eta", r.eta, now=opened + timedelta(hours=2))
            for i, h in enumerate(r.hours):
                self.desk("time", "add", ref, f"{int(h * 60)}m", "--staff", STAFF,
                          now=opened + timedelta(days=1 + i, hours=4))
            self.run(opened + timedelta(days=1, hours=6))
            if r.then == "resolved":
                self.desk("tickets", "set", ref, "--status", "resolved",
                          now=opened + timedelta(days=2, hours=5))
        self.run(REPORT_AT - timedelta(minutes=5))
