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

# DDMMYY-SSSS, DDMMYY SSSS or DDMMYYSSSS, not glued to other digits but glued to letters alike ("abc0101701234x"
# is how a CPR number looks inside a file name or a sloppy id). Loose on the date on purpose: masking a number that
# is not a CPR number costs a log reader little; missing one puts a person's number in the log for good.
_CPR_RUN = r"(?<!\d)[0-3]\d[01]\d\d\d[- ]?\d{4}(?!\d)"
# Ids we generate and log on every line: a UUID (whose last group can hold ten digits in a row) and a long hex run
# (key ids, hashes, subject ids). Matched first, as whole tokens, and left alone, so they stay greppable.
_KEEP = (
    r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}(?![0-9A-Fa-f])"
    r"|(?<![0-9A-Fa-f])[0-9A-Fa-f]{16,}(?![0-9A-Fa-f])"
)
CPR_PATTERN = re.compile(_CPR_RUN)
_SCAN = re.compile(f"(?P<keep>{_KEEP})|(?P<cpr>{_CPR_RUN})")
CPR_MASK = "******-****"


def _replace(match: re.Match[str]) -> str:
    return match.group() if match.group("keep") is not None else CPR_MASK


def mask_text(text: str) -> str:
    """`text` with every CPR-shaped number masked; UUIDs and long hex runs untouched."""
    return _SCAN.sub(_replace, text)


def contains_cpr(text: str) -> bool:
    """True if `mask_text` would mask something in `text`: the same rule for the log and for what we store."""
    return any(m.group("cpr") is not None for m in _SCAN.finditer(text))


_PLAIN = (str, int, float, bool, type(None))


def mask_cpr(value: Any) -> Any:
    """Mask CPR-shaped numbers anywhere in a log value: text, bytes, nested containers, exceptions, and the repr
    of any other object (which is what the renderers print for it)."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return CPR_MASK if 10**8 <= value < 10**10 and contains_cpr(f"{value:010d}") else value
    if isinstance(value, bytes | bytearray | memoryview):
        # latin-1 maps every byte to one character and back, so only the masked digits change.
        return mask_text(bytes(value).decode("latin-1")).encode("latin-1")
    if isinstance(value, Mapping):
        return {mask_cpr(k): mask_cpr(v) for k, v in value.items()}
    if isinstance(value, list | set | frozenset) or type(value) is tuple:
        return type(value)(mask_cpr(v) for v in value)
    if isinstance(value, BaseException):
        text = str(value)
        return f"{type(value).__name__}: {mask_text(text)}" if contains_cpr(text) else value
    if not isinstance(value, _PLAIN):
        text = repr(value)
        return mask_text(text) if contains_cpr(text) else value
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
