"""Full-text search over tickets: the words of their subjects and of their mail.

The index is the database's own, built by migration 0010 from the mail already stored
and kept in step by the database itself, inside whatever transaction writes the mail (the
pipeline's, a privacy erasure's), so no code path can forget it:

* SQLite: two FTS5 tables with external content (they hold the index, not a second
  copy of the text): ``message_search`` over the view ``message_search_source`` (the
  messages worth searching) and ``ticket_search`` over ``tickets.subject``. Triggers on
  ``messages`` and ``tickets`` add, change and remove their entries. Tokenizer: Porter
  stemming over unicode61 without diacritics ("printers" finds "printing", "cafe" finds
  "café").
* PostgreSQL: GIN expression indexes on ``to_tsvector('english', ...)`` of the same
  columns (``ix_messages_search``, ``ix_tickets_search``); the server keeps them current.

Searched mail: everything that came in, and what staff wrote to clients; not the desk's
own mail (acknowledgements, notices, escalations: boilerplate, or copies of mail that is
indexed already), which would make every ticket match "request".

A search term is never handed to the engine as query syntax: each becomes a quoted FTS5
string or a ``phraseto_tsquery``, so no user text can cause a syntax error.

Neither SQLite's free pages nor an FTS5 segment forget on their own: a deleted entry is a
tombstone until its segment is merged. ``forget_removed_text`` merges them all, for a
privacy erasure (``desk/work/privacy.py``).

A batch migration that rebuilds ``messages`` or ``tickets`` on SQLite (``batch_alter_table``
copies the table and drops the old one) drops the triggers with it: such a migration must
create them again (``SQLITE_TRIGGERS`` of migration 0010); ``tests/integration/
test_ticket_search.py`` fails otherwise.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

# The objects migration 0010 creates outside the models: schema comparisons leave them out.
SEARCH_TABLES = ("message_search", "ticket_search")
SEARCH_VIEW = "message_search_source"
POSTGRES_INDEXES = ("ix_messages_search", "ix_tickets_search")
# What the snippet marks as matched; the views turn these into bold or **word**.
MARK_START, MARK_END = "\x02", "\x03"
_ELLIPSIS = "…"


def is_search_object(name: str | None) -> bool:
    """The search index's own tables (with FTS5's shadow tables), view and indexes."""
    if name is None:
        return False
    return (name == SEARCH_VIEW or name in POSTGRES_INDEXES
            or any(name == t or name.startswith(t + "_") for t in SEARCH_TABLES))


def include_in_schema_compare(name: str | None, type_: str, _parents: Any) -> bool:
    """Alembic's ``include_name`` hook: compare everything but the search index."""
    return not (type_ in ("table", "index") and is_search_object(name))


@dataclass(frozen=True)
class Term:
    """One thing every match must contain: a word, a "quoted phrase", or a word* prefix."""

    text: str
    prefix: bool = False

    def __str__(self) -> str:
        shown = f'"{self.text}"' if " " in self.text else self.text
        return shown + ("*" if self.prefix else "")


_TOKEN = re.compile(r'"([^"]*)"?|(\S+)')


# Each term is one compound SELECT arm; SQLite allows 500 of them. Nobody searches with more
# than a few words: past this, a pasted paragraph is a mistake better said than run.
MAX_TERMS = 32


class TooManyTerms(ValueError):
    """A search of more words than MAX_TERMS."""


