"""The replay gate: recorded workflow histories run again against the current workflow code.

A case lives for months, so the code that deploys today must take up histories that older code wrote. Replaying a
history re-runs the workflow code over it and fails on the first command that differs from what was recorded (a
non-determinism error, TMPRL1100). The histories come from two places, through one code path (`replay`):

- the cluster (`from_cluster`): the most recent executions of every workflow type the production worker runs, or
  those a visibility query picks, fetched as raw history (payloads still encrypted) and decoded here with the
  production codec key ring, exactly as the worker would decode them;
- files (`from_files`): `temporal workflow show -o json` output as is (`{"events": [...]}`, payloads encrypted or,
  when the CLI had a codec endpoint, already decoded), the Web UI's download, and the saved histories of
  `tests/histories` (`{"workflow_id": ..., "history": {"events": [...]}}`).

The replayer is configured as `workers.worker.build_worker` configures the production worker: the same workflow
classes, data converter, sandbox runner and failure types. The one difference is `debug_mode`: it turns off the 2 s
deadlock detector, because the first history in a process imports every workflow module into the sandbox, which
on a loaded machine takes longer than that; this gate is about determinism, and the lifecycle tests keep the
detector on. (`cli/` cannot be imported here, so `sagsflow replay` in `cli/replay.py` is a thin shell around this.)
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import logging
import re
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf.json_format import ParseError
from temporalio.client import Client, WorkflowHistory
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Replayer

from domain.kommuner import all_kommuner
from runtime.crypto import KeyRing
from runtime.logs import mask_text
from runtime.temporal import KEY_ID_META, data_converter, sandbox_runner
from workflows.case import CaseWorkflow
from workflows.common import FAILURE_TYPES
from workflows.report import QuarterlyReportWorkflow
from workflows.task import OplysningTaskWorkflow

# Every workflow the production worker registers (workers/worker.py: WORKFLOWS and the report in `serve`).
WORKFLOWS: tuple[type, ...] = (CaseWorkflow, OplysningTaskWorkflow, QuarterlyReportWorkflow)
# A failure's message is printed on one line; a long stack of nested causes is cut here.
MESSAGE_CHARS = 600
# The report's "workflow type" of a file that holds no history we can read.
UNREADABLE = "(not a history)"


class NotAHistory(ValueError):
    """A file that holds no workflow history in any shape we read."""


def workflow_names(workflows: Iterable[type] = WORKFLOWS) -> list[str]:
    names = []
    for cls in workflows:
        defn = getattr(cls, "__temporal_workflow_definition", None)
        if defn is None or defn.name is None:
            raise ValueError(f"{cls!r} is not a named workflow")
        names.append(defn.name)
    return names


def workflow_type(history: WorkflowHistory) -> str:
    """The workflow type a history was started as (its first event), or "?" for an empty one."""
    if not history.events:
        return "?"
    return history.events[0].workflow_execution_started_event_attributes.workflow_type.name or "?"


def parse_history(body: Any, default_id: str) -> WorkflowHistory:
    """A history in any shape we read. `default_id` names it when the shape carries no workflow id (the CLI's
    output does not: the gate saves each export as <workflow id>.json, so the file's stem is the id)."""
    if isinstance(body, dict) and isinstance(body.get("history"), dict):
        # tests/histories: our own wrapper around the SDK's WorkflowHistory.to_json().
        history = _from_json(str(body.get("workflow_id") or default_id), body["history"])
    elif isinstance(body, dict) and isinstance(body.get("events"), list):
        # `temporal workflow show -o json`, the Web UI's download, WorkflowHistory.to_json().
        history = _from_json(default_id, body)
    elif isinstance(body, list) and all(isinstance(e, dict) and "eventId" in e for e in body):
        # Older Web UI downloads: the bare list of events.
        history = _from_json(default_id, {"events": body})
    else:
        raise NotAHistory("no workflow history: expected {'events': [...]} or {'workflow_id', 'history'}")
    if not history.events or not history.events[0].HasField("workflow_execution_started_event_attributes"):
        # The replayer needs the start; a page cut from the middle of a history cannot be replayed.
        raise NotAHistory("the history does not begin with the workflow's start")
    return history


def _from_json(workflow_id: str, body: dict[str, Any]) -> WorkflowHistory:
    try:
        return WorkflowHistory.from_json(workflow_id, body)
    except (ParseError, ValueError, KeyError, TypeError) as exc:
        raise NotAHistory(f"not a workflow history: {type(exc).__name__}: {exc}") from None


def read_history(path: Path) -> WorkflowHistory:
    try:
        body = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NotAHistory(f"not readable as JSON: {type(exc).__name__}") from None
    return parse_history(body, path.stem)


@dataclass(frozen=True)
class Source:
    """Where a history comes from, as the report names it: a file, or a workflow id and run on the cluster."""

    name: str
    history: WorkflowHistory | None = None
    problem: str | None = None  # why there is no history to replay


def history_files(paths: Sequence[Path]) -> list[tuple[Path, bool]]:
    """Every file to read: the files named, and the *.json files of the directories named (sorted). The flag says
    the file was named itself: a named file must be a history, while a directory may hold other JSON (the test key
    ring next to the saved histories)."""
    found: list[tuple[Path, bool]] = []
    for path in paths:
        if path.is_dir():
            found += [(p, False) for p in sorted(path.glob("*.json"))]
        else:
            found.append((path, True))
    return found


async def from_files(paths: Sequence[Path]) -> AsyncIterator[Source]:
    for path, named in history_files(paths):
        try:
            history = read_history(path)
            yield Source(f"{history.workflow_id} ({path})", history)
        except NotAHistory as exc:
            if named or _looks_like_history(path):
                yield Source(str(path), problem=str(exc))


def _looks_like_history(path: Path) -> bool:
    # In a directory, a JSON file that is not a history (a key ring) is passed over; a history that fails to parse
    # is not: a file with events that cannot be read is a failed replay, not a skipped one.
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError):
        return True
    return '"events"' in text or '"eventId"' in text


