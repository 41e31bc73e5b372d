from __future__ import annotations

import io
import json
import logging

import structlog

from runtime.logs import CPR_MASK, configure_logging, get_logger, mask_cpr


def test_mask_cpr_in_nested_values() -> None:
    masked = mask_cpr({"a": "person 010155-1234 and 0101551234", "b": ["x 311299-0001"], "n": 101551234})
    assert masked["a"] == f"person {CPR_MASK} and {CPR_MASK}"
    assert masked["b"] == [f"x {CPR_MASK}"]
    assert masked["n"] == CPR_MASK


def test_mask_leaves_ids_and_counts_alone() -> None:
    text = "case 3fa85f64-5717-4562-b3fc-2c963f66afa6 at 2021-03-02T10:00:00 count 12345"
    assert mask_cpr(text) == text


def test_structlog_and_stdlib_lines_are_masked() -> None:
    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    try:
        structlog.contextvars.bind_contextvars(case_id="c-1")
        get_logger("t").info("looked up 010155-1234", cpr="0101551234")
        logging.getLogger("thirdparty").warning("stdlib says %s", "010155-1234")
    finally:
        structlog.contextvars.clear_contextvars()
    lines = [json.loads(x) for x in stream.getvalue().splitlines()]
    assert len(lines) == 2
    assert "010155" not in stream.getvalue()
    assert lines[0]["case_id"] == "c-1"
    assert lines[0]["cpr"] == CPR_MASK