def parse_query(query: str) -> list[Term]:
    """The user's words as terms. Nothing is syntax but double quotes (a phrase) and a
    trailing ``*`` (a prefix); a term with no letter or digit in it finds nothing in any
    ticket and is left out rather than making every search empty."""
    terms: list[Term] = []
    # Control characters are no words; NUL would even end FTS5's reading of the string.
    query = "".join(" " if unicodedata.category(ch)[0] == "C" else ch for ch in query)
    for phrase, word in _TOKEN.findall(query):
        raw = phrase if phrase else word
        prefix = not phrase and raw.endswith("*")
        raw = raw.rstrip("*") if prefix else raw
        cleaned = " ".join(raw.split())
        if any(ch.isalnum() for ch in cleaned) and Term(cleaned, prefix) not in terms:
            terms.append(Term(cleaned, prefix))
    if len(terms) > MAX_TERMS:
        raise TooManyTerms(f"{len(terms)} words to search for: at most {MAX_TERMS} (put a "
                           "passage you are looking for in double quotes: one phrase)")
    return terms


def fts5_string(term: Term) -> str:
    """The term as an FTS5 string: quoted, so AND, NEAR, ``:``, ``-`` and the rest are
    words; the tokenizer then splits it as it split the mail."""
    quoted = '"' + term.text.replace('"', '""') + '"'
    return quoted + " *" if term.prefix else quoted


def _pg_lexemes(term: Term) -> str:
    # A prefix for to_tsquery: every word quoted as a lexeme (only \w inside, so the
    # quotes cannot be broken out of), the last one a prefix.
    words = re.findall(r"\w+", term.text)
    return " <-> ".join(f"'{w}'" for w in words) + ":*"


@dataclass(frozen=True)
class Hit:
    """A matching ticket: its best-matching message (None: the ticket's subject) and how
    well it matched (higher is better; comparable within one search only)."""

    ticket_id: int
    message_id: int | None
    score: float


def is_sqlite(session: Session) -> bool:
    return session.get_bind().dialect.name == "sqlite"


def search(session: Session, terms: Sequence[Term]) -> list[Hit]:
    """Every ticket containing all ``terms`` (each in its subject or in any of its
    searched messages), best first, then newest first. A ticket scores as its best match;
    its message is the best-matching mail, even when the ticket's subject matched better
    (the subject is shown anyway: the mail says more)."""
    if not terms:
        return []
    if is_sqlite(session):
        messages, subjects = _sqlite_hits(session, terms)
        flip = -1.0  # bm25: lower is better
    else:
        terms = _pg_meaningful(session, terms)
        if not terms:
            return []
        messages, subjects = _pg_hits(session, terms)
        flip = 1.0
    best: dict[int, Hit] = {tid: Hit(tid, mid, flip * score) for tid, mid, score in messages}
    for tid, score in subjects:
        found = best.get(tid)
        if found is None or flip * score > found.score:
            best[tid] = Hit(tid, found.message_id if found else None, flip * score)
    return sorted(best.values(), key=lambda h: (-h.score, -h.ticket_id))


# -- SQLite: FTS5 --------------------------------------------------------------------

# Subject words weigh more: a ticket called "Printer broken" is about printers more than
# one whose third mail mentions a printer.
_SUBJECT_WEIGHT = 3.0


Rows = tuple[list[tuple[int, int, float]], list[tuple[int, float]]]


