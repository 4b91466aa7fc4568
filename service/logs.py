"""Log lines for machines: one JSON object per line (``NIRVANA_LOG_FORMAT=json``)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from typing import Any

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the record's extras
    (``logger.info("request", extra={...})``). Times are UTC."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({key: value for key, value in vars(record).items() if key not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


TEXT_FORMAT = "%(asctime)s %(processName)s %(name)s: %(message)s"


def json_logs() -> bool:
    """JSON lines unless ``NIRVANA_LOG_FORMAT=text``."""
    return os.environ.get("NIRVANA_LOG_FORMAT", "json") != "text"


def make_formatter() -> logging.Formatter:
    return JsonFormatter() if json_logs() else logging.Formatter(TEXT_FORMAT)


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's own logging setup, plus our lines (``nirvana.access`` and every other
    logger that propagates to the root) on stderr in our format. uvicorn applies it
    in each API process it starts, which is how ``--api-workers`` children log too."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["nirvana"] = {"()": JsonFormatter} if json_logs() else {"format": TEXT_FORMAT}
    config["handlers"]["nirvana"] = {"formatter": "nirvana", "class": "logging.StreamHandler", "stream": "ext://sys.stderr"}
    config["root"] = {"handlers": ["nirvana"], "level": "INFO"}
    return config
