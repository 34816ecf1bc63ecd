"""The text of every mail people read, as they read it: one golden file per template (and
per tier for the acknowledgement) in tests/golden/, plus the rules every text part keeps
whatever its context: lines of at most 72 columns (a link or an address longer than
that stands alone on its line, unbroken), never two blank lines in a row, and what a
person wrote (the client's message, a colleague's reply, an estimate's text) exactly as
they wrote it.

A changed template changes its golden file on purpose. Look at the new text, then
regenerate and review the diff:

    DESK_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/test_golden_mail.py
    git diff tests/golden/
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from desk.outbound.layout import WIDTH, wrap_text
from desk.outbound.render import render
from desk.work.acknowledge import TIER_TIPS
from desk.work.notices import COMMANDS

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
TEMPLATES = Path(__file__).resolve().parents[2] / "desk" / "templates"
UPDATE = os.environ.get("DESK_UPDATE_GOLDEN") == "1"

# Templates with golden files and layout checks of their own elsewhere.
NOT_HERE = {"report", "digest", "notice_summary"}

LONG_URL = "https://kb.agency.example/articles/keeping-wordpress-plugins-up-to-date-safely"
# What people wrote: kept line for line, however long the line.
CLIENT_TEXT = (
    "Hi team,\n\nthe contact form on /contact has not sent anything since the update this "
    "morning; customers tell us they get a white page after pressing Send.\n\n"
    "> On Mon, Paul wrote:\n> We updated the plugins on Monday evening, as agreed in the "
    "maintenance window, and everything looked fine afterwards.\n\nRosa")
STAFF_TEXT = (
    "Hi Rosa,\n\nthe form is fixed: a plugin update had reset the mail settings, and we have "
    "restored them and sent a test message from the live site.\n\nPaul")
ESTIMATE_TEXT = ("Build the newsletter template and test it in Outlook, Gmail and Apple "
                 "Mail on desktop and phone.\n- one template\n- two test rounds")

FEEDBACK = ("Still broken on the phone version of the site, and nobody called back as "
            "promised.")

ACK: dict[str, Any] = {
    "desk_name": "Agency Support", "ref": "1042", "subject": "The contact form sends nothing",
    "first_name": "Rosa", "client_name": "Elm Bakery", "tier": "retainer",
    "priority": "P2", "urgent": False, "owner_name": "Paul Smith", "workers": [],
    "when": "by 11:30 on Tuesday 1 December, your time", "target": "2 hours",
    "status": "new", "hours_per_month": 10.0, "recommendation": None,
}
STAFF: dict[str, Any] = {
    "desk_name": "Agency Support", "ref": "1042", "subject": "The contact form sends nothing",
    "staff_name": "Paul", "client": "Elm Bakery", "priority": "P2", "status": "open",
    "owner": "Paul Smith", "eta": None, "tier": "retainer",
}
FACTS: dict[str, Any] = {
    "ref": "1042", "subject": "The contact form sends nothing", "client": "Elm Bakery",
    "tier": "retainer", "priority": "P2", "status": "new", "owner": "Paul Smith",
    "owner_email": "paul@agency.test", "workers": ["Jo Junior"],
    "requester": "rosa@elmbakery.test", "first_response_due": "Tue 01 Dec 11:30 GMT",
    "next_update_due": None, "resolution_due": "Thu 03 Dec 17:00 GMT", "eta": None,
    "hours": {"used": 7.5, "allowance": 10.0, "left": 2.5},
}
NOTICE: dict[str, Any] = {
    "kind": "new", "stranger": False, "staff_name": "Paul", "from": "rosa@elmbakery.test",
    "from_name": "Rosa Elm", "message": CLIENT_TEXT, "message_html": None,
    "files": [{"index": 1, "name": "white-page.png", "type": "image/png", "size": "84 KB",
               "attached": True, "inline": False},
              {"index": 2, "name": "server-logs-since-monday.zip", "type": "application/zip",
               "size": "48 MB", "attached": False, "inline": False, "by_mail": True,
               "why": "over the 10 MiB a notice may carry",
               "command": "desk tickets attachment 1042 2 --out FILE"}],
    "facts": FACTS, "role": "owner",
    "reason": "rule 'retainer -> project manager': Paul Smith is Elm Bakery's project "
              "manager", "commands": COMMANDS, "desk_name": "Agency Support",
}
ESTIMATE: dict[str, Any] = {
    "ref": "1042", "subject": "Newsletter template", "desk_name": "Agency Support",
    "first_name": "Rosa", "text": ESTIMATE_TEXT, "hours": "3h", "cost": "£270",
    "tier": "retainer", "author": "Paul Smith",
    "allowance": {"allowance": "10h", "used": "6h", "planned": "2h", "after": "11h",
                  "over": True},
}
DECISION: dict[str, Any] = {
    "staff_name": "Paul", "sender": "rosa@elmbakery.test", "ref": "1042", "hours": "3h",
    "cost": "£270", "words": "Yes, approved, thank you. Please start after the sale "
    "weekend, we cannot have the shop down before then.", "desk_name": "Agency Support",
}

# case -> (template, context, the context's texts that must come out exactly as written)
CASES: dict[str, tuple[str, dict[str, Any], tuple[str, ...]]] = {
    # One acknowledgement per tier, each with a different optional part left out.
    "ack_retainer": ("ack_retainer", ACK, ()),
    "ack_project": ("ack_project", {
        **ACK, "tier": "project", "workers": ["Jo Junior", "Sam Senior"],
        "recommendation": {"tip": "Sending a screenshot of the page helps us see it as you "
                                  "do.", "link": None}}, ()),
    "ack_post_project": ("ack_post_project", {
        **ACK, "tier": "post_project", "first_name": "Dr. Elm", "owner_name": None,
        "recommendation": {"tip": TIER_TIPS["post_project"], "link": None}}, ()),
    "ack_hosting": ("ack_hosting", {
        **ACK, "tier": "hosting", "when": "within 3 working days", "target": None,
        "recommendation": {"tip": TIER_TIPS["hosting"], "link": None}}, ()),
    "ack_hosting_sla": ("ack_hosting_sla", {
        **ACK, "tier": "hosting_sla", "urgent": True, "priority": "P1",
        "when": "by 10:30 today, your time", "target": "1 hour",
        "recommendation": {"tip": "Keep your plugins up to date: most break-ins use "
                                  "holes that an update has already closed.",
                           "link": LONG_URL}}, ()),
    "ack_support_sla": ("ack_support_sla", {
        **ACK, "tier": "support_sla", "first_name": "",
        "subject": "Checkout page shows an error for customers paying by card since the "
                   "price update this morning"}, ()),
    "ack_unknown": ("ack_unknown", {
        **ACK, "tier": None, "client_name": None, "owner_name": None, "target": None,
        "when": "within 1 working day", "hours_per_month": None}, ()),
    "allowance_alert": ("allowance_alert", {
        **STAFF, "staff_name": "Alice", "pct": 80, "used_pct": 83, "used": 2.5,
        "allowance": 3.0, "left": 0.5, "month": "2026-11"}, ()),
    "allowance_alert_over": ("allowance_alert", {
        **STAFF, "staff_name": "Alice", "pct": 100, "used_pct": 120, "used": 12.0,
        "allowance": 10.0, "left": -2.0, "month": "2026-11"}, ()),
    "approval_request": ("approval_request", {
        **STAFF, "junior": "Jo Junior", "junior_email": "jo@agency.test", "body": STAFF_TEXT,
        "held_id": 7, "to": "rosa@elmbakery.test", "files": ["settings.png", "log.txt"]},
        (STAFF_TEXT,)),
    "attachments": ("attachments", {
        **STAFF, "part": 1, "parts": 2, "cap": "10 MiB",
        "files": [{"index": 1, "name": "checkout-error-on-the-payment-page.png",
                   "type": "image/png", "size": "184 KB"}],
        "left": [{"index": 2, "name": "site-backup.zip", "type": "application/zip",
                  "size": "48 MB", "why": "over the 10 MiB a mail may carry",
                  "command": "desk tickets attachment 1042 2 --out FILE"}]}, ()),
    "decision_confirm": ("decision_confirm", {
        **DECISION, "verdict": "approve", "why": "the answer came to the support address, "
        "not to the estimate's own reply address"}, (DECISION["words"],)),
    "estimate": ("estimate", ESTIMATE, (ESTIMATE_TEXT,)),
    "estimate_support_sla": ("estimate", {
        **ESTIMATE, "tier": "support_sla", "cost": None,
        "allowance": {**ESTIMATE["allowance"], "after": "9h", "over": False}},
        (ESTIMATE_TEXT,)),
    "estimate_decision": ("estimate_decision", {**DECISION, "verdict": "decline"},
                          (DECISION["words"],)),
    "estimate_reminder": ("estimate_reminder", {**STAFF, "first_name": "Mr. van der Berg"},
                          ()),
    "eta_warning": ("eta_warning", {**STAFF, "eta": "2026-12-04"}, ()),
    "feedback_alert": ("feedback_alert", {
        **STAFF, "staff_name": "Alice", "rating": 3, "resolved": "no", "threshold": 6,
        "comment": FEEDBACK}, (FEEDBACK,)),
    "feedback_request": ("feedback_request", {**STAFF, "first_name": "Rosa"}, ()),
    "impersonation": ("impersonation", {
        **STAFF, "sender": "paul@agency-mail.example",
        "why": "no DKIM signature and SPF failed for agency-mail.example"}, ()),
    "notice": ("notice", NOTICE, (CLIENT_TEXT,)),
    "notice_reply_from_a_stranger": ("notice", {
        **NOTICE, "kind": "reply", "stranger": True, "from": "someone@elsewhere.example",
        "from_name": "Sam Else", "message": "Is this still available?", "files": [],
        "facts": {**FACTS, "tier": "support_sla", "client": "Elm Bakery"}}, ()),
    "refused": ("refused", {
        **STAFF, "reasons": ["#assign jo@agency.test: #assign is for account managers and "
                             "project managers; you are a senior engineer"],
        "commands": COMMANDS}, ()),
    "rejected": ("rejected", {**STAFF, "rejected_by": "paul@agency.test",
                              "reason": "Please explain the cause, not only the fix."}, ()),
    "relay": ("relay", {**STAFF, "body": STAFF_TEXT, "author_name": "Paul Smith"},
              (STAFF_TEXT,)),
    "sla_escalation": ("sla_escalation", {
        **STAFF, "deadline": "first response", "due": "Tue 01 Dec 11:30 GMT", "step": 2,
        "steps": 3, "role": "account manager"}, ()),
    "sla_nudge": ("sla_nudge", {**STAFF, "p1": False, "silent_hours": 1,
                                "eta": "2026-12-04"}, ()),
    "sla_warning": ("sla_warning", {
        **STAFF, "deadline": "first response", "due": "Tue 01 Dec 11:30 GMT",
        "minutes_left": 30}, ()),
    "status_update": ("status_update", {**STAFF, "first_name": "Rosa",
                                        "eta": "Friday 4 December"}, ()),
}


def _text_templates() -> set[str]:
    return {p.name.removesuffix(".txt.j2") for p in TEMPLATES.glob("*.txt.j2")}


def test_every_text_template_has_a_golden_case() -> None:
    # A new template gets its case here, and with it the layout checks below.
    covered = {template for template, _, _ in CASES.values()} | {"ack_base"}
    assert _text_templates() - NOT_HERE - covered == set()


def _render(case: str) -> str:
    template, context, _ = CASES[case]
    return render(f"{template}.txt.j2", context)


def _flat(text: str) -> str:
    """What the text says, whatever its line breaks."""
    return " ".join(text.split())


@pytest.mark.parametrize("case", sorted(CASES))
def test_mail_text_is_its_golden_file(case: str) -> None:
    text = _render(case)
    golden = GOLDEN / f"{case}.txt"
    if UPDATE:
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text, encoding="utf-8")
    assert golden.exists(), f"no {golden.name}: run with DESK_UPDATE_GOLDEN=1"
    assert text == golden.read_text(encoding="utf-8")


@pytest.mark.parametrize("case", sorted(CASES))
def test_mail_text_is_laid_out_for_reading(case: str) -> None:
    text = _render(case)
    _, _, written = CASES[case]
    theirs = {line for block in written for line in block.splitlines()}
    for block in written:
        # What a person wrote is there exactly as they wrote it, lines and all.
        assert block in text or all(f"  {line}".rstrip() in text.splitlines()
                                    for line in block.splitlines())
    for line in text.splitlines():
        if line.strip().strip('"') in theirs:
            continue
        # Longer only when one unbreakable word (a link) stands alone on its line.
        assert len(line) <= WIDTH or len(line.split()) == 1, line
    assert "\n\n\n" not in text
    assert not text.startswith("\n") and text.endswith("\n") and not text.endswith("\n\n")


def test_a_link_is_never_broken() -> None:
    text = _render("ack_hosting_sla")
    assert LONG_URL in text.splitlines()


def test_an_acknowledgement_without_a_tip_leaves_no_hole() -> None:
    text = _render("ack_retainer")
    assert "so nothing eats into your hours unexpectedly.\n\nTo add anything" in text


def test_the_plan_paragraph_is_wrapped_like_the_rest() -> None:
    for tier in ("retainer", "project", "post_project", "hosting", "hosting_sla",
                 "support_sla", "unknown"):
        lines = [line for line in _render(f"ack_{tier}").splitlines() if line != LONG_URL]
        assert max(len(line) for line in lines) <= WIDTH, tier
    assert "Work on this comes out of your monthly retainer of 10 hours. If it needs\n" \
           "more than a quick fix" in _render("ack_retainer")


def test_hours_are_labelled_by_the_clients_plan() -> None:
    assert "  Retainer:           7.5 h of 10.0 h used this month" in _render("notice")
    stranger = _render("notice_reply_from_a_stranger")
    assert "  Support hours:      7.5 h of 10.0 h used this month" in stranger
    assert "Retainer" not in stranger
    assert "Your support hours this month: 6h used" in _render("estimate_support_sla")
    assert "Your retainer this month: 6h used" in _render("estimate")


def test_a_reply_from_a_stranger_says_so_first() -> None:
    text = _render("notice_reply_from_a_stranger")
    assert _flat(text).startswith("Hi Paul, Careful, not the client: Sam Else "
                                  "<someone@elsewhere.example> is none of Elm Bakery's people")
    assert "Careful" not in _render("notice")
    html = render("notice.html.j2", CASES["notice_reply_from_a_stranger"][1])
    assert html.index("Careful, not the client") < html.index("replied on")


def test_the_allowance_alert_gives_the_real_share() -> None:
    assert "Elm Bakery has used 83% of this month's hours (2026-11): 2.5 h of 3 h, 0.5 h " \
           "left." in _flat(_render("allowance_alert"))
    assert "120% of this month's hours (2026-11): 12 h of 10 h, 2 h over" in \
           _flat(_render("allowance_alert_over"))


def test_wrapping_keeps_quotes_links_and_columns() -> None:
    quoted = "> " + "someone else's words " * 5
    assert wrap_text(quoted) == quoted
    row = "  Looking after it: " + "Paul Smith with Jo Junior, Sam Senior and Ben Backup " * 2
    first, *rest = wrap_text(row).splitlines()
    assert first.startswith("  Looking after it: Paul") and rest
    assert all(line.startswith(" " * 20) and line[20] != " " for line in rest)
    assert wrap_text("a\n\n\n\nb\n") == "a\n\nb\n"
