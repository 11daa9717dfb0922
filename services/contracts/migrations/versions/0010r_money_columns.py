"""contracts reports: instalment and receipt amounts as numbers (NUMERIC(20, 2) on PostgreSQL,
integer cents on SQLite) instead of decimal strings, and an index of the open instalments for
the aging report, and one of the contracts' (status, id) for the reports' unsigned contracts

The stored strings are converted exactly; a value that is not a decimal of at most two places
stops the migration (nothing is rounded away). The downgrade writes them back as the strings
the service stored ("1234.50").

Revision ID: 0010r
Revises: 0009ca
Create Date: 2026-12-03 14:10:00
"""
from decimal import Decimal, InvalidOperation

from alembic import op
import sqlalchemy as sa


revision = '0010r'
down_revision = '0012p'
branch_labels = None
depends_on = None

COLUMNS = {'contract_instalments': ('amount', 'paid'), 'contract_receipts': ('amount',)}
OPEN_INDEX = 'ix_contract_instalments_open_due'
STATUS_INDEX = 'ix_contracts_status_id'
OPEN = "status NOT IN ('paid', 'void')"


def _cents(table: str, column: str, row_id: str, value: str) -> int:
    try:
        amount = Decimal(value)
    except (InvalidOperation, TypeError):
        amount = None
    if amount is None or not amount.is_finite() or amount != amount.quantize(Decimal('0.01')):
        raise ValueError(f'{table}.{column} of {row_id} is {value!r}: not an amount of at most '
                         'two decimal places; fix it before migrating')
    return int(amount.scaleb(2))


def _check_postgresql(table: str, column: str) -> None:
    bad = op.get_bind().execute(sa.text(
        f"SELECT id, {column} FROM {table} WHERE {column} !~ '^-?[0-9]+(\\.[0-9]{{1,2}})?$' "
        "LIMIT 1")).first()
    if bad is not None:
        _cents(table, column, bad[0], bad[1])  # raises, naming the row


def _rewrite_sqlite(table: str, column: str, convert) -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.text(f'SELECT id, {column} FROM {table}')).all()
    updates = [{'id': row_id, 'value': convert(row_id, value)} for row_id, value in rows]
    if updates:
        bind.execute(sa.text(f'UPDATE {table} SET {column} = :value WHERE id = :id'), updates)


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == 'postgresql'
    for table, columns in COLUMNS.items():
        for column in columns:
            if postgresql:
                _check_postgresql(table, column)
                op.alter_column(table, column, existing_type=sa.String(length=32),
                                type_=sa.Numeric(20, 2), existing_nullable=False,
                                postgresql_using=f'{column}::numeric(20, 2)')
            else:  # the cents as text first; the table copy then casts them to integers
                _rewrite_sqlite(table, column, lambda row_id, value, t=table, c=column:
                                str(_cents(t, c, row_id, value)))
        if not postgresql:
            with op.batch_alter_table(table, recreate='always') as batch_op:
                for column in columns:
                    batch_op.alter_column(column, existing_type=sa.String(length=32),
                                          type_=sa.BigInteger(), existing_nullable=False)
    op.create_index(OPEN_INDEX, 'contract_instalments',
                    ['due_date', 'contract_id', 'amount', 'paid'],
                    postgresql_where=sa.text(OPEN), sqlite_where=sa.text(OPEN))
    op.create_index(STATUS_INDEX, 'contracts', ['status', 'id'])


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == 'postgresql'
    op.drop_index(STATUS_INDEX, table_name='contracts')
    op.drop_index(OPEN_INDEX, table_name='contract_instalments')
    for table, columns in COLUMNS.items():
        if postgresql:
            for column in columns:
                op.alter_column(table, column, existing_type=sa.Numeric(20, 2),
                                type_=sa.String(length=32), existing_nullable=False,
                                postgresql_using=f'{column}::text')
            continue
        with op.batch_alter_table(table, recreate='always') as batch_op:
            for column in columns:
                batch_op.alter_column(column, existing_type=sa.BigInteger(),
                                      type_=sa.String(length=32), existing_nullable=False)
        for column in columns:
            _rewrite_sqlite(table, column,
                            lambda row_id, value: str(Decimal(int(value)).scaleb(-2)))
