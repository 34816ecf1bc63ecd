"""Every kind of mail desk sends, scored by SpamAssassin's local rules:

    .venv/bin/python scripts/spam_check.py [--max 0.5] [--json] [--keep DIR]

Each template in desk/templates/ (a base that others extend excepted) is sent as the
bytes desk really composes, headers included:

1. A throwaway desk (scripts/sample_desk.py) plays a week of history and a busy
   morning through desk's own commands: acknowledgements for every tier, notices (of a
   plain and of an HTML mail) and their summary, relayed replies, SLA warnings and
   escalations, feedback requests, the weekly report, the digest.
   Every mail desk composes on the way is recorded (template, HTML or not, bytes).
2. A template (or its HTML variant) that history did not send is rendered with the
   context tests/unit/test_golden_mail.py keeps for it (that test wants one for every
   template) and queued through the same ``queue_mail``, so its headers are real too. A
   template with neither fails the check.
3. All of them go through one ``spamassassin -L -t --mbox`` process (it takes a second
   to start; one process for all keeps the check to a few seconds).

Exit status 0 when every mail scores at most --max, 1 when one does not (its rules are
printed) or a template has no mail, 2 when spamassassin is missing (Debian: apt-get
install spamassassin).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sample_desk import DIGEST_AT, REPO, REPORT_AT, SampleDesk
from sqlalchemy import select
from sqlalchemy.orm import Session

from desk.config.settings import Settings
from desk.outbound.mail import OutgoingMail
from desk.store.models import Ticket

TEMPLATES = REPO / "desk" / "templates"
SPAMASSASSIN = ("spamassassin", "-L", "-t", "--mbox",
                # Never write a Bayes database or user preferences of the account running
                # the check: the scores must not depend on what it saw before.
                "-x", "--cf=use_bayes 0", "--cf=bayes_auto_learn 0")


# --------------------------------------------------------------------------- templates


def template_kinds() -> dict[str, set[str]]:
    """Each template that is a mail of its own, with its parts ({"txt", "html"})."""
    files = sorted(TEMPLATES.glob("*.j2"))
    bases = {m.group(1) for f in files for m in
             re.finditer(r"""{%-?\s*extends\s+["']([^"']+)["']""", f.read_text())}
    kinds: dict[str, set[str]] = {}
    for f in files:
        if f.name in bases:
            continue
        stem, _, fmt = f.name.removesuffix(".j2").rpartition(".")
        kinds.setdefault(stem, set()).add(fmt)
    return kinds


@dataclass
class Recorded:
    template: str
    html: bool
    raw: bytes
    subject: str = ""


@dataclass
class Recorder:
    mails: list[Recorded] = field(default_factory=list)

    @contextmanager
    def recording(self) -> Iterator[None]:
        """Every mail ``queue_mail`` composes in this process, as composed."""
        import desk.outbound.messages as messages

        real = messages.compose

        def record(mail: OutgoingMail, stamp: Any, text: str, html: str | None = None) -> Any:
            composed = real(mail, stamp, text, html)
            self.mails.append(Recorded(mail.template, html is not None, composed.raw,
                                       mail.subject))
            return composed

        messages.compose = record
        try:
            yield
        finally:
            messages.compose = real

    def first(self, template: str, html: bool) -> Recorded | None:
        return next((m for m in self.mails if m.template == template and m.html == html),
                    None)


# --------------------------------------------------------------------------- samples


@dataclass
class World:
    """What a sample mail is made from: the sample desk's own rows."""

    session: Session
    settings: Settings
    now: datetime

    def ticket(self, tier: str | None) -> Ticket:
        """One of the sample desk's tickets of that tier (None: an unknown sender's): its
        busy morning has them all."""
        found = self.session.scalar(select(Ticket).where(
            Ticket.tier == tier if tier else Ticket.client_id.is_(None)).limit(1))
        assert found is not None, f"the sample desk has no ticket of tier {tier}"
        return found

    def staff(self, email: str) -> Any:
        from desk.store.models import Staff

        person = self.session.scalar(select(Staff).where(Staff.email == email))
        assert person is not None, email
        return person


# What a mail to the client is (the rest go to a member of staff), and the words its
# subject starts with, as the code that sends each says.
CLIENT_MAIL = {"estimate", "estimate_reminder", "feedback_request", "relay", "status_update"}
SUBJECTS = {
    "allowance_alert": "80% of this month's hours used", "approval_request":
    "Approve a reply to the client?", "attachments": "Attachments", "decision_confirm":
    "Confirm the client's approve?", "estimate": "Estimate for your approval",
    "estimate_decision": "Estimate approved", "estimate_reminder": "Reminder: your approval "
    "for", "eta_warning": "ETA 2026-12-04 at risk", "feedback_alert": "Unhappy client",
    "feedback_request": "Was this resolved?", "impersonation": "Someone wrote as you",
    "notice": "New ticket", "refused": "Not done", "rejected": "Your reply was not sent",
    "relay": "Re:", "sla_escalation": "Overdue (first response)", "sla_nudge": "Client "
    "waiting for news", "sla_warning": "Due soon (first response)", "status_update": "Update:",
}


def golden_context(template: str) -> dict[str, Any] | None:
    """The context tests/unit/test_golden_mail.py renders the template with: kept up to
    date with the templates by that test, which wants a case for every one of them."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))  # run as a script: the repository is not importable
    from tests.unit.test_golden_mail import CASES

    return next((dict(context) for name, context, _ in CASES.values() if name == template),
                None)


def sample_mail(world: World, template: str, html: bool) -> tuple[OutgoingMail, Ticket] | None:
    """A mail of ``template`` with its golden context, as the code that sends it would
    address it: to the client or to a member of staff, about a ticket of the right tier."""
    from desk.outbound.messages import client_recipients, staff_address
    from desk.routing.subject import tagged

    context = golden_context(template)
    if context is None:
        return None
    tier = template.removeprefix("ack_") if template.startswith("ack_") else \
        context.get("tier") or "retainer"
    ticket = world.ticket(None if tier == "unknown" else tier)
    context["ref"] = ticket.ref
    subject = tagged(ticket.subject, ticket.ref)
    if template.startswith("ack_") or template in CLIENT_MAIL:
        to, cc = client_recipients(world.session, ticket)
        staff_id = None
    else:
        person = world.staff("paul@agency.example")
        to, cc, staff_id = [staff_address(person)], [], person.id
    words = SUBJECTS.get(template)
    return OutgoingMail(
        kind="ack" if template.startswith("ack_") else template,
        event_key=f"spam-check:{template}:{html}", to=to, cc=cc, staff_id=staff_id,
        subject=f"{words} {subject}" if words else subject, template=template,
        context=context, html=html, internal=staff_id is not None,
        # What a person wrote is not automatic mail (relayed replies, estimates).
        automatic=template not in ("relay", "estimate"),
        from_name="Paul Smith (Agency Support)" if template in ("relay", "estimate")
        else None), ticket


# --------------------------------------------------------------------------- collecting


@dataclass
class Case:
    template: str
    part: str  # "text" (a text/plain mail) or "html" (text and HTML alternatives)
    source: str  # "history" or "sample"
    mail: Recorded


def collect(desk: SampleDesk, recorder: Recorder) -> tuple[list[Case], list[str]]:
    """One mail per template and part; the templates nothing sent."""
    from desk.config.settings import load_settings
    from desk.outbound.messages import queue_mail

    kinds = template_kinds()
    cases: list[Case] = []
    missing: list[str] = []
    settings = load_settings()
    now = DIGEST_AT + timedelta(hours=3)
    with desk.session() as session:
        world = World(session, settings, now)
        for template, parts in sorted(kinds.items()):
            # The HTML mail (text and HTML alternatives) where the template has one; a
            # text-only mail where it has none, or where history sent one anyway.
            wanted = [True] if "html" in parts else []
            if "html" not in parts or recorder.first(template, False):
                wanted.append(False)
            for html in wanted:
                part = "html" if html else "text"
                got, source = recorder.first(template, html), "history"
                if got is None:
                    sample = sample_mail(world, template, html)
                    if sample is None:
                        missing.append(f"{template}.{'html' if html else 'txt'}.j2")
                        continue
                    mail, ticket = sample
                    before = len(recorder.mails)
                    queue_mail(session, settings, mail, ticket=ticket, now=now)
                    got, source = recorder.first(template, html), "sample"
                    if got is None or len(recorder.mails) == before:
                        missing.append(f"{template} ({part}): its sample sent no such mail")
                        continue
                cases.append(Case(template, part, source, got))
        session.rollback()
    return cases, missing


# --------------------------------------------------------------------------- scoring


@dataclass
class Score:
    score: float
    rules: list[tuple[str, float, str]]  # (rule, points, description)


def as_mbox(messages: list[bytes]) -> bytes:
    out = []
    for raw in messages:
        text = raw.replace(b"\r\n", b"\n").rstrip(b"\n")
        text = re.sub(rb"^(>*From )", rb">\1", text, flags=re.MULTILINE)
        out.append(b"From desk@localhost Thu Jan  1 00:00:00 1970\n" + text + b"\n\n")
    return b"".join(out)


_RULE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s+([A-Z0-9_]+)\s+(.*)$")


def parse_report(chunk: str) -> Score:
    status = re.search(r"^X-Spam-Status: \w+, score=(-?[\d.]+)", chunk, re.MULTILINE)
    assert status, "spamassassin wrote no X-Spam-Status"
    rules: list[tuple[str, float, str]] = []
    table = chunk.split("Content analysis details:", 1)[-1].split("\n")
    in_table = False
    for line in table:
        if line.startswith("----"):
            in_table = True
            continue
        if in_table:
            if not line.strip():
                break
            m = _RULE.match(line)
            if m:
                rules.append((m.group(2), float(m.group(1)), m.group(3).strip()))
            elif rules:  # a description continued on the next line
                name, points, text = rules[-1]
                rules[-1] = (name, points, f"{text} {line.strip()}")
    return Score(float(status.group(1)), rules)


def message_id(text: str) -> str:
    """The Message-ID of a mail (its header block only; folded or not)."""
    head = text.split("\n\n", 1)[0]
    found = re.search(r"^Message-ID:\s*(<[^>]+>)", head, re.MULTILINE | re.IGNORECASE)
    assert found, "a mail without a Message-ID"
    return found.group(1)


def spamassassin(messages: list[bytes]) -> list[Score]:
    proc = subprocess.run(SPAMASSASSIN, input=as_mbox(messages), capture_output=True,
                          timeout=300, check=True)
    chunks = re.split(r"^From [^\n]*\n", proc.stdout.decode("utf-8", "replace"),
                      flags=re.MULTILINE)
    # Matched by Message-ID, not by position: spamassassin need not keep the order.
    scores = {message_id(c): parse_report(c) for c in chunks if "X-Spam-Status:" in c}
    wanted = [message_id(m.decode("utf-8", "replace").replace("\r\n", "\n"))
              for m in messages]
    lost = [w for w in wanted if w not in scores]
    assert not lost, f"spamassassin returned nothing for {lost}"
    return [scores[w] for w in wanted]


# --------------------------------------------------------------------------- main


def run(keep: Path | None) -> tuple[list[Case], list[Score], list[str]]:
    recorder = Recorder()
    with tempfile.TemporaryDirectory(prefix="desk-spam-check-") as tmp, recorder.recording():
        desk = SampleDesk(Path(tmp))
        desk.play_history(weeks=1)
        desk.run(REPORT_AT + timedelta(minutes=1))  # this week's report...
        desk.run(DIGEST_AT + timedelta(minutes=1))  # ...and Monday's digest
        desk.busy_morning(DIGEST_AT + timedelta(hours=2))
        cases, missing = collect(desk, recorder)
    if keep:
        keep.mkdir(parents=True, exist_ok=True)
        for c in cases:
            (keep / f"{c.template}.{c.part}.eml").write_bytes(c.mail.raw)
    return cases, spamassassin([c.mail.raw for c in cases]), missing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max", type=float, default=0.5, help="highest score allowed")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--keep", type=Path, help="write the scored mails here (.eml)")
    args = parser.parse_args()
    if shutil.which("spamassassin") is None:
        print("spamassassin is missing: apt-get install spamassassin", file=sys.stderr)
        sys.exit(2)
    cases, scores, missing = run(args.keep.resolve() if args.keep else None)
    failed = [(c, s) for c, s in zip(cases, scores, strict=True) if s.score > args.max]
    if args.json:
        print(json.dumps({"max": args.max, "missing": missing, "mails": [
            {"template": c.template, "part": c.part, "source": c.source,
             "subject": c.mail.subject, "score": s.score,
             "rules": [{"rule": r, "points": p, "description": d} for r, p, d in s.rules]}
            for c, s in zip(cases, scores, strict=True)]}, indent=1))
    else:
        for c, s in zip(cases, scores, strict=True):
            hits = ", ".join(f"{r} {p:g}" for r, p, _ in s.rules if p)
            print(f"{s.score:5.1f}  {c.template:<20} {c.part:<5} {c.source:<8} {hits}")
        for c, s in failed:
            print(f"\n{c.template} ({c.part}) scores {s.score} > {args.max}: "
                  f"{c.mail.subject}", file=sys.stderr)
            for r, p, d in s.rules:
                print(f"  {p:5.1f} {r:<24} {d}", file=sys.stderr)
        for m in missing:
            print(f"no mail for {m}: history does not send it and "
                  "tests/unit/test_golden_mail.py has no case for it", file=sys.stderr)
    sys.exit(1 if failed or missing else 0)


if __name__ == "__main__":
    main()
