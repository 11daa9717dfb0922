"""Moved to services/sales/numbers/queries/; service.py imports customer_insights from here
until it imports it from the numbers package (then this file goes)."""

from services.sales.numbers.queries.insights import customer_insights  # noqa: F401
