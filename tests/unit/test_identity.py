"""Proof of who wrote a mail (desk/work/identity.py) and the bound reply addresses it rests
on (desk/routing/tokens.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from desk.config.settings import SecuritySection, Settings, parse_settings
from desk.inbox.message import Address, ParsedMessage
from desk.routing.tokens import (
    estimate_token_address,
    parse_token,
    ref_from_address,
    staff_token_address,
    token_address,
)
from desk.work.identity import authenticated, client_proof, forwarding_address, staff_proof
from tests.support import SECRET

OLD_SECRET = "an-older-secret-that-was-rotated-out-0123456789"
SUPPORT = "support@agency.test"


def _settings(tmp_path: Path, **security: Any) -> Settings:
    return parse_settings({
        "desk": {"address": SUPPORT, "secret": SECRET, "previous_secrets": [OLD_SECRET],
                 "database_url": f"sqlite:///{tmp_path / 'd.db'}"},
        "mailbox": {"source": "maildir", "path": str(tmp_path / "in")},
        "smtp": {"transport": "maildir", "path": str(tmp_path / "out")},
        "security": security,
    }, tmp_path)


def _msg(sender: str = "paul@agency.test", to: str = SUPPORT,
         results: list[str] | None = None) -> ParsedMessage:
    return ParsedMessage(message_id="m@x", sender=Address("", sender), to=[Address("", to)],
                         cc=[], subject="s", text_body="b",
                         headers={"authentication-results": results or []})


# -- tokens ---------------------------------------------------------------------------
def test_staff_and_client_addresses_differ_and_only_the_staffs_names_them() -> None:
    client = token_address(SUPPORT, SECRET, "12")
    paul = staff_token_address(SUPPORT, SECRET, "12", 7)
    assert client != paul
    token = parse_token(paul, SUPPORT)
    assert token is not None and token.kind == "staff" and token.holder == 7
    assert token.valid([SECRET]) and not token.valid(["another-secret"])
    # Changing the holder breaks the signature: Ben cannot use Paul's address.
    forged = paul.replace(".s7.", ".s8.")
    assert ref_from_address(forged, SUPPORT, SECRET) == ("12", False)


def test_an_estimate_address_is_valid_only_for_its_recipient() -> None:
    addr = estimate_token_address(SUPPORT, SECRET, "12", 5, "Carol@Client.test")
    token = parse_token(addr, SUPPORT)
    assert token is not None and token.kind == "estimate"
    assert token.valid([SECRET], recipient="carol@client.test")
    assert not token.valid([SECRET], recipient="dan@client.test")


def test_addresses_signed_with_a_previous_secret_still_thread(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    old = token_address(SUPPORT, OLD_SECRET, "3")
    assert ref_from_address(old, SUPPORT, s.desk.secrets) == ("3", True)
    assert ref_from_address(old, SUPPORT, s.desk.secret) == ("3", False)
    # New mail is signed with the current secret only.
    assert token_address(SUPPORT, s.desk.secret, "3") != old


# -- staff proof ----------------------------------------------------------------------
def test_a_reply_to_their_own_address_proves_the_staff_member(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    own = staff_token_address(SUPPORT, SECRET, "12", 7)
    assert staff_proof(_msg(to=own), 7, "paul@agency.test", "12", s).ok
    # Someone else's From on Paul's address, Paul's address on another ticket, the
    # client's address: none of them prove Paul.
    assert not staff_proof(_msg("ben@agency.test", own), 7, "paul@agency.test", "12", s).ok
    assert not staff_proof(_msg(to=own), 7, "paul@agency.test", "13", s).ok
    client = token_address(SUPPORT, SECRET, "12")
    assert not staff_proof(_msg(to=client), 7, "paul@agency.test", "12", s).ok


def test_the_forwarding_address_proves_a_forward(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    fwd = forwarding_address(s, 7)
    assert staff_proof(_msg(to=fwd), 7, "paul@agency.test", "0", s).ok
    assert not staff_proof(_msg(to=SUPPORT), 7, "paul@agency.test", "0", s).ok


def test_reply_address_only_ignores_the_mail_server(tmp_path: Path) -> None:
    s = _settings(tmp_path, staff_proof="reply_address", trusted_authserv_id="mx.agency.test")
    vouched = _msg(results=["mx.agency.test; dkim=pass header.d=agency.test"])
    assert not staff_proof(vouched, 7, "paul@agency.test", "12", s).ok


def test_require_authenticated_staff_still_means_authenticated_only(tmp_path: Path) -> None:
    s = _settings(tmp_path, require_authenticated_staff=True,
                  trusted_authserv_id="mx.agency.test")
    assert s.security.proof == "authenticated"
    own = staff_token_address(SUPPORT, SECRET, "12", 7)
    assert not staff_proof(_msg(to=own), 7, "paul@agency.test", "12", s).ok


# -- the receiving server's word ------------------------------------------------------
@pytest.mark.parametrize("header, ok", [
    ("mx.agency.test; dkim=pass header.d=agency.test", True),
    ("mx.agency.test; dkim=pass header.d=mail.agency.test", True),  # relaxed alignment
    ("mx.agency.test; dkim=pass header.d=other.test", False),
    ("mx.agency.test; spf=pass smtp.mailfrom=paul@agency.test", True),
    ("mx.agency.test; spf=pass smtp.mailfrom=bounce@other.test", False),
    ("mx.agency.test; dmarc=pass header.from=agency.test", True),
    ("mx.agency.test; dkim=fail header.d=agency.test", False),
    ("MX.Agency.Test 1; dkim=pass header.d=agency.test", True),
    ("evil.example; dkim=pass header.d=agency.test", False),
    ("mx.agency.test; this is not a valid header", False),
])
def test_topmost_trusted_header(tmp_path: Path, header: str, ok: bool) -> None:
    s = _settings(tmp_path, trusted_authserv_id="mx.agency.test")
    assert authenticated(_msg(results=[header]), ["agency.test"], s.security).ok is ok


# Microsoft's own documented format: no authserv-id.
MICROSOFT = ("spf=pass (sender IP is 40.107.22.52) smtp.mailfrom=agency.test; dkim=pass "
             "(signature was verified) header.d=agency.test;dmarc=pass action=none "
             "header.from=agency.test;compauth=pass reason=100")
MICROSOFT_FAIL = ("spf=fail (sender IP is 203.0.113.9) smtp.mailfrom=agency.test; dkim=none "
                  "(message not signed) header.d=none;dmarc=fail action=quarantine "
                  "header.from=agency.test;compauth=fail reason=000")


def test_microsoft_365_header_without_an_authserv_id(tmp_path: Path) -> None:
    s = _settings(tmp_path, receiving_server="microsoft365")
    assert authenticated(_msg(results=[MICROSOFT]), ["agency.test"], s.security).ok
    # The topmost is Exchange's: a passing header forged below a failing one is ignored.
    both = [MICROSOFT_FAIL, MICROSOFT]
    assert not authenticated(_msg(results=both), ["agency.test"], s.security).ok
    # Without the setting, a header with no authserv-id is nobody's word.
    plain = _settings(tmp_path, trusted_authserv_id="mx.agency.test")
    assert not authenticated(_msg(results=[MICROSOFT]), ["agency.test"], plain.security).ok


def test_a_clients_decision_is_proven_for_the_clients_own_domain(tmp_path: Path) -> None:
    s = _settings(tmp_path, trusted_authserv_id="mx.agency.test")
    bound = estimate_token_address(SUPPORT, SECRET, "12", 5, "carol@client.test")
    assert client_proof(_msg("carol@client.test", bound), "12", 5, ["client.test"], s).ok
    assert not client_proof(_msg("carol@client.test", token_address(SUPPORT, SECRET, "12")),
                            "12", 5, ["client.test"], s).ok
    vouched = _msg("carol@client.test",
                   results=["mx.agency.test; dkim=pass header.d=client.test"])
    assert client_proof(vouched, "12", 5, ["client.test"], s).ok
    assert not client_proof(vouched, "12", 5, ["other.test"], s).ok


# -- property: order and duplicates never help a forger ------------------------------
TRUSTED = "mx.agency.test"
HEADERS = st.sampled_from([
    f"{TRUSTED}; dkim=pass header.d=agency.test",
    f"{TRUSTED}; dkim=fail header.d=agency.test",
    f"{TRUSTED}; spf=softfail smtp.mailfrom=paul@agency.test",
    f"{TRUSTED}; dmarc=pass header.from=agency.test",
    f"{TRUSTED}; dkim=pass header.d=evil.test",
    "evil.example; dkim=pass header.d=agency.test",
    "other.relay; spf=pass smtp.mailfrom=paul@agency.test",
    f"{TRUSTED} garbage",
])
PASSING = {f"{TRUSTED}; dkim=pass header.d=agency.test",
           f"{TRUSTED}; dmarc=pass header.from=agency.test"}


@settings(max_examples=300, deadline=None)
@given(st.lists(HEADERS, max_size=6))
def test_only_the_topmost_trusted_header_can_authenticate(headers: list[str]) -> None:
    security = _SECURITY
    proven = authenticated(_msg(results=headers), ["agency.test"], security).ok
    trusted = [h for h in headers if h.split(";")[0].split()[0] == TRUSTED]
    assert proven == (bool(trusted) and trusted[0] in PASSING)


_SECURITY = SecuritySection(trusted_authserv_id=TRUSTED)
