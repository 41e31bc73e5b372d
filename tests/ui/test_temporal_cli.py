"""The `temporal` CLI an operator has from the stack reads a case decoded through our codec server, with their own
token (`sagsflow staff add`) as `--codec-auth`, and the read is in the case's access log under their name. Without
the codec it shows ciphertext only; with a token that names nobody, nothing is decoded."""

from __future__ import annotations

import json

import pytest

from runtime.embedded import venv_binary
from tests.devstack import RunningStack, access_log, file_application

NAME = "Bodil Kommandørsen"
CPR = "010357-1234"


@pytest.mark.slow
def test_temporal_cli_shows_the_input_decoded_and_the_read_is_logged(operator_stack: RunningStack) -> None:
    stack = operator_stack
    case_id = file_application(stack, NAME, CPR)
    show = [venv_binary("temporal"), "workflow", "show", "-w", f"case-{case_id}"]
    show += ["--address", stack.temporal_address, "--detailed"]

    encrypted = stack.run(*show)
    assert encrypted.returncode == 0, encrypted.stderr
    assert "WorkflowExecutionStarted" in encrypted.stdout
    assert NAME not in encrypted.stdout

    endpoint = ["--codec-endpoint", f"{stack.api_url}/codec"]
    refused = stack.run(*show, *endpoint, "--codec-auth", "Bearer not-a-person")
    assert NAME not in refused.stdout

    token = stack.staff_token("Bodil Læser", "reader")
    decoded = stack.run(*show, *endpoint, "--codec-auth", f"Bearer {token}")
    assert decoded.returncode == 0, decoded.stderr
    assert f"input[0].application.applicant.name: {NAME}" in decoded.stdout
    assert f"input[0].case_id: {case_id}" in decoded.stdout

    reads = [r for r in access_log(stack, "--case", case_id) if r["purpose"].startswith("payload decode")]
    assert reads, "the CLI's decode is not in the case's access log"
    assert {(r["actor"], r["purpose"], r["namespace"]) for r in reads} == {
        ("staff:bodil-laeser", "payload decode through the codec API (e.g. temporal CLI)", "default")
    }
    assert NAME not in json.dumps(reads) and CPR not in json.dumps(reads)
