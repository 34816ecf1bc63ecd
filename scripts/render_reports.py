"""Look at the client report and the managers' digest as a reader sees them:

    .venv/bin/python scripts/render_reports.py [--out DIR]     (default /tmp/notes)

Builds a throwaway desk with eight weeks of history (scripts/sample_desk.py), queues a
weekly report for two clients and the digest through desk's own code, takes the HTML part
out of the composed mail (the bytes desk would send) and screenshots it with headless
Chromium, at a desktop width and at a phone's. Writes DIR/report-<client>.html/.png,
DIR/digest.html/.png and the -phone.png variants. Installs Debian's `chromium` with apt
when it is missing (as root).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from email import message_from_bytes, policy
from pathlib import Path

from sample_desk import DIGEST_AT, REPORT_AT, SampleDesk

CLIENTS = ("Bramble Bakery", "Granite Health")
# The flags a machine without network access needs: no first-run, sync or update traffic.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars")
SIZES = {"": (800, 1500), "-phone": (390, 2200)}


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.geteuid() != 0:
        sys.exit("chromium is missing: apt-get install chromium (as root), then run again")
    print("installing chromium with apt", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y", "-q",
           "--no-install-recommends", "chromium"]
    if subprocess.run(cmd, env=env).returncode != 0:  # fresh images have no package lists
        subprocess.run(["apt-get", "-o", "DPkg::Lock::Timeout=600", "update", "-q"],
                       env=env, check=True)
        subprocess.run(cmd, env=env, check=True)
    return shutil.which("chromium") or sys.exit("chromium did not install")


def screenshot(browser: str, html: Path, png: Path, size: tuple[int, int]) -> None:
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                        f"--screenshot={png}", f"--window-size={size[0]},{size[1]}",
                        html.as_uri()], check=True, capture_output=True, timeout=120)


def html_part(raw: bytes) -> str:
    part = message_from_bytes(raw, policy=policy.default).get_body(("html",))
    assert part is not None, "the mail has no HTML part"
    return str(part.get_content())


def sample_mail(desk: SampleDesk) -> dict[str, bytes]:
    """The composed report and digest mails, by the name their files get."""
    from sqlalchemy import select

    from desk.config.settings import load_settings
    from desk.reports.client_report import period_ending
    from desk.reports.scheduler import queue_digest, queue_report
    from desk.store.models import Client, Outbox, Staff

    settings = load_settings(os.environ["DESK_CONFIG"])
    out: dict[str, bytes] = {}
    with desk.session() as s:
        for name in CLIENTS:
            client = s.scalar(select(Client).where(Client.name == name))
            assert client is not None
            period = period_ending(client, settings, REPORT_AT)
            row = queue_report(s, settings, client, period, REPORT_AT,
                               key=f"render-report:{client.id}")
            assert row is not None, f"{name} has no contacts"
            out["report-" + name.lower().replace(" ", "-")] = row.raw
        queue_digest(s, settings, DIGEST_AT, "render-digest")
        alice = s.scalar(select(Staff).where(Staff.email == "alice@agency.example"))
        assert alice is not None
        digest = s.scalar(select(Outbox).where(Outbox.event_key == f"render-digest:{alice.id}"))
        assert digest is not None
        out["digest"] = digest.raw
        s.rollback()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/notes"))
    args = parser.parse_args()
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    browser = chromium()
    with tempfile.TemporaryDirectory(prefix="desk-sample-") as tmp:
        desk = SampleDesk(Path(tmp))
        desk.play_history()
        mails = sample_mail(desk)
    for name, raw in mails.items():
        (out / f"{name}.eml").write_bytes(raw)
        html = out / f"{name}.html"
        html.write_text(html_part(raw), encoding="utf-8")
        for suffix, size in SIZES.items():
            png = out / f"{name}{suffix}.png"
            screenshot(browser, html, png, size)
            print(png)


if __name__ == "__main__":
    main()
