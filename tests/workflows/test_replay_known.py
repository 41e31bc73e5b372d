"""Histories that cannot replay: the SDK hazard that workflows/activation_guard.py keeps out of new histories.

These two were recorded before the guard, so they stay broken; they are kept as the canary for the SDK. Strict xfail:
the day an SDK upgrade replays them, this test fails, and the guard (and this test) can go.

Their payloads are the chaos soak's synthetic cases, encrypted with the soak's own throwaway key ring beside them.

task_update_beside_escalation_signal.json, as far as it is understood: a duplicate kommune update (answered from
the workflow's memory, no commands) arrived while the task's escalation signal to its case was completing; the
server sequenced the update after that signal's resolution (acceptedRequestSequencingEventId 48). Live, the SLA
loop resumed first and asked `workflow.patched(TASK_RECHECK_AFTER_PROGRESS)`: the marker (event 51) precedes the
update's accepted/completed events (54, 55). On a replay from scratch the SDK gets the update and the signal's
resolution in one activation and runs the update first (its legacy job order: updates before resolutions), so its
responses come before the marker command and the replay fails. Any command of the SLA loop right after
`_send_progress` is exposed the same way; a marker is merely checked most strictly.

task_update_accepted_beside_activity_result.json (a 300-case soak on an idle machine): the same in general form.
Live, the workflow task that completed an activity upserted search attributes (event 23) before it accepted an
update (24); on replay the update is accepted first: "Update machine does not handle this event: HistoryEvent(id:
23, UpsertWorkflowSearchAttributes)".
"""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.crypto import KeyRing
from workflows.replay import from_files, replay

KNOWN = Path(__file__).resolve().parent.parent / "histories_known"


CASES = [
    # (history, the soak's key ring for it)
    ("task_update_beside_escalation_signal.json", "chaos-keyring.json"),
    ("task_update_accepted_beside_activity_result.json", "chaos-keyring-2.json"),
]


@pytest.mark.xfail(
    strict=True,
    reason="SDK hazard (temporalio 1.35, found by the #17 chaos soak): live, Core handed these workflow tasks to the "
    "workflow in two activations, the update after other work; replayed, in one, the update first (TMPRL1100). "
    "workflows/activation_guard.py refuses such updates since; histories recorded before it cannot be mended.",
)
@pytest.mark.parametrize(("history", "keys"), CASES)
async def test_a_task_with_an_update_beside_other_work_replays(history: str, keys: str) -> None:
    ring = KeyRing.from_json((KNOWN / keys).read_text())
    report = await replay(from_files([KNOWN / history]), ring)
    assert report.failures == [], "\n".join(report.lines())
    assert sum(report.replayed.values()) == 1