def cluster_query(workflow: str, query: str | None) -> str:
    typed = f'WorkflowType="{workflow}"'
    return f"{typed} AND ({query})" if query else typed


async def from_cluster(
    client: Client,
    *,
    limit: int | None,
    query: str | None = None,
    workflows: Iterable[type] = WORKFLOWS,
) -> AsyncIterator[Source]:
    """The `limit` most recent executions of each workflow type (each run of a continue-as-new chain counts as one),
    narrowed by the visibility `query` if given. Per type, so a year of task workflows never crowds the cases out.
    Histories are fetched raw: the replayer decodes them with the ring it is given."""
    for name in workflow_names(workflows):
        async for execution in client.list_workflows(cluster_query(name, query), limit=limit):
            handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
            try:
                history = await handle.fetch_history()
            except RPCError as exc:
                if exc.status is not RPCStatusCode.NOT_FOUND:
                    raise
                continue  # removed by retention between the listing and the fetch: nothing left to run
            yield Source(f"{execution.id} (run {execution.run_id})", history)


@dataclass(frozen=True)
class Failure:
    source: str
    workflow_type: str
    message: str


@dataclass
class ReplayReport:
    replayed: Counter[str] = field(default_factory=Counter)  # per workflow type, failures included
    failures: list[Failure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def lines(self) -> list[str]:
        out = [
            f"{name}: {count} replayed, {sum(f.workflow_type == name for f in self.failures)} failed"
            for name, count in sorted(self.replayed.items())
        ]
        if not self.replayed:
            out.append("no histories found: nothing was replayed")
        out += [f"FAILED {f.workflow_type} {f.source}: {f.message}" for f in self.failures]
        return out


def _one_line(exc: BaseException) -> str:
    """The failure as the report prints it. A non-determinism error describes commands and events, never payloads;
    any other error's text could quote a decoded value (pydantic's `input_value=...`), so values are cut from it
    and CPR-shaped numbers masked before it is printed."""
    text = f"{type(exc).__name__}: {exc}"
    # The core wraps the error in a Rust debug dump of the failure; its message is what says what differed.
    inner = _CORE_MESSAGE.search(text)
    if inner is not None:
        text = inner.group(1).replace('\\"', '"')
    text = _INPUT_VALUE.sub("input_value=…,", text)
    text = mask_text(" ".join(text.split()))
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 1] + "…"


