"""Moved to services/sales/numbers/entrypoints.py; service.py imports it from here until the
numbers' entrypoints are folded into it (then this file goes)."""

from services.sales.numbers.entrypoints import NumbersRpc, custom_clauses  # noqa: F401
