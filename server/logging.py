"""structlog setup: one event per line, to the console AND to a rotating JSON-lines file.

The console keeps today's format (readable, or JSON with LOG_FORMAT=json); the file is
always JSON, one object per line, rotated at LOG_MAX_BYTES with LOG_BACKUP_COUNT old files
(stdlib RotatingFileHandler). Both are stdlib handlers on the root logger, fed by structlog
through ProcessorFormatter, so library warnings land in both too."""

from __future__ import annotations

import logging
import sys
from logging.handlers import RotatingFileHandler
from pathlib import Path

import structlog

_ours: list[logging.Handler] = []  # the handlers the last configure_logging installed


def configure_logging(
    level: str = "INFO",
    fmt: str = "console",
    file_path: Path | None = None,
    max_bytes: int = 10_485_760,
    backup_count: int = 5,
) -> None:
    lvl = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )
    console_renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(_formatter(shared, console_renderer, fmt == "json"))
    handlers: list[logging.Handler] = [console]
    if file_path is not None:
        file_path.parent.mkdir(parents=True, exist_ok=True)
        # delay: the file opens on the first line, so a server that never logs leaves none.
        to_file = _RotatingFile(
            file_path, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8", delay=True
        )
        json_renderer = structlog.processors.JSONRenderer(ensure_ascii=False)
        to_file.setFormatter(_formatter(shared, json_renderer, True))
        handlers.append(to_file)
    root = logging.getLogger()
    for h in _ours:
        root.removeHandler(h)
        h.close()
    _ours[:] = handlers
    for h in handlers:
        root.addHandler(h)
    # Libraries (httpx, asyncio...) only from WARNING up; our own modules at LOG_LEVEL.
    root.setLevel(max(lvl, logging.WARNING))
    for ours in ("server", "analysis"):
        logging.getLogger(ours).setLevel(lvl)


class _RotatingFile(RotatingFileHandler):
    """RotatingFileHandler that renders a line once: the stdlib's ``shouldRollover`` renders
    the record to measure it, then ``emit`` renders it again (the whole structlog chain and
    the JSON dump, about a fifth of a log line's cost)."""

    _last: tuple[logging.LogRecord, str] | None = None

    def format(self, record: logging.LogRecord) -> str:
        last = self._last
        if last is not None and last[0] is record:
            return last[1]
        text = super().format(record)
        self._last = (record, text)
        return text

    def emit(self, record: logging.LogRecord) -> None:
        try:
            super().emit(record)
        finally:
            self._last = None


def _formatter(
    shared: list[structlog.typing.Processor], renderer: structlog.typing.Processor, as_json: bool
) -> structlog.stdlib.ProcessorFormatter:
    # JSON carries a traceback as a string field; the console renderer lays it out itself.
    tail = [structlog.processors.format_exc_info] if as_json else []
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail, renderer],
    )


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    return structlog.get_logger(name)


def redact(text: str, log_pii: bool) -> str:
    """User text never reaches logs unless LOG_PII is on; only its length does."""
    return text if log_pii else f"<{len(text)} chars>"
