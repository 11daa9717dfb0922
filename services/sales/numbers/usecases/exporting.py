"""Export of customers, contacts and opportunities as CSV or xlsx files that the importer
reads back."""

from __future__ import annotations

import base64
import csv
import io
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

from services.sales.numbers.contract import EXPORT_ENTITIES, EXPORT_FORMATS
from services.sales.numbers.domain import import_rows as parsing
from services.sales.numbers.queries.base import tz
from services.sales.numbers.usecases.custom_fields import load_field_definitions
from services.sales.numbers.usecases.import_support import Pacer
from shared import config
from shared.db import DatabaseAccess
from shared.errors import ValidationFailed

# An export is built in one RPC (within the RPC timeout): more rows than this is a 422.
EXPORT_MAX_ROWS = int(config.env("SALES_EXPORT_MAX_ROWS", "50000"))
LISTS = {"customer": "list_customers", "contact": "list_contacts",
         "opportunity": "list_opportunities"}
# A list RPC of the service: (filters=, scope=, cursor=, limit=) -> {items, next_cursor}.
ListPage = Callable[..., dict[str, Any]]


def paced(records: Iterable[dict[str, Any]], pause: Callable[[], None]):
    for record in records:
        pause()
        yield record


def export_file(
    entity: str, records: Iterable[dict[str, Any]], definitions: list[dict[str, Any]],
    fmt: str, pause: Callable[[], None] = lambda: None,
) -> bytes:
    """Records as a CSV (UTF-8 with BOM, so Excel shows Chinese) or xlsx file whose header the
    importer reads back; `pause` is called for every record (a Pacer yields now and then)."""
    header = parsing.export_header(entity, definitions)
    records = paced(records, pause)
    if fmt == "xlsx":
        from openpyxl import Workbook

        book = Workbook(write_only=True)
        sheet = book.create_sheet(entity)
        sheet.append(header)
        for record in records:
            sheet.append([parsing.csv_safe(v)
                          for v in parsing.export_cells(entity, record, definitions)])
        buffer = io.BytesIO()
        book.save(buffer)
        return buffer.getvalue()
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(header)
    for record in records:
        writer.writerow([parsing.csv_safe(v)
                         for v in parsing.export_cells(entity, record, definitions)])
    return ("\ufeff" + text.getvalue()).encode("utf-8")


def export(
    db: DatabaseAccess, list_page: Callable[[str], ListPage], entity: str,
    filters: dict[str, Any], scope: dict[str, Any] | None, fmt: str,
    pause: Callable[[], None],
) -> dict[str, Any]:
    """A filtered list as a file: the records of the entity's list RPC (`list_page(name)`
    gives it), page by page, with the list's filters plus `custom`."""
    if entity not in EXPORT_ENTITIES:
        raise ValidationFailed.for_fields(
            {"entity": [f"must be one of {', '.join(EXPORT_ENTITIES)}"]})
    if fmt not in EXPORT_FORMATS:
        raise ValidationFailed.for_fields({"format": ["must be csv or xlsx"]})
    with db.read() as session:
        definitions = load_field_definitions(session, entity)
    records = all_pages(list_page(LISTS[entity]), dict(filters or {}), scope, pause)
    content = export_file(entity, records, definitions, fmt, pause=Pacer(pause))
    stamp = datetime.now(tz()).strftime("%Y%m%d-%H%M%S")
    return {"filename": f"{entity}s-{stamp}.{fmt}",
            "content_type": "text/csv; charset=utf-8" if fmt == "csv" else
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "content_b64": base64.b64encode(content).decode()}


def all_pages(
    lister: ListPage, filters: dict[str, Any], scope: dict[str, Any] | None,
    pause: Callable[[], None],
) -> Iterator[dict[str, Any]]:
    cursor, count = None, 0
    while True:
        page = lister(filters=filters, scope=scope, cursor=cursor, limit=200)
        pause()  # each page is its own short read: others get the database in between
        count += len(page["items"])
        if count > EXPORT_MAX_ROWS:
            raise ValidationFailed.for_fields({"filters": [
                f"the list has more than {EXPORT_MAX_ROWS:,} rows: narrow the filters"]})
        yield from page["items"]
        cursor = page.get("next_cursor")
        if not cursor:
            return
