"""contract approval: standard clauses

Revision ID: 0009ca
Revises: 0008i
Create Date: 2026-12-03 11:15:00
"""
from alembic import op
import sqlalchemy as sa
import shared.db


revision = '0009ca'
down_revision = '0008i'  # chained after the erp part's (on main first)
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'contract_standard_clauses',
        sa.Column('code', sa.String(length=64), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.Column('title', sa.String(length=200), nullable=True),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('updated_at', shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('code', name=op.f('pk_contract_standard_clauses')),
    )


def downgrade() -> None:
    op.drop_table('contract_standard_clauses')