_INPUT_VALUE = re.compile(r"input_value=.*?,(?= input_type=)")
_CORE_MESSAGE = re.compile(r'message: "((?:[^"\\]|\\.)*)"')


def unknown_keys(history: WorkflowHistory, ring: KeyRing) -> set[str]:
    """The ids of keys the history's payloads are encrypted with that `ring` does not hold. Checked before the
    replay: a payload that cannot be decoded fails inside the SDK, whose failure text says only "Encoded failure"."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            meta = node.get("metadata")
            if isinstance(meta, dict) and KEY_ID_META in meta:
                found.add(base64.b64decode(meta[KEY_ID_META]).decode(errors="replace"))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(history.to_json_dict())
    return found - set(ring.keys)


def build_replayer(ring: KeyRing, workflows: Sequence[type] = WORKFLOWS) -> Replayer:
    return Replayer(
        workflows=list(workflows),
        data_converter=data_converter(ring),
        workflow_runner=sandbox_runner(),
        workflow_failure_exception_types=list(FAILURE_TYPES),
        debug_mode=True,  # no deadlock detector: see the module docstring
        # The core logs each failing history as a warning (a Rust dump of the same message); the report says it once.
        runtime=_quiet_runtime(),
    )


@functools.cache
def _quiet_runtime() -> Runtime:
    # One per process: a runtime owns the core's threads.
    quiet = LoggingConfig(filter=TelemetryFilter(core_level="ERROR", other_level="ERROR"))
    return Runtime(telemetry=TelemetryConfig(logging=quiet, metrics=None))


async def replay(
    sources: AsyncIterator[Source], ring: KeyRing, *, workflows: Sequence[type] = WORKFLOWS
) -> ReplayReport:
    """Replay every history against `workflows` (the current code unless a test passes changed ones), decoding
    payloads with `ring`. Every history is replayed; the report holds each failure."""
    # Request models validate kommune codes while the sandbox decodes arguments, where package files cannot be
    # read: load the reference data outside it first, as the worker does (workers.worker.warm_up).
    all_kommuner()
    report = ReplayReport()
    by_run: dict[str, Source] = {}

    async def histories() -> AsyncIterator[WorkflowHistory]:
        async for source in sources:
            if source.history is None:
                report.replayed[UNREADABLE] += 1
                report.failures.append(Failure(source.name, UNREADABLE, source.problem or "no history"))
                continue
            missing = unknown_keys(source.history, ring)
            if missing:
                kind = workflow_type(source.history)
                report.replayed[kind] += 1
                keys = ", ".join(sorted(missing))
                report.failures.append(Failure(source.name, kind, f"encrypted with key {keys}: not in the key ring"))
                continue
            # The replayer gives back the history it ran; its run id (from the first event) finds the source.
            by_run[_key(source.history)] = source
            yield source.history

    with _sdk_logs_quiet():
        async with build_replayer(ring, workflows).workflow_replay_iterator(histories()) as results:
            async for result in results:
                source = by_run.pop(_key(result.history), Source(result.history.workflow_id))
                kind = workflow_type(result.history)
                report.replayed[kind] += 1
                if result.replay_failure is not None:
                    report.failures.append(Failure(source.name, kind, _one_line(result.replay_failure)))
    return report


@contextlib.contextmanager
def _sdk_logs_quiet() -> Iterator[None]:
    """The SDK logs a failed activation with its traceback, whose exception text may quote a decoded payload; the
    report names each failure once, cleaned (`_one_line`)."""
    sdk = logging.getLogger("temporalio")
    level = sdk.level
    sdk.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        sdk.setLevel(level)


def _key(history: WorkflowHistory) -> str:
    return f"{history.workflow_id}\x00{history.run_id}"
