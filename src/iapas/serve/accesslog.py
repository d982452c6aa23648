"""Structured JSON logging for the server: one JSON object per line on stderr (access log and events), so
a log shipper can parse it without patterns."""
from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

ACCESS = "iapas.access"
EVENTS = "iapas.serve"


class JsonFormatter(logging.Formatter):
    """`{"ts": ..., "level": ..., "logger": ..., "msg": ..., **extra}`."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update(getattr(record, "fields", {}) or {})
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def setup_logging(level: int = logging.INFO) -> None:
    """Route iapas' and uvicorn's loggers through one JSON handler on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    for name in (ACCESS, EVENTS, "uvicorn", "uvicorn.error"):
        log = logging.getLogger(name)
        log.handlers[:] = [handler]
        log.setLevel(level)
        log.propagate = False
    logging.getLogger("uvicorn.access").disabled = True  # replaced by the JSON access log


def access(fields: dict[str, Any]) -> None:
    logging.getLogger(ACCESS).info("request", extra={"fields": fields})


def event(msg: str, **fields: Any) -> None:
    logging.getLogger(EVENTS).info(msg, extra={"fields": fields})


def warning(msg: str, **fields: Any) -> None:
    """A warning as one JSON log line (the log stays parseable end to end)."""
    logging.getLogger(EVENTS).warning(msg, extra={"fields": fields})
