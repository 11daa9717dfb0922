"""service_desk group moves: the entries' from / to hold up to 64 characters (a group's id,
36, in a `group_changed` entry; they held statuses, priorities and ticket numbers)

Revision ID: 0014g
Revises: 0011n
Create Date: 2026-12-03 17:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0014g'
down_revision = '0011n'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # SQLite does not enforce a VARCHAR's length: nothing to change there (and no table copy)
    if op.get_bind().dialect.name == 'sqlite':
        return
    for column in ('from_value', 'to_value'):
        op.alter_column('ticket_entries', column, type_=sa.String(length=64),
                        existing_type=sa.String(length=32), existing_nullable=True)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        return
    for column in ('from_value', 'to_value'):
        op.alter_column('ticket_entries', column, type_=sa.String(length=32),
                        existing_type=sa.String(length=64), existing_nullable=True)
