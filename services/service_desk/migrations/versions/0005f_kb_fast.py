"""kb search: the article's status and category beside its tsvector (PostgreSQL)

Revision ID: 0005f
Revises: 0002t
Create Date: 2026-12-03 08:15:00

PostgreSQL ranks in kb_search alone: with status and category_id stored beside the document,
the match, the status/category filter and ts_rank run on one table, the top-N sort keeps only
(article_id, score), and kb_articles is read for the returned page only (before, every match
was joined to kb_articles, carrying its tsvector through a hash join or a parallel external
sort). SQLite needs nothing: FTS5 ranks in its own index (ORDER BY rank) and the join stops at
the page.
"""
from alembic import op


revision = '0005f'
down_revision = '0002t'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    op.execute("ALTER TABLE kb_search ADD COLUMN status VARCHAR(20), "
               "ADD COLUMN category_id VARCHAR(36)")
    op.execute("UPDATE kb_search s SET status = a.status, category_id = a.category_id "
               "FROM kb_articles a WHERE a.id = s.article_id")
    op.execute("ALTER TABLE kb_search ALTER COLUMN status SET NOT NULL")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    op.execute("ALTER TABLE kb_search DROP COLUMN category_id, DROP COLUMN status")
