"""kb search in bounded windows: the titles' own index, and the index order on PostgreSQL

Revision ID: 0012k
Revises: 0014g
Create Date: 2026-12-03 17:45:00

Search ranks tier by tier (title matches first), each tier over a bounded window of its newest
matches (services/service_desk/README.md, "How search works"). PostgreSQL needs two things for
that beside the document:
- `title_document`, the title's lexemes alone (`ts_filter(document, '{a}')`, a stored generated
  column, so every writer of `document` keeps it right), with a GIN index: a title match is an
  index match, not a recheck of every document holding the word (GIN keeps no weights);
- `seq`, the order of indexing (a sequence; bumped on every reindex), with a btree index: the
  window is `ORDER BY seq DESC LIMIT n`, read backwards along that index.
Existing rows get `seq` in the order of their article's last update, in SQL batches.
Both GIN indexes lose `fastupdate`: its pending list (up to 4 MB of not yet merged entries) is
read linearly by every search, and articles are written rarely and read often.
SQLite: the FTS5 rowid already grows with every reindex (the window's order); the titles get
an FTS5 table of their own, `kb_search_title` (same rowids as kb_search), filled in batches
of rowids: a `{title}:` column filter on kb_search walks every body match of the words to find
the few in titles.
"""
from alembic import op
import sqlalchemy as sa


revision = '0012k'
down_revision = '0014g'
branch_labels = None
depends_on = None

BATCH = 5000


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_titles()
        return
    op.execute("ALTER TABLE kb_search ADD COLUMN title_document TSVECTOR "
               "GENERATED ALWAYS AS (ts_filter(document, '{a}')) STORED")
    op.execute("CREATE SEQUENCE kb_search_seq")
    op.execute("ALTER TABLE kb_search ADD COLUMN seq BIGINT")
    op.execute("CREATE TEMPORARY TABLE kb_search_order AS "
               "SELECT s.article_id, row_number() OVER (ORDER BY a.updated_at, s.article_id) "
               "AS n FROM kb_search s JOIN kb_articles a ON a.id = s.article_id")
    op.execute("CREATE INDEX ON kb_search_order (n)")
    bind = op.get_bind()
    total = bind.execute(sa.text("SELECT count(*) FROM kb_search_order")).scalar_one()
    for low in range(0, total, BATCH):
        bind.execute(sa.text("UPDATE kb_search s SET seq = o.n FROM kb_search_order o "
                             "WHERE o.article_id = s.article_id AND o.n > :low "
                             "AND o.n <= :high"), {"low": low, "high": low + BATCH})
    # an index row without its article (none expected): after the others
    op.execute("UPDATE kb_search SET seq = nextval('kb_search_seq') + "
               f"{int(total)} WHERE seq IS NULL")
    op.execute("SELECT setval('kb_search_seq', "
               "GREATEST((SELECT max(seq) FROM kb_search), 1))")
    op.execute("ALTER TABLE kb_search ALTER COLUMN seq SET DEFAULT nextval('kb_search_seq'), "
               "ALTER COLUMN seq SET NOT NULL")
    op.execute("ALTER SEQUENCE kb_search_seq OWNED BY kb_search.seq")
    op.execute("CREATE INDEX ix_kb_search_title_document ON kb_search "
               "USING GIN (title_document) WITH (fastupdate = off)")
    op.execute("ALTER INDEX ix_kb_search_document SET (fastupdate = off)")
    op.execute("SELECT gin_clean_pending_list('ix_kb_search_document')")
    op.execute("CREATE INDEX ix_kb_search_seq ON kb_search (seq)")
    op.execute("DROP TABLE kb_search_order")
    op.execute("ANALYZE kb_search")


def _sqlite_titles() -> None:
    op.execute("CREATE VIRTUAL TABLE kb_search_title USING fts5(title, tokenize = 'unicode61')")
    bind = op.get_bind()
    last = bind.execute(sa.text("SELECT rowid FROM kb_search ORDER BY rowid DESC LIMIT 1")
                        ).scalar() or 0
    for low in range(0, last, BATCH):
        bind.execute(sa.text("INSERT INTO kb_search_title (rowid, title) SELECT rowid, title "
                             "FROM kb_search WHERE rowid > :low AND rowid <= :high"),
                     {"low": low, "high": low + BATCH})


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE kb_search_title")
        return
    op.execute("DROP INDEX ix_kb_search_seq")
    op.execute("DROP INDEX ix_kb_search_title_document")
    op.execute("ALTER INDEX ix_kb_search_document RESET (fastupdate)")
    op.execute("ALTER TABLE kb_search DROP COLUMN seq, DROP COLUMN title_document")
    op.execute("DROP SEQUENCE IF EXISTS kb_search_seq")
