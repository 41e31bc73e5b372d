"""structlog set-up shared by every process.

Personal data must never reach a log line. Code is written not to log it, and this module adds a last line of
defence: every string in every event dict is scanned for CPR-shaped numbers, which are masked.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

# DDMMYY-SSSS or DDMMYYSSSS, not glued to other digits (so UUIDs, timestamps and counts pass untouched).
CPR_PATTERN = re.compile(r"(?<![\d-])([0-3]\d[01]\d\d\d)-?(\d{4})(?![\d-])")
CPR_MASK = "******-****"


def mask_cpr(value: Any) -> Any:
    if isinstance(value, str):
        return CPR_PATTERN.sub(CPR_MASK, value)
    if isinstance(value, Mapping):
        return {k: mask_cpr(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return type(value)(mask_cpr(v) for v in value)
    if isinstance(value, int) and 10**8 <= value < 10**10:
        return mask_cpr(f"{value:010d}")
    return value


def mask_cpr_processor(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    return {k: mask_cpr(v) for k, v in event_dict.items()}


def shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        mask_cpr_processor,
    ]


def configure_logging(level: str = "INFO", fmt: str = "auto", stream: Any = None) -> None:
    """Route structlog and stdlib logging (temporalio, uvicorn, asyncpg) through one masked renderer."""
    stream = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    renderer: Any = structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[*shared_processors(), structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.ExtraAdder(),
                *shared_processors(),
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                # Foreign (stdlib) records carry their text in "event": mask it after formatting too.
                mask_cpr_processor,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # One line per HTTP request to a kommune system is noise at INFO; failures still surface as warnings.
    logging.getLogger("httpx").setLevel(max(root.level, logging.WARNING))


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)
