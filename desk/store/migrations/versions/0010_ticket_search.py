"""ticket search: the words of tickets' subjects and mail, indexed (desk tickets search)

SQLite: FTS5 tables with external content (``message_search``, ``ticket_search``) kept in
step by triggers; PostgreSQL: GIN indexes on the 'english' text-search vectors. Both are
filled from the mail already stored. See desk/store/search.py.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 10:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# The messages worth searching: everything that came in and what staff wrote; not the
# desk's own mail (acknowledgements, notices: boilerplate or copies).
SEARCHED = "(direction = 'in' OR NOT auto_generated)"
TOKENIZER = "porter unicode61 remove_diacritics 2"

SQLITE_TABLES = [
    f"CREATE VIEW message_search_source AS SELECT id, subject, body_text FROM messages "
    f"WHERE {SEARCHED}",
    "CREATE VIRTUAL TABLE message_search USING fts5(subject, body_text, "
    f"content='message_search_source', content_rowid='id', tokenize='{TOKENIZER}')",
    "CREATE VIRTUAL TABLE ticket_search USING fts5(subject, content='tickets', "
    f"content_rowid='id', tokenize='{TOKENIZER}')",
]

# External content: the index holds no text, so a change must tell it the old words to
# take out ('delete' with the values indexed) and the new ones to put in. Only changes
# of the indexed words reach the index: status changes and the like cost nothing.
SQLITE_TRIGGERS = [
    """CREATE TRIGGER message_search_insert AFTER INSERT ON messages
    WHEN new.direction = 'in' OR NOT new.auto_generated BEGIN
        INSERT INTO message_search(rowid, subject, body_text)
        VALUES (new.id, new.subject, new.body_text);
    END""",
    """CREATE TRIGGER message_search_delete AFTER DELETE ON messages
    WHEN old.direction = 'in' OR NOT old.auto_generated BEGIN
        INSERT INTO message_search(message_search, rowid, subject, body_text)
        VALUES ('delete', old.id, old.subject, old.body_text);
    END""",
    """CREATE TRIGGER message_search_update
    AFTER UPDATE OF subject, body_text, direction, auto_generated ON messages
    WHEN old.subject IS NOT new.subject OR old.body_text IS NOT new.body_text
        OR old.direction IS NOT new.direction OR old.auto_generated IS NOT new.auto_generated
    BEGIN
        INSERT INTO message_search(message_search, rowid, subject, body_text)
        SELECT 'delete', old.id, old.subject, old.body_text
        WHERE old.direction = 'in' OR NOT old.auto_generated;
        INSERT INTO message_search(rowid, subject, body_text)
        SELECT new.id, new.subject, new.body_text
        WHERE new.direction = 'in' OR NOT new.auto_generated;
    END""",
    """CREATE TRIGGER ticket_search_insert AFTER INSERT ON tickets BEGIN
        INSERT INTO ticket_search(rowid, subject) VALUES (new.id, new.subject);
    END""",
    """CREATE TRIGGER ticket_search_delete AFTER DELETE ON tickets BEGIN
        INSERT INTO ticket_search(ticket_search, rowid, subject)
        VALUES ('delete', old.id, old.subject);
    END""",
    """CREATE TRIGGER ticket_search_update AFTER UPDATE OF subject ON tickets
    WHEN old.subject IS NOT new.subject BEGIN
        INSERT INTO ticket_search(ticket_search, rowid, subject)
        VALUES ('delete', old.id, old.subject);
        INSERT INTO ticket_search(rowid, subject) VALUES (new.id, new.subject);
    END""",
]

# 'rebuild' reads the content tables: every stored mail worth searching is indexed.
SQLITE_FILL = [
    "INSERT INTO message_search(message_search) VALUES ('rebuild')",
    "INSERT INTO ticket_search(ticket_search) VALUES ('rebuild')",
]

# Expressions as desk/store/search.py writes them in its queries, or the planner cannot
# use the indexes. Building an index indexes the mail already there.
POSTGRES_INDEXES = [
    "CREATE INDEX ix_messages_search ON messages USING gin "
    f"(to_tsvector('english'::regconfig, subject || ' ' || body_text)) WHERE {SEARCHED}",
    "CREATE INDEX ix_tickets_search ON tickets USING gin "
    "(to_tsvector('english'::regconfig, subject))",
]


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for statement in SQLITE_TABLES + SQLITE_TRIGGERS + SQLITE_FILL:
            op.execute(statement)
    elif dialect == "postgresql":
        for statement in POSTGRES_INDEXES:
            op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for trigger in ("message_search_insert", "message_search_delete",
                        "message_search_update", "ticket_search_insert",
                        "ticket_search_delete", "ticket_search_update"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS message_search")
        op.execute("DROP TABLE IF EXISTS ticket_search")
        op.execute("DROP VIEW IF EXISTS message_search_source")
    elif dialect == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_messages_search")
        op.execute("DROP INDEX IF EXISTS ix_tickets_search")