def _sqlite_hits(session: Session, terms: Sequence[Term]) -> Rows:
    """(ticket, its best message, score) and (ticket, score of its subject)."""
    params: dict[str, Any] = {f"t{i}": fts5_string(t) for i, t in enumerate(terms)}
    params["any"] = " OR ".join(fts5_string(t) for t in terms)
    # One set of tickets per term, intersected: the words may be in different mails of
    # the ticket. Each operand is a plain SELECT, so SQLite's left-to-right compound
    # evaluation is the intended one.
    matched = " INTERSECT ".join(
        f"SELECT tid FROM (SELECT m.ticket_id AS tid FROM message_search "
        f"JOIN messages m ON m.id = message_search.rowid WHERE message_search MATCH :t{i} "
        f"UNION SELECT rowid FROM ticket_search WHERE ticket_search MATCH :t{i})"
        for i in range(len(terms)))
    # With a single min(), SQLite takes the bare column (the message) from the row
    # holding the minimum.
    # bm25() cannot stand in an aggregate: the hits are materialized first.
    messages = f"""
        WITH matched(tid) AS ({matched}),
        hits AS MATERIALIZED (
            SELECT m.ticket_id AS tid, message_search.rowid AS mid,
                   bm25(message_search, {_SUBJECT_WEIGHT}, 1.0) AS score
            FROM message_search JOIN messages m ON m.id = message_search.rowid
            WHERE message_search MATCH :any AND m.ticket_id IN (SELECT tid FROM matched))
        SELECT tid, mid, min(score) FROM hits GROUP BY tid"""
    subjects = f"""
        WITH matched(tid) AS ({matched})
        SELECT rowid, {_SUBJECT_WEIGHT} * bm25(ticket_search) FROM ticket_search
        WHERE ticket_search MATCH :any AND rowid IN (SELECT tid FROM matched)"""
    return ([(int(t), int(m), float(s)) for t, m, s in session.execute(text(messages), params)],
            [(int(t), float(s)) for t, s in session.execute(text(subjects), params)])


def _sqlite_snippet(session: Session, hit: Hit, any_query: str, words: int) -> str:
    marks = {"a": MARK_START, "b": MARK_END, "e": _ELLIPSIS, "n": words, "q": any_query}
    if hit.message_id is not None:
        # The body's best passage (its beginning when only the subject matched: the row
        # shows the subject already); the subject's when the body is empty (erased).
        row = session.execute(text(
            "SELECT snippet(message_search, 1, :a, :b, :e, :n), "
            "snippet(message_search, 0, :a, :b, :e, :n) FROM message_search "
            "WHERE message_search MATCH :q AND rowid = :id"),
            {**marks, "id": hit.message_id}).one_or_none()
        if row is not None:
            return str(row[0] if (row[0] or "").strip() else row[1] or "")
    row = session.execute(text(
        "SELECT snippet(ticket_search, 0, :a, :b, :e, :n) FROM ticket_search "
        "WHERE ticket_search MATCH :q AND rowid = :id"),
        {**marks, "id": hit.ticket_id}).one_or_none()
    return str(row[0]) if row is not None else ""


# -- PostgreSQL: tsvector ------------------------------------------------------------

# Written exactly as in the expression indexes of migration 0010, or the planner does not
# use them.
_PG_MESSAGE_DOC = "to_tsvector('english'::regconfig, subject || ' ' || body_text)"
_PG_MESSAGE_SEARCHED = "(direction = 'in' OR NOT auto_generated)"
_PG_TICKET_DOC = "to_tsvector('english'::regconfig, subject)"


def _pg_query(term: Term, param: str) -> str:
    if term.prefix:
        return f"to_tsquery('english'::regconfig, :{param})"
    return f"phraseto_tsquery('english'::regconfig, :{param})"


def _pg_param(term: Term) -> str:
    return _pg_lexemes(term) if term.prefix else term.text


def _pg_meaningful(session: Session, terms: Sequence[Term]) -> list[Term]:
    """Terms PostgreSQL can search for: "the" or "and" alone is no lexeme in the 'english'
    configuration, and one such term would otherwise make every search empty."""
    kept = []
    for term in terms:
        if term.prefix and not re.search(r"\w", term.text):
            continue
        nodes = session.execute(text(f"SELECT numnode({_pg_query(term, 'q')})"),
                                {"q": _pg_param(term)}).scalar()
        if nodes:
            kept.append(term)
    return kept


