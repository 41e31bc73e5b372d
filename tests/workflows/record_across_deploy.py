"""Records tests/histories/task_end_across_deploy.<n>.json: a case whose task was started, delivered and partly
answered by the code from before tasks had their own search attributes, and taken back (withdrawal) by the current
code. It pins the path a task running at deploy time takes: the patch `task-final-search-attributes`, asked only at
a task's end, gives it its final TaskStatus and no case status although it started with its case's attributes.

    .venv/bin/python tests/workflows/record_across_deploy.py [OLD_COMMIT]

Each side runs as its own process on its own tree (the old one from `git archive`), against one dev server and one
PostgreSQL; the worker of the old side stops before the new one starts, as in a deploy.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from workflows.search_attributes import REGISTRATION

if TYPE_CHECKING:
    import asyncpg
    from temporalio.client import Client

OLD_COMMIT = "61c6384"  # the last commit before `task-own-search-attributes`
ROOT = Path(__file__).resolve().parents[2]
HISTORY_DIR = ROOT / "tests" / "histories"
SCENARIO = "task_end_across_deploy"


async def _connect(address: str) -> tuple[Client, asyncpg.Pool]:
    from temporalio.client import Client

    from eventlog.store import create_pool
    from runtime.crypto import KeyRing
    from runtime.temporal import data_converter

    ring = KeyRing.from_json((HISTORY_DIR / "test-keyring.json").read_text())
    client = await Client.connect(address, data_converter=data_converter(ring))
    return client, await create_pool(os.environ["RECORD_DATABASE_URL"])


async def old_side(address: str, task_queue: str) -> None:
    """Start a case on the old code, let its task be delivered and partly answered, then stop the worker."""
    # The old tree's doubles: OLD_COMMIT kept them in activities/, before they moved to tests/doubles.py.
    from activities.digital_post import FakeDigitalPost  # type: ignore[attr-defined]
    from activities.kommune import FakeKommuneChannel  # type: ignore[attr-defined]
    from tests.workflows.conftest import application
    from workers.worker import build_worker
    from workflows.client import start_case
    from workflows.models import CaseInput, SubmitPartRequest, TaskUpdateResult, task_workflow_id

    client, pool = await _connect(address)
    kommune = FakeKommuneChannel()
    async with build_worker(client, pool, task_queue=task_queue, kommune=kommune, digital_post=FakeDigitalPost()):
        offset = (datetime(2021, 3, 1, 8, 0, tzinfo=UTC) - datetime.now(UTC)).total_seconds()
        inp = CaseInput(
            case_id=str(uuid.uuid4()),
            subject_id="subject-deploy",
            application=application(),
            business_clock_offset_seconds=offset,
        )
        await start_case(client, inp, task_queue=task_queue)
        delivery = await asyncio.wait_for(kommune.deliveries.get(), timeout=30)
        task = client.get_workflow_handle(task_workflow_id(delivery.task_id))
        submit = SubmitPartRequest(kommune_kode="329", submission_id="s-1", document_ids=("d-1",))
        await task.execute_update("submit_part", submit, result_type=TaskUpdateResult)
    print(json.dumps({"case_id": inp.case_id, "task_id": delivery.task_id}))


async def new_side(address: str, task_queue: str, case_id: str, task_id: str) -> None:
    """Withdraw the case on the current code, check the task's end, and save both histories."""
    from tests.doubles import FakeDigitalPost, FakeKommuneChannel
    from workers.worker import build_worker
    from workflows import search_attributes as sa
    from workflows.models import CaseResult, CaseUpdateResult, TaskResult, WithdrawRequest, task_workflow_id

    client, pool = await _connect(address)
    worker = build_worker(
        client, pool, task_queue=task_queue, kommune=FakeKommuneChannel(), digital_post=FakeDigitalPost()
    )
    async with worker:
        case = client.get_workflow_handle(f"case-{case_id}", result_type=CaseResult)
        await case.execute_update("withdraw", WithdrawRequest(request_id="w-1"), result_type=CaseUpdateResult)
        await case.result()
        task = client.get_workflow_handle(task_workflow_id(task_id), result_type=TaskResult)
        assert (await task.result()).outcome == "handed_back"
        attrs = (await task.describe()).typed_search_attributes
        ended = (attrs.get(sa.TASK_STATUS), attrs.get(sa.CASE_STATUS), attrs.get(sa.SLA_DUE_AT))
        assert ended == ("cancelled", None, None), ended
    for old in HISTORY_DIR.glob(f"{SCENARIO}.*.json"):
        old.unlink()
    for n, workflow_id in enumerate((case.id, task.id)):
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        body = {"workflow_id": workflow_id, "history": json.loads(history.to_json())}
        (HISTORY_DIR / f"{SCENARIO}.{n}.json").write_text(json.dumps(body, indent=1) + "\n")


def record(old_commit: str) -> None:
    from eventlog.migrate import migrate_dsn
    from runtime.embedded import EmbeddedPostgres, TemporalDevServer, free_port

    with tempfile.TemporaryDirectory(prefix="across-deploy-") as tmp:
        old_tree = Path(tmp) / "old"
        old_tree.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", old_commit], check=True, capture_output=True)
        subprocess.run(["tar", "-x", "-C", str(old_tree)], input=archive.stdout, check=True)
        postgres = EmbeddedPostgres(Path(tmp) / "pg", free_port())
        temporal = TemporalDevServer(
            search_attributes=REGISTRATION, port=free_port(), log_file=Path(tmp) / "temporal.log"
        )
        postgres.start()
        temporal.start()
        try:
            asyncio.run(migrate_dsn(postgres.url))
            task_queue = f"deploy-{uuid.uuid4().hex[:8]}"

            def side(tree: Path, *args: str) -> str:
                env = {**os.environ, "PYTHONPATH": str(tree), "RECORD_DATABASE_URL": postgres.url}
                done = subprocess.run(
                    [sys.executable, __file__, *args], cwd=tree, env=env, check=True, capture_output=True, text=True
                )
                return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""

            started = json.loads(side(old_tree, "old", temporal.address, task_queue))
            side(ROOT, "new", temporal.address, task_queue, started["case_id"], started["task_id"])
        finally:
            temporal.stop()
            postgres.stop()


if __name__ == "__main__":
    match sys.argv[1:]:
        case ["old", address, task_queue]:
            import workflows  # the old tree's, from PYTHONPATH

            assert Path(workflows.__file__).resolve().is_relative_to(Path.cwd().resolve()), workflows.__file__
            asyncio.run(old_side(address, task_queue))
        case ["new", address, task_queue, case_id, task_id]:
            asyncio.run(new_side(address, task_queue, case_id, task_id))
        case [old_commit]:
            record(old_commit)
        case []:
            record(OLD_COMMIT)
        case _:
            sys.exit(f"usage: {sys.argv[0]} [OLD_COMMIT]")
