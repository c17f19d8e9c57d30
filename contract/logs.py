"""Logs: one structured line per event, JSON for machines, `key=value` text in a terminal.

Call `configure()` once per process (`configure_command()` in a one-shot command); then
`get(name).info("webhook.accepted", call_id=...)`.
Fields are plain values; secrets are never passed in (tokens, API keys and signed URLs stay where they
are used), so nothing here has to scrub them.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import msgspec

_encode = msgspec.json.Encoder(enc_hook=str).encode


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        # Fields follow; one named like a fixed key (say `event`) cannot overwrite it.
        line |= {k: v for k, v in getattr(record, "fields", {}).items() if k not in line}
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return _encode(line).decode()


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{k}={v}" for k, v in getattr(record, "fields", {}).items())
        text = f"{self.formatTime(record, '%H:%M:%S')} {record.levelname:<7} {record.getMessage()} {fields}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text.rstrip()


class Logger:
    """A thin wrapper that turns keyword arguments into structured fields."""

    def __init__(self, name: str) -> None:
        self._logger = logging.getLogger(name)

    def _log(self, level: int, message: str, exc_info: bool, fields: dict[str, Any]) -> None:
        if self._logger.isEnabledFor(level):
            self._logger.log(level, message, exc_info=exc_info, extra={"fields": fields})

    def debug(self, message: str, /, **fields: Any) -> None:
        self._log(logging.DEBUG, message, False, fields)

    def info(self, message: str, /, **fields: Any) -> None:
        self._log(logging.INFO, message, False, fields)

    def warning(self, message: str, /, **fields: Any) -> None:
        self._log(logging.WARNING, message, False, fields)

    def error(self, message: str, /, *, exc_info: bool = False, **fields: Any) -> None:
        self._log(logging.ERROR, message, exc_info, fields)


def get(name: str) -> Logger:
    return Logger(name)


def configure(level: str = "INFO", *, json_lines: bool | None = None) -> None:
    """JSON lines unless stderr is a terminal (or `json_lines` says otherwise)."""
    as_json = not sys.stderr.isatty() if json_lines is None else json_lines
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter() if as_json else _TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx and httpcore log every request's full URL at INFO (a Slack webhook URL is itself a secret);
    # aiormq logs a traceback for a dropped connection that the RabbitMQ sink already reports.
    for chatty, quiet in (("httpx", logging.WARNING), ("httpcore", logging.WARNING), ("aiormq", logging.ERROR)):
        logging.getLogger(chatty).setLevel(quiet)
    # The formatters above print none of a record's caller, thread or process: the logging HOWTO's
    # "Optimization" settings skip gathering them (a stack walk, `sys._getframe`, per line; the worker writes a
    # few lines a call, and a py-spy profile of it put ~7% of its samples in logging).
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False


def configure_command(level: str = "INFO", *, verbose: bool = False) -> None:
    """A one-shot command (`dlq`, `destinations`, `backfill`...): what it prints is its answer, so its logs stay
    quiet but for errors, unless `verbose` (`-v`) asks for them at `level` (LOG_LEVEL)."""
    configure(level if verbose else "ERROR")
