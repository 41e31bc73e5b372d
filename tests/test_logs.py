from __future__ import annotations

import io
import json
import logging
import re
import uuid

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from eventlog.api_keys import new_key_id
from runtime.logs import CPR_MASK, configure_logging, contains_cpr, get_logger, mask_cpr, mask_text


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


# ---- the mask as properties: every way a CPR number reaches a log line, and the ids that must survive it ----------


@st.composite
def cpr_numbers(draw: st.DrawFn) -> str:
    """A CPR-shaped number in each of its written forms: DDMMYYSSSS, DDMMYY-SSSS, DDMMYY SSSS."""
    day = draw(st.integers(1, 31))
    month = draw(st.integers(1, 12))
    year = draw(st.integers(0, 99))
    serial = draw(st.integers(0, 9999))
    sep = draw(st.sampled_from(["", "-", " "]))
    return f"{day:02d}{month:02d}{year:02d}{sep}{serial:04d}"


# Text around a number: no digits (they would make it another number) and no hex letters (they could make it part
# of a 16+ hex token, which the mask keeps whole; that case has its own tests).
_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Nd", "Cs"), blacklist_characters="-abcdefABCDEF"), max_size=12
)
_LETTERS = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_.", max_size=6)


def _digits_of(cpr: str) -> str:
    return cpr.replace("-", "").replace(" ", "")


@given(cpr_numbers(), _TEXT, _TEXT)
def test_a_cpr_number_in_text_is_masked(cpr: str, before: str, after: str) -> None:
    masked = mask_cpr(f"{before}{cpr}{after}")
    assert _digits_of(cpr)[:6] not in masked.replace(" ", "").replace("-", "")
    assert CPR_MASK in masked


@given(cpr_numbers(), _LETTERS, _LETTERS)
def test_a_cpr_number_glued_to_letters_is_masked(cpr: str, before: str, after: str) -> None:
    text = f"{before}{cpr}{after}"
    if len(text) >= 16 and all(c in "0123456789abcdefABCDEF" for c in text):
        return  # a long hex token, which the mask keeps whole on purpose (next tests)
    assert mask_cpr(text) == f"{before}{CPR_MASK}{after}"


@given(cpr_numbers(), _TEXT)
def test_a_cpr_number_in_bytes_is_masked(cpr: str, around: str) -> None:
    raw = f"{around}{cpr}{around}".encode()
    masked = mask_cpr(raw)
    assert isinstance(masked, bytes)
    assert CPR_MASK.encode() in masked
    assert cpr.encode() not in masked


@given(cpr_numbers(), st.integers(0, 4))
def test_a_cpr_number_nested_in_dicts_and_lists_is_masked(cpr: str, depth: int) -> None:
    value: object = {"note": f"borger {cpr}", "raw": cpr.encode(), cpr: "as a key"}
    for i in range(depth):
        value = [{"level": i, "inner": value}] if i % 2 else {"level": i, "inner": (value,)}
    out = repr(mask_cpr(value))
    assert _digits_of(cpr) not in out.replace(" ", "").replace("-", "")


@given(cpr_numbers())
def test_a_cpr_number_in_an_exception_is_masked(cpr: str) -> None:
    masked = mask_cpr({"error": ValueError(f"no such person {cpr}"), "ok": ValueError("plain")})
    assert masked["error"] == f"ValueError: no such person {CPR_MASK}"
    assert isinstance(masked["ok"], ValueError)  # nothing to hide: the renderer prints it as it would


@given(cpr_numbers())
def test_a_logged_exception_traceback_is_masked(cpr: str) -> None:
    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    try:
        raise RuntimeError(f"lookup of {cpr} failed")
    except RuntimeError:
        get_logger("t").exception("failed")
        logging.getLogger("thirdparty").exception("stdlib failed")
    assert cpr not in stream.getvalue()
    assert stream.getvalue().count(CPR_MASK) == 2


@given(st.uuids())
def test_uuids_are_left_alone(value: uuid.UUID) -> None:
    for text in (str(value), f"case-{value}", f"task:{value}x", value.hex):
        assert mask_cpr(text) == text
        assert not contains_cpr(text)


@given(st.text(alphabet="0123456789abcdef", min_size=16, max_size=64), _TEXT)
def test_long_hex_is_left_alone(value: str, around: str) -> None:
    text = f"{around} {value} {around}"
    assert mask_text(text) == text


def test_generated_key_ids_never_hold_ten_digits(monkeypatch: pytest.MonkeyPatch) -> None:
    for _ in range(2000):
        key_id = new_key_id()
        assert len(key_id) == 16
        assert not re.search(r"\d{10}", key_id)
        assert not contains_cpr(key_id[1:])  # even cut short, where it is no longer a 16-hex token the mask keeps
    # About 1 in 500 random ids holds ten digits in a row: such a draw is thrown away, not used.
    draws = iter(["0101701234abcdef", "a0101701234bcdef", "abcdef0123456789", "0a1b2c3d4e5f6071"])
    monkeypatch.setattr("eventlog.api_keys.secrets.token_hex", lambda _n: next(draws))
    assert new_key_id() == "0a1b2c3d4e5f6071"
