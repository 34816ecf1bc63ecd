"""Shared set-up for the benchmarks: real Dovecot, a real SMTP sink in another process,
and a desk installation with 200 clients across all tiers. Figures are printed, never
asserted: benchmarks are not tests."""

from __future__ import annotations

import random
import resource
import statistics
import sys
import tempfile
from email.message import EmailMessage
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.servers import Dovecot, SmtpCapture  # noqa: E402
from tests.support import SUPPORT_USER, DeskEnv, imap_mailbox, smtp_to  # noqa: E402

TIERS = ["retainer", "project", "post_project", "hosting", "hosting_sla", "support_sla"]
CLIENTS = 200


def scratch(prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)  # Dovecot's mail processes run as another user and must get in
    return path


def seed_clients(env: DeskEnv, count: int = CLIENTS) -> None:
    rows = ["name,tier,domains,contacts,account_manager,project_manager,backup,"
            "hours_per_month,timezone"]
    for i in range(count):
        tier = TIERS[i % len(TIERS)]
        rows.append(f"Client {i:03d},{tier},client{i:03d}.test,,alice@agency.test,"
                    f"paul@agency.test,ben@agency.test,10,Europe/London")
    path = env.root / "clients-bench.csv"
    path.write_text("\n".join(rows) + "\n")
    env.desk("client", "import", str(path))


def bench_mail(i: int, rng: random.Random, clients: int = CLIENTS) -> bytes:
    """~3 KB of realistic text from a distinct sender at one of the clients."""
    client = rng.randrange(clients)
    m = EmailMessage()
    m["From"] = f"Person {i} <person{i}@client{client:03d}.test>"
    m["To"] = SUPPORT_USER
    m["Subject"] = rng.choice(["Contact form broken", "Update opening hours",
                               "Site is slow", "Add a blog post", "Invoice question",
                               "New team member photo", "Plugin update?"]) + f" ({i})"
    m["Message-ID"] = f"<bench-{i}-{rng.getrandbits(32):08x}@client{client:03d}.test>"
    m["Date"] = "Mon, 23 Nov 2026 10:00:00 +0000"
    words = ["please", "could", "you", "update", "the", "page", "when", "we", "noticed",
             "that", "our", "customers", "see", "an", "old", "price", "menu", "on", "phones"]
    body = "\n".join(" ".join(rng.choice(words) for _ in range(14)) for _ in range(35))
    m.set_content(f"Hello,\n\n{body}\n\nBest regards,\nPerson {i}\n")
    return m.as_bytes()


def servers(root: Path) -> tuple[Dovecot, SmtpCapture]:
    dovecot = Dovecot().start(root / "dovecot")
    capture = SmtpCapture().start(root / "smtp")
    return dovecot, capture


def make_env(root: Path, dovecot: Dovecot, capture: SmtpCapture, *,
             database_url: str | None = None, lmtp_port: int | None = None) -> DeskEnv:
    # Every notice is sent one by one, as before the per-staff cap existed: the figures
    # measure the message's path and compare with older versions (a capped backlog sends
    # one summary per staff member instead of most notices, far less mail).
    extra: dict[str, dict[str, object]] = {"acknowledgements": {"max_per_sender": 1000},
                                           "notices": {"max_per_staff": 1_000_000}}
    if lmtp_port:
        extra["intake"] = {"lmtp": {"listen": f"127.0.0.1:{lmtp_port}"}}
    env = DeskEnv(root / "desk", mailbox=False if lmtp_port else imap_mailbox(dovecot),
                  smtp=smtp_to(capture), database_url=database_url, extra=extra)
    seed_clients(env)
    return env


def percentiles(values: list[float]) -> str:
    if not values:
        return "no samples"
    qs = statistics.quantiles(values, n=100, method="inclusive") if len(values) > 1 else values * 99
    return (f"p50 {qs[49] * 1000:.0f} ms, p95 {qs[94] * 1000:.0f} ms, "
            f"p99 {qs[98] * 1000:.0f} ms, max {max(values) * 1000:.0f} ms (n={len(values)})")


def children_peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def children_cpu_seconds() -> float:
    """User + system CPU of the finished child processes (desk run --once, once it exited)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
