"""The asyncio supervisor behind ``desk run``.

Intake runs in threads of its own (imapclient and the pipeline are blocking), LMTP on the
event loop; the sender delivers the outbox on the event loop over one reused SMTP
connection. On SIGTERM or SIGINT the daemon stops taking work, finishes what is in
flight, and exits 0.
"""

from desk.daemon.intakes import make_sources
from desk.daemon.once import RunSummary
from desk.daemon.supervisor import Daemon, SchemaOutOfDate, check_schema

__all__ = ["Daemon", "RunSummary", "SchemaOutOfDate", "check_schema", "make_sources"]
