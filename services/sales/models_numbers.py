"""Moved: the tables to services/sales/numbers/models.py, the hooks of the core's writes to
services/sales/numbers/usecases/custom_fields.py. service.py imports them from here until it
imports them from the numbers package (then this file goes)."""

from services.sales.numbers.models import CustomFieldDefinition  # noqa: F401
from services.sales.numbers.usecases.custom_fields import (  # noqa: F401
    check_unique,
    load_field_definitions,
)
