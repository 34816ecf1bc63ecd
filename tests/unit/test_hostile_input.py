"""Hostile and broken mail, generated and mutated from the real corpus, through parsing
and the whole pipeline: nothing crashes, every input is ticketed or quarantined."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from desk.config.settings import Settings
from desk.inbox.parse import ParseError, parse_message
from desk.store.db import make_engine, session_factory, upgrade
from desk.store.models import utcnow
from desk.work.ingest import Ingestor

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "corpus"
SEEDS = [p.read_bytes() for p in sorted(CORPUS.rglob("*.eml"))]
HEADERS = [b"From", b"To", b"Cc", b"Subject", b"Message-ID", b"In-Reply-To", b"References",
           b"Content-Type", b"Content-Transfer-Encoding", b"Content-Disposition", b"Date",
           b"Auto-Submitted", b"Return-Path", b"MIME-Version"]
NASTY = [b"=?utf-8?q?=0D=0ABcc:_x@y.z?=", b"\x00\xff\xfe", b"multipart/mixed; boundary=",
         b'"\\"', b"<<<>>>", b"=?x-unknown?b?////?=", b"\r\n\r\n", b"\n.\n", b"base64",
         b"message/rfc822", b"text/html; charset=\"utf-7\"", "é😀".encode(), b"A" * 2000,
         b"begin 644 x\nM\nend\n", b"<script>alert(1)</script>", b"\r\n--", b"%s%n"]

mutation = st.one_of(
    st.tuples(st.just("cut"), st.floats(0, 1)),
    st.tuples(st.just("insert"), st.floats(0, 1), st.sampled_from(NASTY)),
    st.tuples(st.just("header"), st.sampled_from(HEADERS), st.sampled_from(NASTY)),
    st.tuples(st.just("flip"), st.floats(0, 1), st.integers(0, 255)),
    st.tuples(st.just("drop_line"), st.floats(0, 1)),
)


def mutate(raw: bytes, steps: list[tuple]) -> bytes:  # type: ignore[type-arg]
    for step in steps:
        pos = int(step[1] * len(raw)) if isinstance(step[1], float) else 0
        if step[0] == "cut":
            raw = raw[:pos]
        elif step[0] == "insert":
            raw = raw[:pos] + step[2] + raw[pos:]
        elif step[0] == "header":
            raw = step[1] + b": " + step[2] + b"\r\n" + raw
        elif step[0] == "flip" and raw:
            pos = min(pos, len(raw) - 1)
            raw = raw[:pos] + bytes([step[2]]) + raw[pos + 1:]
        elif step[0] == "drop_line":
            lines = raw.split(b"\n")
            if lines:
                del lines[min(int(step[1] * len(lines)), len(lines) - 1)]
            raw = b"\n".join(lines)
    return raw


hostile = st.builds(mutate, st.sampled_from(SEEDS), st.lists(mutation, max_size=6))


@given(hostile)
@settings(max_examples=300, deadline=None)
def test_parsing_never_crashes(raw: bytes) -> None:
    try:
        msg = parse_message(raw, max_attachment_bytes=4096)
    except ParseError:
        return
    # Parsed text can never carry a header break into our mail.
    assert "\n" not in msg.subject and "\r" not in msg.subject
    if msg.sender is not None:
        assert "\n" not in msg.sender.name and "\r" not in msg.sender.name
    if msg.html_body:
        assert "<script" not in msg.html_body.lower()


@pytest.fixture(scope="module")
def ingestor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ingestor]:
    from desk.config.settings import parse_settings
    from desk.store.directory import ClientSpec, add_staff, upsert_client
    from tests.support import SECRET

    root = tmp_path_factory.mktemp("hostile")
    cfg: Settings = parse_settings({
        "desk": {"address": "support@agency.test", "secret": SECRET,
                 "database_url": f"sqlite:///{root / 'desk.db'}"},
        "mailbox": {"source": "maildir", "path": str(root / "in")},
        "smtp": {"transport": "maildir", "path": str(root / "out")},
    }, root)
    engine = make_engine(cfg.database_url)
    upgrade(engine)
    factory = session_factory(engine)
    with factory() as s:
        add_staff(s, "alice@agency.test", "Alice", "account_manager")
        upsert_client(s, ClientSpec("Client", "support_sla", ["client.test"]))
        s.commit()
    yield Ingestor(factory, cfg, utcnow)
    engine.dispose()


_counter = itertools.count()


@given(hostile)
@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_the_whole_pipeline_tickets_or_quarantines_everything(ingestor: Ingestor,
                                                              raw: bytes) -> None:
    result = ingestor.ingest(f"fuzz:{next(_counter)}", raw, source="fuzz")
    assert result.outcome in ("ticketed", "duplicate", "quarantined")
    if result.outcome == "quarantined":
        assert result.reason
