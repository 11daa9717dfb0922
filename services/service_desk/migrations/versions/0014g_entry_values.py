"""service_desk group moves: the entries' from / to hold up to 64 characters (a group's id,
36, in a `group_changed` entry; they held statuses, priorities and ticket numbers)

Revision ID: 0014g
Revises: 0013b
Create Date: 2026-12-03 17:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0014g'
down_revision = '0013b'
branch_labels = None
depends_on = None


def _resize(old: int, new: int) -> None:
    # batch: SQLite copies the table (it has no ALTER COLUMN); PostgreSQL widens in place
    with op.batch_alter_table('ticket_entries') as batch:
        for column in ('from_value', 'to_value'):
            batch.alter_column(column, type_=sa.String(length=new),
                               existing_type=sa.String(length=old), existing_nullable=True)


def upgrade() -> None:
    _resize(32, 64)


def downgrade() -> None:
    _resize(64, 32)
