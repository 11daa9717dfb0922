"""Moved to services/sales/numbers/domain/custom_fields.py; service.py imports the value rules
from here until it imports them from the numbers package (then this file goes)."""

from services.sales.numbers.domain.custom_fields import merge_custom, validate_custom  # noqa: F401