def _pg_hits(session: Session, terms: Sequence[Term]) -> Rows:
    params: dict[str, Any] = {f"t{i}": _pg_param(t) for i, t in enumerate(terms)}
    queries = [_pg_query(t, f"t{i}") for i, t in enumerate(terms)]
    any_query = " || ".join(f"({q})" for q in queries)
    matched = " INTERSECT ".join(
        f"SELECT tid FROM (SELECT ticket_id AS tid FROM messages WHERE {_PG_MESSAGE_SEARCHED} "
        f"AND {_PG_MESSAGE_DOC} @@ {q} UNION SELECT id FROM tickets "
        f"WHERE {_PG_TICKET_DOC} @@ {q}) AS s{i}"
        for i, q in enumerate(queries))
    head = f"WITH matched AS ({matched}), q AS (SELECT {any_query} AS query)"
    messages = f"""{head}
        SELECT DISTINCT ON (m.ticket_id) m.ticket_id, m.id,
               ts_rank(setweight(to_tsvector('english'::regconfig, m.subject), 'A')
                       || to_tsvector('english'::regconfig, m.body_text), q.query) AS score
        FROM messages m, q
        WHERE {_PG_MESSAGE_SEARCHED} AND {_PG_MESSAGE_DOC} @@ q.query
          AND m.ticket_id IN (SELECT tid FROM matched)
        ORDER BY m.ticket_id, score DESC, m.id"""
    subjects = f"""{head}
        SELECT t.id, ts_rank(setweight({_PG_TICKET_DOC}, 'A'), q.query) FROM tickets t, q
        WHERE {_PG_TICKET_DOC} @@ q.query AND t.id IN (SELECT tid FROM matched)"""
    return ([(int(t), int(m), float(s)) for t, m, s in session.execute(text(messages), params)],
            [(int(t), float(s)) for t, s in session.execute(text(subjects), params)])


def _pg_snippet(session: Session, hit: Hit, terms: Sequence[Term], words: int) -> str:
    params: dict[str, Any] = {f"t{i}": _pg_param(t) for i, t in enumerate(terms)}
    any_query = " || ".join(f"({_pg_query(t, f't{i}')})" for i, t in enumerate(terms))
    options = (f"StartSel={MARK_START}, StopSel={MARK_END}, MaxWords={words}, "
               f"MinWords={max(3, words // 2)}, ShortWord=2, MaxFragments=1")
    params["options"] = options
    if hit.message_id is not None:
        row = session.execute(text(
            f"SELECT ts_headline('english'::regconfig, body_text, {any_query}, :options), "
            f"ts_headline('english'::regconfig, subject, {any_query}, :options) "
            "FROM messages WHERE id = :id"), {**params, "id": hit.message_id}).one_or_none()
        if row is not None:
            return str(row[0] if (row[0] or "").strip() else row[1] or "")
    row = session.execute(text(
        f"SELECT ts_headline('english'::regconfig, subject, {any_query}, :options) "
        "FROM tickets WHERE id = :id"), {**params, "id": hit.ticket_id}).one_or_none()
    return str(row[0]) if row is not None else ""


def snippets(session: Session, hits: Sequence[Hit], terms: Sequence[Term],
             words: int = 16) -> list[str]:
    """For each hit, the passage of its message (or its ticket's subject) around the
    matched words, on one line, matches between ``MARK_START`` and ``MARK_END``."""
    if is_sqlite(session):
        query = " OR ".join(fts5_string(t) for t in terms)
        found = [_sqlite_snippet(session, hit, query, words) for hit in hits]
    else:
        kept = _pg_meaningful(session, terms) if hits else []
        found = [_pg_snippet(session, hit, kept, words) for hit in hits] if kept \
            else ["" for _ in hits]
    return [" ".join(text.split()) for text in found]


def forget_removed_text(session: Session) -> None:
    """Merge the search index into one segment, so entries of deleted or changed text are
    gone from the file and not only marked deleted. SQLite only: PostgreSQL's index
    entries go with their rows, when VACUUM (or autovacuum) removes those. Costs a rewrite
    of the index (under a second for some thousand tickets): for erasures, not every write."""
    if not is_sqlite(session):
        return
    for name in SEARCH_TABLES:
        session.execute(text(f"INSERT INTO {name}({name}) VALUES ('optimize')"))
