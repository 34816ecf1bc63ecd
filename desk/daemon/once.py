"""``desk run --once``: the intake part, and the summary it prints."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, field

from desk.inbox.intake import IngestResult, TransientError
from desk.inbox.sources import Source, SourceBusy
from desk.outbound.sender import SendReport
from desk.periodic import headline
from desk.words import plural
from desk.work.escalation import ClockReport

log = logging.getLogger("desk.daemon")


@dataclass(slots=True)
class RunSummary:
    ingested: int = 0
    new_tickets: int = 0
    duplicates: int = 0
    quarantined: int = 0
    sent: int = 0
    send_failures: int = 0
    clock: ClockReport = field(default_factory=ClockReport)
    reports: int = 0
    pruned: int = 0  # mails whose raw bytes retention deleted
    summaries: int = 0  # notice summaries queued (a flood: desk/work/notice_summary.py)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add_ingest(self, results: list[IngestResult]) -> None:
        for r in results:
            if r.outcome == "ticketed":
                self.ingested += 1
                self.new_tickets += r.new_ticket
            elif r.outcome == "duplicate":
                self.duplicates += 1
            elif r.outcome == "quarantined":
                self.quarantined += 1

    def add_send(self, report: SendReport) -> None:
        self.sent += report.sent
        self.send_failures += report.failed

    def line(self) -> str:
        c = self.clock
        return (f"ingested {self.ingested} ({plural(self.new_tickets, 'new ticket')}, "
                f"{plural(self.duplicates, 'duplicate')}, {self.quarantined} quarantined); "
                f"clock: {plural(c.warnings, 'warning')}, {plural(c.escalations, 'escalation')}, "
                f"{plural(c.nudges, 'nudge')}, {plural(c.eta_warnings, 'ETA warning')}"
                f"; {plural(self.reports, 'report')}; sent {self.sent}, {self.send_failures} failed"
                + (f"; {plural(self.summaries, 'notice summary', 'notice summaries')}"
                   if self.summaries else "")
                + (f"; raw bytes of {plural(self.pruned, 'old mail')} pruned"
                   if self.pruned else ""))


async def sync_sources(sources: list[Source], stop: threading.Event,
                       summary: RunSummary) -> None:
    """Take what every source has waiting. Trouble ends the intake, not the run: what is
    queued is still delivered and the clock still runs."""
    started = time.monotonic()
    for source in sources:
        try:
            summary.add_ingest(await asyncio.to_thread(source.sync_once, stop))
        except TransientError as exc:
            summary.errors.append(f"database unavailable: {exc}")
            return
        except SourceBusy:
            # Normal with several workers: another one is ingesting this mailbox right now.
            summary.notes.append("another desk process holds the mailbox lease: "
                                 "this run delivered and ran the clock only")
            return
        except Exception as exc:  # the source's own trouble (network, TLS, login, token)
            # One line, not a traceback: what is wrong is the server or the settings, and
            # the mail stays at the source for the next run.
            summary.errors.append(f"{source.name} intake: {headline(exc)}")
            log.error("%s intake failed: %s", source.name, headline(exc))
            return
    if sources:
        log.info("intake: %s in %.2f s", plural(summary.ingested + summary.duplicates
                                                 + summary.quarantined, "message"),
                 time.monotonic() - started)
