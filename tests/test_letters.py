"""The worker's citizen-letter adapter: chosen by SAGSFLOW_LETTERS, and today (no Digital Post connection) one that
logs a letter's ids and sends nothing."""

from __future__ import annotations

import logging

import pytest
from pydantic import ValidationError
from temporalio.testing import ActivityEnvironment

from activities.digital_post import DigitalPostActivities, LogOnlyLetters, letters_from_settings
from runtime.config import Settings
from workflows.models import CitizenLetter, DigitalPostReceipt


def test_log_is_the_default_and_only_letter_adapter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SAGSFLOW_LETTERS", raising=False)
    assert isinstance(letters_from_settings(Settings()), LogOnlyLetters)
    monkeypatch.setenv("SAGSFLOW_LETTERS", "log")
    assert isinstance(letters_from_settings(Settings()), LogOnlyLetters)


def test_an_unknown_letter_adapter_is_refused_in_words(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAGSFLOW_LETTERS", "digital-post")
    with pytest.raises(ValidationError) as refused:
        Settings()
    message = str(refused.value)
    assert "SAGSFLOW_LETTERS='digital-post' is not a letter adapter" in message
    assert "no Digital Post connection yet" in message


async def test_a_letter_is_logged_by_its_ids_without_the_recipient(caplog: pytest.LogCaptureFixture) -> None:
    letter = CitizenLetter(message_id="letter-1", case_id="case-1", subject_id="subject-secret", kind="decision")
    activity = DigitalPostActivities(LogOnlyLetters()).notify_citizen
    with caplog.at_level(logging.INFO):
        receipt = await ActivityEnvironment().run(activity, letter)
    assert receipt == DigitalPostReceipt(message_id="letter-1")
    [record] = [r for r in caplog.records if "citizen letter" in r.getMessage()]
    assert "no Digital Post connection" in record.getMessage()
    assert (getattr(record, "message_id", None), getattr(record, "case_id", None)) == ("letter-1", "case-1")
    assert "subject-secret" not in repr(vars(record))
