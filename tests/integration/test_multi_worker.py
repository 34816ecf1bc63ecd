"""Several `desk run` processes on one PostgreSQL database and one Dovecot mailbox: every
message ticketed once, every acknowledgement sent once, every escalation step sent once,
and the mailbox lease moves on when its holder dies."""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path

from sqlalchemy import func, select

from desk.store.models import Ticket
from tests.servers import Dovecot, SmtpCapture
from tests.support import (
    DESK,
    SUPPORT_USER,
    DaemonProcess,
    DeskEnv,
    imap_mailbox,
    make_mail,
    smtp_to,
    to_clients,
    wait_until,
)

WORKERS = 4


def run_together(env: DeskEnv, when: str) -> list[str]:
    """Start WORKERS `desk run --once --now WHEN` processes at the same moment."""
    procs = [subprocess.Popen([*DESK, "--config", str(env.config), "run", "--once", "--now",
                               when, "--log-level", "warning"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              cwd=env.root) for _ in range(WORKERS)]
    outputs = []
    for p in procs:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0, out
        outputs.append(out)
    return outputs


def test_four_workers_share_the_work_exactly_once(tmp_path: Path, imap: Dovecot,
                                                  smtp_capture: SmtpCapture,
                                                  pg_url: str) -> None:
    env = DeskEnv(tmp_path / "w", mailbox=imap_mailbox(imap), smtp=smtp_to(smtp_capture),
                  database_url=pg_url)
    count = 50  # within the test staff's capacity caps, so every ticket has an owner
    imap.multiappend(SUPPORT_USER, [
        make_mail(sender=f"p{i}@client.test", subject=f"Question {i}",
                  message_id=f"<mw-{i}@client.test>") for i in range(count)])
    outputs = run_together(env, "2026-11-23T10:00:00Z")
    assert sum("lease" in out for out in outputs) >= 1  # the others saw the lease
    with env.session() as s:
        assert s.scalar(select(func.count()).select_from(Ticket)) == count

    # The SLA clock on all four at once, step by step past the deadline.
    for when in ("2026-11-23T10:46:00Z", "2026-11-23T11:01:00Z", "2026-11-23T11:31:00Z",
                 "2026-11-23T12:01:00Z", "2026-11-23T12:31:00Z"):
        run_together(env, when)

    mails = smtp_capture.messages()
    ids = Counter(str(m.msg["Message-ID"]) for m in mails)
    assert max(ids.values()) == 1  # nothing sent twice, by anyone
    acks = to_clients(mails)
    assert len(acks) == count
    assert len({m.msg["Subject"] for m in acks}) == count
    kinds = Counter(m.msg["Subject"].split(":")[0] for m in mails
                    if m.rcpt_tos[0].endswith("@agency.test"))
    assert kinds["Due soon (first response)"] == count  # one warning per ticket
    # Ladder owner -> PM -> AM -> backup, nobody told twice: three mails per ticket.
    assert kinds["Overdue (first response)"] == 3 * count
    with env.session() as s:
        from desk.store.models import Event

        per_ticket = Counter(s.execute(select(Event.ticket_id, Event.kind).where(
            Event.kind.in_(("sla_warning", "escalated")))).all())
    assert set(per_ticket.values()) <= {1, 4}
    assert sum(1 for (_, k), n in per_ticket.items() if k == "sla_warning" and n == 1) == count
    assert sum(1 for (_, k), n in per_ticket.items() if k == "escalated" and n == 4) == count
    env.close()


def test_the_lease_moves_on_when_its_holder_dies(tmp_path: Path, imap: Dovecot,
                                                 smtp_capture: SmtpCapture,
                                                 pg_url: str) -> None:
    env = DeskEnv(tmp_path / "l", mailbox=imap_mailbox(imap), smtp=smtp_to(smtp_capture),
                  database_url=pg_url)
    daemons = [DaemonProcess(env) for _ in range(3)]
    try:
        imap.append(SUPPORT_USER, make_mail(subject="First"))
        wait_until(lambda: len(to_clients(smtp_capture.messages())) == 1, timeout=20)
        holder = next(d for d in daemons if "Before" not in d.output()
                      and "FETCH" in d.output())
        holder.kill()
        imap.append(SUPPORT_USER, make_mail(subject="Second"))
        wait_until(lambda: len(to_clients(smtp_capture.messages())) == 2, timeout=60)
    finally:
        for d in daemons:
            if d.proc.poll() is None:
                assert d.stop() == 0
    assert sorted(t["subject"] for t in env.tickets()) == ["First", "Second"]
    assert len(to_clients(smtp_capture.messages())) == 2
    env.close()
