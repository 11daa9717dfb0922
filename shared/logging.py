"""JSON log lines carrying the correlation id, so one request can be followed everywhere."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from shared.context import current_correlation_id

# Attributes every LogRecord has; anything else on a record came from `extra=` and is logged.
_RECORD_ATTRIBUTES = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "correlation_id",
}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str):
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
            "correlation_id": getattr(record, "correlation_id", None)
            or current_correlation_id.get(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and value is not None:
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class ExpectedErrors(logging.Filter):
    """nameko logs every exception a worker raises as ERROR with its traceback. A typed client
    error (validation, not found, conflict, forbidden, precondition: a `CrmError` with a 4xx
    status) is an answer, not a fault: it is logged at INFO, one line without a traceback.
    Every other exception stays ERROR with its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.levelno >= logging.WARNING:
            from shared.errors import CrmError

            error = record.exc_info[1]
            if isinstance(error, CrmError) and 400 <= error.status < 500:
                record.levelno, record.levelname = logging.INFO, "INFO"
                record.msg, record.args = "%s answered %s %s: %s", (
                    _worker_name(record), error.status, type(error).__name__, error)
                record.exc_info = record.exc_text = None
        return True


def _worker_name(record: logging.LogRecord) -> str:
    # nameko's message is "error handling worker <WorkerContext [svc.method] at 0x..>: ..."
    args = record.args if isinstance(record.args, tuple) else ()
    return str(args[0]) if args else record.name


def setup_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    handler.addFilter(ExpectedErrors())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
