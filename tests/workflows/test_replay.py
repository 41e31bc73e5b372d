"""The replay gate (workflows/replay.py, `sagsflow replay`): a change that would break running cases (months long)
fails here and in deploy/replay-gate.sh, before a deploy.

The saved histories in tests/histories replay through the same code path as the production histories the gate
fetches from the cluster. Regenerate them with SAGSFLOW_RECORD_HISTORIES=1 when a change is deliberate and patched
(`workflow.patched`), keeping the old histories that running cases still have. A dependency upgrade goes through
here too: `make lock`, then this test and `sagsflow replay` against production histories (deploy/README.md).
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from pydantic import ValidationError
from temporalio.testing import WorkflowEnvironment

from domain.state import CaseStatus
from runtime.crypto import KeyRing
from runtime.embedded import venv_binary
from tests.doubles import FakeDigitalPost, FakeKommuneChannel
from tests.processes import Run, run_process
from tests.workflows.changed_workflow import UnpatchedCaseWorkflow
from tests.workflows.conftest import HISTORY_DIR, HISTORY_RING, application, eventually, utc
from workers.worker import build_worker
from workflows.case import CaseWorkflow
from workflows.client import start_case
from workflows.models import CaseInput, DecisionRequest, SubmitPartRequest, task_workflow_id
from workflows.replay import WORKFLOWS, from_files, replay, workflow_names
from workflows.replay import _one_line as one_line
from workflows.task import OplysningTaskWorkflow

SCENARIOS = (
    "happy_path",
    "christmas_escalation",
    "extension",
    "supplementary",
    "return_reroute",
    "move_transfer",
    "withdrawal",
    "formal_rejection",
    "delivery_failed",
    "continue_as_new",
    # Recorded by code from before each side had to answer the other's questions: each answered its own. Its task
    # state has no askers, so the rule is not applied to it (domain.commands, AnswerQuestion).
    "answers_before_the_rule",
    # Recorded by the code that gives a task its own search attributes (TaskStatus, no CaseStatus) and reads a
    # taken-back task as cancelled: a withdrawal while the task is open, with a question and a part received.
    "withdrawal_task_open",
    # A task started and delivered by the code before it (its case's attributes), taken back after the deploy: it
    # ends with its own final attributes all the same (tests/workflows/record_across_deploy.py recorded it).
    "task_end_across_deploy",
)
HAPPY_CASE = HISTORY_DIR / "happy_path.0.json"


def saved() -> list[Path]:
    return sorted(p for p in HISTORY_DIR.glob("*.json") if p.name != "test-keyring.json")


def test_every_scenario_has_saved_histories() -> None:
    assert set(SCENARIOS) <= {p.name.split(".")[0] for p in saved()}


def test_the_gate_replays_every_workflow_the_production_worker_runs() -> None:
    assert workflow_names(WORKFLOWS) == ["CaseWorkflow", "OplysningTaskWorkflow", "QuarterlyReportWorkflow"]


async def test_saved_histories_replay() -> None:
    # The directory as the gate passes it: the key ring beside the histories is passed over, not replayed.
    report = await replay(from_files([HISTORY_DIR]), HISTORY_RING)
    assert report.failures == [], "\n".join(report.lines())
    assert sum(report.replayed.values()) == len(saved())
    assert set(report.replayed) == {"CaseWorkflow", "OplysningTaskWorkflow"}


async def test_a_change_without_a_patch_fails_the_replay_and_names_the_workflow() -> None:
    workflow_id = json.loads(HAPPY_CASE.read_text())["workflow_id"]
    report = await replay(
        from_files([HAPPY_CASE]), HISTORY_RING, workflows=[UnpatchedCaseWorkflow, OplysningTaskWorkflow]
    )
    assert report.exit_code == 1
    (failure,) = report.failures
    assert (failure.workflow_type, failure.source) == ("CaseWorkflow", f"{workflow_id} ({HAPPY_CASE})")
    assert "[TMPRL1100] Nondeterminism error" in failure.message
    assert report.lines() == [
        "CaseWorkflow: 1 replayed, 1 failed",
        f"FAILED CaseWorkflow {workflow_id} ({HAPPY_CASE}): {failure.message}",
    ]


async def test_a_history_the_key_ring_cannot_decode_names_the_key() -> None:
    report = await replay(from_files([HAPPY_CASE]), KeyRing.generate("production-7"))
    (failure,) = report.failures
    assert failure.message == "encrypted with key history-test-1: not in the key ring"


def test_a_failure_is_printed_without_the_values_it_quotes() -> None:
    # Any failure but a non-determinism error may carry a decoded payload's text (pydantic quotes its input).
    with pytest.raises(ValidationError) as caught:
        application(applicant="Karen Blixen, 010357-1234")
    line = one_line(caught.value)
    assert "Blixen" not in line
    assert "010357" not in line
    assert line.startswith("ValidationError: ")


async def run(args: list[str], env: dict[str, str], cwd: Path) -> Run:
    return await run_process(args, env, cwd)


def production_env(tmp_path: Path, ring: KeyRing, address: str = "") -> dict[str, str]:
    """What the gate's CI job has: the cluster's address and the codec key ring file, in production mode (nothing
    else: the replay needs no database and no other secret)."""
    ring_file = tmp_path / "codec-keys.json"
    ring_file.write_text(ring.to_json())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SAGSFLOW_", "TEMPORAL_", "DATABASE_URL"))}
    env.update(SAGSFLOW_ENV="production", SAGSFLOW_CODEC_KEY_FILE=str(ring_file), SAGSFLOW_DATA_DIR=str(tmp_path))
    if address:
        env["TEMPORAL_ADDRESS"] = address
    return env


async def test_a_changed_history_fails_the_command_with_exit_1(tmp_path: Path) -> None:
    # The command's own exit code, on a history whose recorded activity is not the one the code schedules.
    body = json.loads(HAPPY_CASE.read_text())
    scheduled = next(e for e in body["history"]["events"] if "activityTaskScheduledEventAttributes" in e)
    scheduled["activityTaskScheduledEventAttributes"]["activityType"]["name"] = "an_activity_of_old"
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(body))
    ring = tmp_path / "ring.json"
    ring.write_text(HISTORY_RING.to_json())
    done = await run(
        [venv_binary("sagsflow"), "replay", str(changed), "--key-ring", str(ring)],
        production_env(tmp_path, KeyRing.generate("unrelated")),
        tmp_path,
    )
    assert done.code == 1, done
    assert "CaseWorkflow: 1 replayed, 1 failed" in done.out
    assert f"FAILED CaseWorkflow {body['workflow_id']} ({changed}): [TMPRL1100]" in done.out
    assert "an_activity_of_old" in done.out
    assert "Traceback" not in done.out + done.err
    # A directory without histories (a wrong path in the gate) is no pass.
    empty = tmp_path / "empty"
    empty.mkdir()
    done = await run([venv_binary("sagsflow"), "replay", str(empty)], production_env(tmp_path, HISTORY_RING), tmp_path)
    assert (done.code, done.out) == (1, "no histories found: nothing was replayed\n"), done


async def finished_case(dev_env: WorkflowEnvironment, pool: asyncpg.Pool) -> tuple[str, str]:
    """A case run to its end on the dev server: delivered, answered, granted. Its case and task workflow ids."""
    client = dev_env.client
    kommune = FakeKommuneChannel()
    task_queue = f"replay-{uuid.uuid4().hex[:8]}"
    async with build_worker(client, pool, task_queue=task_queue, kommune=kommune, digital_post=FakeDigitalPost()):
        inp = CaseInput(
            case_id=str(uuid.uuid4()),
            subject_id=f"s-{uuid.uuid4().hex[:6]}",
            application=application(kommune_kode="561"),
            # The applicant's window is 2021: the business clock reads a morning then.
            business_clock_offset_seconds=(utc(2021, 9, 24, 7, 0) - datetime.now(UTC)).total_seconds(),
        )
        case = await start_case(client, inp, task_queue=task_queue)
        delivery = await asyncio.wait_for(kommune.deliveries.get(), timeout=30)
        task = client.get_workflow_handle_for(OplysningTaskWorkflow.run, task_workflow_id(delivery.task_id))
        final = SubmitPartRequest(kommune_kode="561", submission_id="s-1", document_ids=("d-1",), final=True)
        await task.execute_update(OplysningTaskWorkflow.submit_part, final)

        async def ready() -> bool:
            return (await case.query(CaseWorkflow.status)).status is CaseStatus.READY_FOR_DECISION

        await eventually(ready, "ready for decision", within=30)
        await case.execute_update(
            CaseWorkflow.decide, DecisionRequest(request_id="d-1", outcome="granted", decided_by="cw-1")
        )
        await case.result()
        await task.result()
        return case.id, task.id


async def test_a_history_exported_by_the_temporal_cli_replays_as_is(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, key_ring: KeyRing, tmp_path: Path
) -> None:
    case_id, task_id = await finished_case(dev_env, pool)
    address = dev_env.client.service_client.config.target_host
    env = production_env(tmp_path, key_ring)
    exports = tmp_path / "exports"
    exports.mkdir()
    for workflow_id in (case_id, task_id):
        # As an operator exports one: the CLI from the venv, its JSON written to <workflow id>.json untouched.
        shown = await run(
            [venv_binary("temporal"), "workflow", "show", "-w", workflow_id, "-o", "json", "--address", address],
            env,
            tmp_path,
        )
        assert shown.code == 0, shown.err
        (exports / f"{workflow_id}.json").write_text(shown.out)
    done = await run([venv_binary("sagsflow"), "replay", str(exports / f"{case_id}.json")], env, tmp_path)
    assert (done.code, done.out) == (0, "CaseWorkflow: 1 replayed, 0 failed\n"), done
    done = await run([venv_binary("sagsflow"), "replay", str(exports)], env, tmp_path)
    assert (done.code, done.out.splitlines()) == (
        0,
        ["CaseWorkflow: 1 replayed, 0 failed", "OplysningTaskWorkflow: 1 replayed, 0 failed"],
    ), done


async def test_the_most_recent_histories_on_the_cluster_replay(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, key_ring: KeyRing, tmp_path: Path
) -> None:
    case_id, _ = await finished_case(dev_env, pool)

    async def listed() -> bool:
        return any([w.id == case_id async for w in dev_env.client.list_workflows(f'WorkflowId="{case_id}"')])

    await eventually(listed, "the case in the visibility store", within=30)
    address = dev_env.client.service_client.config.target_host
    env = production_env(tmp_path, key_ring, address)
    done = await run([venv_binary("sagsflow"), "replay", "--limit", "1"], env, tmp_path)
    assert done.code == 0, done
    lines = done.out.splitlines()
    # Other tests share this server: each type holds at least this test's workflows, and the limit is per type.
    assert lines[:2] == ["CaseWorkflow: 1 replayed, 0 failed", "OplysningTaskWorkflow: 1 replayed, 0 failed"], done
    assert all(line.endswith(" 1 replayed, 0 failed") for line in lines), done
    done = await run([venv_binary("sagsflow"), "replay", "--query", f'WorkflowId="{case_id}"'], env, tmp_path)
    assert (done.code, done.out) == (0, "CaseWorkflow: 1 replayed, 0 failed\n"), done

    # The gate as deploy/ runs it before a rollout: the saved histories, then the cluster's most recent.
    gate = Path(__file__).resolve().parents[2] / "deploy" / "replay-gate.sh"
    done = await run(["bash", str(gate)], {**env, "N": "1"}, tmp_path)
    assert done.code == 0, done
    assert "== saved histories" in done.out
    assert f"CaseWorkflow: {len(list(HISTORY_DIR.glob('*.0.json')))} replayed, 0 failed" in done.out
    assert "CaseWorkflow: 1 replayed, 0 failed" in done.out
