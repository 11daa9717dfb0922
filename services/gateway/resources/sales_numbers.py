"""Funnel, forecast, quotas, custom fields, import and export."""

from __future__ import annotations

from flask_smorest import Blueprint

blp = Blueprint(
    "sales_numbers", __name__, description="Funnel, forecast, quotas, custom fields, import."
)
