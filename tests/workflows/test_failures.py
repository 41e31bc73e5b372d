"""What must never be papered over: a stream that moved under the workflow fails it loudly."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from cli.main import app as cli
from domain.application import CaseType
from domain.events import ApplicationReceived, Channel
from domain.state import CaseStatus
from runtime.config import Settings
from runtime.crypto import KeyRing
from runtime.embedded import free_port
from tests.workflows.conftest import Lifecycle, application, eventually, utc
from workers.worker import serve
from workflows.case import CaseWorkflow
from workflows.client import start_case
from workflows.models import CaseInput, WithdrawRequest, task_workflow_id
from workflows.task import OplysningTaskWorkflow


async def test_a_stream_written_by_someone_else_fails_the_case_instead_of_guessing(lifecycle: Lifecycle) -> None:
    case_id = str(uuid.uuid4())
    intruder = ApplicationReceived(
        event_id=uuid.uuid4(),
        case_id=case_id,
        occurred_at=datetime(2021, 1, 1, tzinfo=UTC),
        case_type=CaseType.SENIORPENSION,
        kommune_kode="101",
        received_on=date(2021, 1, 1),
        subject_id="other",
    )
    await lifecycle.store.append(case_id, 0, [intruder])
    now = await lifecycle.env.get_current_time()
    inp = CaseInput(
        case_id=case_id,
        subject_id="s",
        application=application(),
        business_clock_offset_seconds=(utc(2021, 3, 1, 8, 0) - now).total_seconds(),
    )
    handle = await start_case(lifecycle.client, inp, task_queue=lifecycle.task_queue)
    with pytest.raises(WorkflowFailureError) as info:
        await handle.result()
    cause = info.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "EventStreamDiverged"
    assert "ConcurrencyError" in cause.message
    assert [e.event_id for e in await lifecycle.events(case_id)] == [intruder.event_id]  # nothing appended


def test_worker_command_is_registered() -> None:
    result = CliRunner().invoke(cli, ["worker", "--help"])
    assert result.exit_code == 0
    assert "Run the workflow worker" in result.output


async def test_worker_process_runs_cases_and_stops_gracefully(
    dev_env: WorkflowEnvironment, db_url: str, key_ring: KeyRing, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sagsflow worker`'s serve(): migrations, client, pool, the registered workflows with the real kommune
    delivery activity (329 polls its inbox here, so no simulator is needed), a clean stop."""
    monkeypatch.setenv("SAGSFLOW_INBOX_KOMMUNER", "329")
    key_file = tmp_path / "keys.json"
    key_file.write_text(key_ring.to_json())
    settings = Settings(
        TEMPORAL_ADDRESS=dev_env.client.service_client.config.target_host,
        DATABASE_URL=db_url,
        codec_key_file=key_file,
        SAGSFLOW_DATA_DIR=tmp_path,
        task_queue=f"serve-{uuid.uuid4().hex[:8]}",
        # Its own free port: the default one may be taken by a dev stack running on this machine.
        worker_metrics_port=free_port(),
    )
    stop = asyncio.Event()
    server = asyncio.create_task(serve(settings, stop=stop))
    inp = CaseInput(
        case_id=str(uuid.uuid4()),
        subject_id="s",
        application=application(),
        business_clock_offset_seconds=(utc(2021, 3, 1, 8, 0) - datetime.now(UTC)).total_seconds(),
    )
    handle = await start_case(dev_env.client, inp, task_queue=settings.task_queue)

    async def delivered() -> bool:
        summary = await handle.query(CaseWorkflow.status)
        return summary.status is CaseStatus.AWAITING_KOMMUNE

    await eventually(delivered, "the worker process ran the case up to the kommune", within=30)

    async def in_inbox() -> bool:
        task_id = (await handle.query(CaseWorkflow.status)).open_task_id
        assert task_id is not None
        return (
            await dev_env.client.get_workflow_handle(task_workflow_id(task_id)).query(OplysningTaskWorkflow.status)
        ).channel is Channel.INBOX

    await eventually(in_inbox, "the real delivery activity put the task in 329's inbox", within=30)
    await handle.execute_update(CaseWorkflow.withdraw, WithdrawRequest(request_id="w"))
    assert (await handle.result()).status is CaseStatus.WITHDRAWN
    stop.set()
    await asyncio.wait_for(server, timeout=30)
