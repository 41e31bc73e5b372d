"""The README's operations guide and kommune section, run as written against `make demo`.

`sagsflow dev up --demo` starts as `make demo` starts it (in a fresh directory, so `.sagsflow/env` is relative to
it; free ports through the `SAGSFLOW_*_PORT` settings). Once the demo has what the guide needs, every ```sh block
of the two sections runs, in order, in ONE `bash -euo pipefail` session in that directory whose PATH does not hold
the venv: the first block sources the env file, as a person in a second shell would. Then the banner's commands
run the same way. The blocks are found by their fence, so the text and this test cannot drift apart; each block's
expected output is looked up by a command it must contain, and a block that lost that command fails the test.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from runtime.embedded import free_port, venv_binary
from tests.devstack import PORTS, READY

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
ENCRYPTED = "YmluYXJ5L2VuY3J5cHRlZA=="  # base64 of the codec's encoding tag: a payload the CLI did not decode
START_TIMEOUT = 180.0
DATA_TIMEOUT = 240.0


# --- the README ----------------------------------------------------------------------------------------------------


def guide_text() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("## Operations guide")
    end = text.index("\n## ", text.index("## Kommune systems"))
    return text[start:end]


def sh_blocks(text: str) -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```$", text, flags=re.S | re.M)


def test_first_screen_is_the_two_commands() -> None:
    """A newcomer's first screen: exactly `make demo` and `make test`, nothing to run before them."""
    text = README.read_text(encoding="utf-8")
    first = re.search(r"^```\w*\n(.*?)^```$", text, flags=re.S | re.M)
    assert first is not None
    commands = [line.split("#")[0].strip() for line in first.group(1).splitlines()]
    assert commands == ["make demo", "make test"]


def test_guide_blocks_are_marked_and_start_by_sourcing_the_env_file() -> None:
    blocks = sh_blocks(guide_text())
    assert len(blocks) >= 15
    assert blocks[0].strip() == "source .sagsflow/env"
    # Right after: the person gets a token of their own; the env file holds none.
    assert "export TOKEN=$(sagsflow staff add " in blocks[1] and 'TEMPORAL_CODEC_AUTH="Bearer $TOKEN"' in blocks[1]
    assert not any("OPS_TOKEN" in block for block in blocks)
    for block in blocks:
        # The guide runs on any machine with the venv: no jq.
        assert not re.search(r"\bjq\b", block), block


# --- the running demo ----------------------------------------------------------------------------------------------


@dataclass
class Demo:
    cwd: Path
    ports: dict[str, int]
    env: dict[str, str]  # for a second shell: no venv on PATH, no stack settings
    proc: subprocess.Popen[str]
    banner: str

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.ports['API_PORT']}"


def _second_shell_env() -> dict[str, str]:
    venv_bin = str(Path(venv_binary("sagsflow")).parent)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SAGSFLOW_", "TEMPORAL_")) and k not in ("DATABASE_URL", "VIRTUAL_ENV")
    }
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p and p != venv_bin)
    return env


def _read_banner(proc: subprocess.Popen[str], lines: list[str], timeout: float) -> str:
    """The stack's output is read by a thread for its whole life (a full pipe would block `dev up`)."""
    seen = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if READY in line:
                seen.set()

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout
    while not seen.is_set() and time.monotonic() < deadline and proc.poll() is None:
        seen.wait(1)
    if not seen.is_set():
        raise AssertionError("`sagsflow dev up --demo` printed no banner; got:\n" + "".join(lines))
    return "".join(lines)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    cwd = tmp_path_factory.mktemp("guide")
    ports = {name: free_port() for name in PORTS}
    env = _second_shell_env()
    env.update({f"SAGSFLOW_{name}": str(port) for name, port in ports.items()})
    # As `make demo` runs it: $(BIN)/sagsflow dev up --demo, from the directory the user is in.
    cmd = [venv_binary("sagsflow"), "dev", "up", "--demo"]
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        banner = _read_banner(proc, lines, START_TIMEOUT)
        children = psutil.Process(proc.pid).children(recursive=True)
        yield Demo(cwd=cwd, ports=ports, env=_second_shell_env(), proc=proc, banner=banner)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=90) == 0, "".join(lines[-30:])
        _, alive = psutil.wait_procs(children, timeout=30)
        assert alive == [], f"left running after SIGTERM: {[p.pid for p in alive]}"
        assert not (cwd / ".sagsflow" / "env").exists(), "a stopped stack's env file must not be left to source"
    finally:
        if proc.poll() is None:
            for child in psutil.Process(proc.pid).children(recursive=True):
                child.kill()
            proc.kill()
            proc.wait()


def _bash(demo: Demo, script: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=demo.cwd,
        env=demo.env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _count(demo: Demo, query: str) -> int:
    done = _bash(demo, f"source .sagsflow/env; temporal workflow count --query {shlex.quote(query)}", timeout=60)
    found = re.search(r"Total: (\d+)", done.stdout)
    return int(found.group(1)) if done.returncode == 0 and found else 0


def _wait_for_guide_data(demo: Demo) -> None:
    """What the guide's examples take: a 101 case to decide, three open tasks of 147 and one of them overdue.
    Bounded: under the seeded demo load this takes about two minutes from the banner."""
    needs = {
        "a case of 101 ready for decision": (
            'WorkflowType="CaseWorkflow" AND CaseStatus="ready_for_decision" AND KommuneKode="101" '
            'AND ExecutionStatus="Running"',
            1,
        ),
        "three open tasks of 147 (four: one may not be delivered yet)": (
            'WorkflowType="OplysningTaskWorkflow" AND KommuneKode="147" AND ExecutionStatus="Running"',
            4,
        ),
        "an overdue task of 147": (
            'WorkflowType="OplysningTaskWorkflow" AND KommuneKode="147" AND ExecutionStatus="Running" '
            "AND SlaOverdue=true",
            1,
        ),
    }
    deadline = time.monotonic() + DATA_TIMEOUT
    missing = list(needs)
    while missing and time.monotonic() < deadline:
        missing = [what for what, (query, n) in needs.items() if _count(demo, query) < n]
        if missing:
            time.sleep(3)
    assert not missing, f"the demo did not produce {missing} within {DATA_TIMEOUT:.0f}s"


# --- running the blocks -------------------------------------------------------------------------------------------


@dataclass
class BlockRun:
    block: str
    stdout: str
    stderr: str
    finished: bool

    def json_lines(self) -> list[Any]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.startswith("{")]


MARK = "@@guide-block"


def run_blocks(demo: Demo, blocks: list[str]) -> tuple[list[BlockRun], subprocess.CompletedProcess[str]]:
    """All blocks in one session; a marker on both streams before each block and at the end tells which block
    printed what and how far the session got (with -e it stops at the first failing command)."""
    parts = []
    for i, block in enumerate([*blocks, ""]):
        parts.append(f"printf '\\n{MARK} {i}\\n'; printf '\\n{MARK} {i}\\n' >&2")
        parts.append(block)
    done = _bash(demo, "\n".join(parts))
    out = re.split(rf"\n{MARK} (\d+)\n", "\n" + done.stdout)
    err = re.split(rf"\n{MARK} (\d+)\n", "\n" + done.stderr)
    outs = {int(out[i]): out[i + 1] for i in range(1, len(out) - 1, 2)}
    errs = {int(err[i]): err[i + 1] for i in range(1, len(err) - 1, 2)}
    runs = [
        BlockRun(block, outs.get(i, ""), errs.get(i, ""), finished=(i + 1) in outs) for i, block in enumerate(blocks)
    ]
    return runs, done


def _rows(output: str, prefix: str) -> list[str]:
    """Workflow ids in `temporal workflow list` output (second column)."""
    rows = (line.split() for line in output.splitlines())
    return [cols[1] for cols in rows if len(cols) > 1 and cols[1].startswith(prefix)]


def _one(runs: list[BlockRun], command: str) -> BlockRun:
    found = [r for r in runs if command in r.block]
    assert len(found) == 1, f"the guide must have exactly one block running {command!r}; found {len(found)}"
    return found[0]


def _task(output: dict[str, Any]) -> dict[str, Any]:
    task = output.get("task", output)
    assert isinstance(task, dict)
    return task


Check = Callable[[BlockRun, dict[str, str]], None]


def check_whoami(run: BlockRun, ids: dict[str, str]) -> None:
    (me,) = run.json_lines()
    assert (me["kind"], me["actor"]) == ("staff", "staff:karin-sagsbehandler")
    assert set(me["roles"]) == {"caseworker", "team-lead"}


def check_ready(run: BlockRun, ids: dict[str, str]) -> None:
    assert _rows(run.stdout, "case-"), run.stdout
    # (W) CaseStatus is set on case workflows only: no task workflow shows up in a query for cases.
    assert not _rows(run.stdout, "task-"), run.stdout
    link = run.stdout.strip().splitlines()[-1]
    assert link.startswith("http://127.0.0.1:") and "query=CaseStatus" in link
    # The link opens the Web UI's login, which leads back to it.
    opened = httpx.get(link, timeout=30)
    assert opened.status_code == 303 and opened.headers["location"].startswith("/login?next=%2Fnamespaces%2F")


def check_overdue(run: BlockRun, ids: dict[str, str]) -> None:
    assert _rows(run.stdout, "task-"), run.stdout
    assert not _rows(run.stdout, "case-")


def check_by_status(run: BlockRun, ids: dict[str, str]) -> None:
    assert _rows(run.stdout, "task-"), run.stdout  # (W) the TaskStatus search attribute


def check_open_cases(run: BlockRun, ids: dict[str, str]) -> None:
    total = re.search(r"Total: (\d+)", run.stdout)
    assert total and int(total.group(1)) >= 1, run.stdout
    assert _rows(run.stdout, "case-") and not _rows(run.stdout, "task-")


def check_due_before(run: BlockRun, ids: dict[str, str]) -> None:
    assert _rows(run.stdout, "case-"), run.stdout
    assert not _rows(run.stdout, "task-")


def check_backlog(run: BlockRun, ids: dict[str, str]) -> None:
    now, then = run.json_lines()
    assert now["as_of"] is None and any(r["kommune_kode"] == "147" for r in now["tasks"])
    offset = datetime.fromisoformat(then["as_of"]).utcoffset()
    assert offset is not None and offset.total_seconds() > 0  # Danish time: the + of the offset arrived
    assert then["tasks"], "a minute ago the demo already had tasks"


def check_read(run: BlockRun, ids: dict[str, str]) -> None:
    found = re.search(rf"^case ({UUID})$", run.stdout, flags=re.M)
    assert found, run.stdout
    ids["case"] = found.group(1)
    (summary,) = run.json_lines()  # (A) read by the id as the Web UI shows it, case-<uuid>
    assert summary["case_id"] == ids["case"] and summary["status"] == "ready_for_decision"
    assert summary["kommune_kode"] == "101"


def check_decoded(run: BlockRun, ids: dict[str, str]) -> None:
    # (C) the CLI decodes through the codec server with the env file's endpoint and the person's TEMPORAL_CODEC_AUTH
    assert ENCRYPTED not in run.stdout, run.stdout[-2000:]
    assert re.search(r"StaticSummary\s+\"", run.stdout), run.stdout
    assert f"input[0].case_id: {ids['case']}" in run.stdout
    assert "input[0].application.kommune_kode: 101" in run.stdout


def check_decision(run: BlockRun, ids: dict[str, str]) -> None:
    assert run.stdout.rstrip().endswith("HTTP 200"), run.stdout
    (result,) = run.json_lines()
    assert result["case"]["outcome"] == "granted" and result["case"]["case_id"] == ids["case"]


def check_access_log(run: BlockRun, ids: dict[str, str]) -> None:
    assert ids["case"] in run.stdout and "Forbereder afgørelse" in run.stdout, run.stdout
    entries = re.search(r"Access log \((\d+) entries\)", run.stdout)
    # (C) the CLI's decodes are logged too, so there is more than the one read through the API
    assert entries and int(entries.group(1)) >= 2, run.stdout


def check_auditor(run: BlockRun, ids: dict[str, str]) -> None:
    (page,) = run.json_lines()
    reads = page["reads"]
    # Karin's read through the API with her purpose, and the auditor's own search, are in the answer.
    assert any(
        r["case_id"] == ids["case"]
        and r["actor"] == "staff:karin-sagsbehandler"
        and r["purpose"] == "Forbereder afgørelse"
        for r in reads
    ), reads
    assert any(r["what"] == "access log search" and r["actor"] == "staff:revisor-rasmussen" for r in reads), reads
    assert all(set(r) == {"at", "actor", "purpose", "what", "case_id", "namespace"} for r in reads), reads


def check_report(run: BlockRun, ids: dict[str, str]) -> None:
    assert re.search(r"samarbejdsforum-quarterly-report: (created|updated)", run.stdout), run.stdout
    assert re.search(r"^reports-demo/\S+\.html$", run.stdout, flags=re.M), run.stdout


def check_inbox(run: BlockRun, ids: dict[str, str]) -> None:
    (page,) = run.json_lines()
    assert page["messages"] and {m["message"]["kommune_kode"] for m in page["messages"]} == {"147"}


def check_tasks(run: BlockRun, ids: dict[str, str]) -> None:
    found = re.search(rf"^tasks ({UUID}) ({UUID}) ({UUID})$", run.stdout, flags=re.M)
    assert found, run.stdout
    ids["task"], ids["return"], ids["move"] = found.groups()
    assert len(set(found.groups())) == 3
    (task,) = run.json_lines()
    assert task["task_id"] == ids["task"] and task["kommune_kode"] == "147" and task["status"] == "delivered"


def check_citizen(run: BlockRun, ids: dict[str, str]) -> None:
    (citizen,) = run.json_lines()
    assert citizen["task_id"] == ids["task"] and citizen["kommune_kode"] == "147"
    assert re.fullmatch(r"\d{6}-\d{4}", citizen["cpr"]) and citizen["name"]


def check_questions(run: BlockRun, ids: dict[str, str]) -> None:
    asked, answered = (_task(o) for o in run.json_lines())
    question = f"question-{ids['task']}"
    assert question in asked["open_questions"] and question in asked["kommune_questions"]
    assert question in answered["answered_questions"] and question not in answered["open_questions"]


def check_extension(run: BlockRun, ids: dict[str, str]) -> None:
    (result,) = run.json_lines()
    assert result["extension"] == "granted", result
    assert _task(result)["deadline_at"] > _task(result)["original_deadline_at"]


def check_submissions(run: BlockRun, ids: dict[str, str]) -> None:
    part, final = (_task(o) for o in run.json_lines())
    assert part["status"] == "partially_received" and len(part["documents"]) == 1
    assert final["status"] == "completed"


def check_return(run: BlockRun, ids: dict[str, str]) -> None:
    (result,) = run.json_lines()
    assert _task(result)["task_id"] == ids["return"] and _task(result)["status"] == "returned"


def check_move(run: BlockRun, ids: dict[str, str]) -> None:
    moved, seen = run.json_lines()
    assert moved["case"]["kommune_kode"] == "101", moved
    # (W) the kommune is told the truth about a task taken back
    assert seen["task_id"] == ids["move"] and seen["status"] == "cancelled", seen
    assert seen["next_reminder_at"] is None and seen["open_questions"] == []


# Looked up by a command the block must run, in the order the guide runs them.
CHECKS: list[tuple[str, Check]] = [
    ("/v1/whoami", check_whoami),
    ("--query 'CaseStatus=\"ready_for_decision\"'", check_ready),
    ("SlaOverdue=true'", check_overdue),
    ('TaskStatus="delivered"\'', check_by_status),
    ("temporal workflow count", check_open_cases),
    ("SlaDueAt <", check_due_before),
    ("/v1/ops/backlog", check_backlog),
    ("purpose=Forbereder afgørelse", check_read),
    ("WorkflowTaskScheduled", check_decoded),
    ("/decision", check_decision),
    ("sagsflow access-log", check_access_log),
    ("/v1/ops/access-log/search", check_auditor),
    ("sagsflow report quarterly", check_report),
    ("/v1/kommune/tasks?after=0", check_inbox),
    ("TASKS=$(", check_tasks),
    ("/citizen", check_citizen),
    ("/questions", check_questions),
    ("/extension-requests", check_extension),
    ("/submissions", check_submissions),
    ("/returns", check_return),
    ("/transfer", check_move),
]


# Two minutes of demo load before the first block, then every block in one shell: on a loaded two-core machine
# (the suite's other worker runs beside it) this has taken almost five minutes.
@pytest.mark.timeout(900)
def test_the_guide_runs_as_written(demo: Demo) -> None:
    env_file = demo.cwd / ".sagsflow" / "env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert "source .sagsflow/env" in demo.banner

    seen = _bash(demo, "source .sagsflow/env; command -v temporal; env")
    assert seen.returncode == 0, seen.stderr
    where, *lines = seen.stdout.splitlines()
    values = dict(line.split("=", 1) for line in lines if "=" in line)
    assert Path(where).parent == Path(venv_binary("temporal")).parent
    assert values["TEMPORAL_ADDRESS"] == f"127.0.0.1:{demo.ports['TEMPORAL_PORT']}"
    assert values["SAGSFLOW_API"] == demo.api
    assert values["TEMPORAL_CODEC_ENDPOINT"] == f"{demo.api}/codec"
    # No person's token in the file or the banner: each person mints their own (the guide's second block).
    assert "OPS_TOKEN" not in values and "TEMPORAL_CODEC_AUTH" not in values
    assert "eyJ" not in env_file.read_text() and "eyJ" not in demo.banner
    assert values["DATABASE_URL"].endswith(f"@127.0.0.1:{demo.ports['POSTGRES_PORT']}/postgres")
    assert values["SAGSFLOW_DATA_DIR"] == str((demo.cwd / ".sagsflow").resolve())
    assert values["KOMMUNE_KODE"] == "147" and values["KOMMUNE_KEY"] in demo.banner
    assert values["SAGSFLOW_WEB_UI"] == f"http://127.0.0.1:{demo.ports['TEMPORAL_UI_PORT']}"

    _wait_for_guide_data(demo)  # the demo's load filed them under its own identity, from its environment
    check_demo_tokens_stay_out_of_arguments(demo)

    blocks = sh_blocks(guide_text())
    runs, done = run_blocks(demo, blocks)
    failed = next((r for r in runs if not r.finished), None)
    assert failed is None and done.returncode == 0, (
        f"exit {done.returncode} in the block\n{failed.block if failed else '?'}\n"
        f"stdout:\n{failed.stdout[-3000:] if failed else ''}\nstderr:\n{failed.stderr[-3000:] if failed else ''}"
    )
    ids: dict[str, str] = {}
    order = [runs.index(_one(runs, command)) for command, _ in CHECKS]
    assert order == sorted(order), "the guide's blocks moved: keep CHECKS in the README's order"
    for command, check in CHECKS:
        check(_one(runs, command), ids)


def check_demo_tokens_stay_out_of_arguments(demo: Demo) -> None:
    """The demo's load and caseworkers get their tokens in their environment (their owner's to read), never as
    arguments (everyone's to read in `ps`), and no other process holds a token in its arguments."""
    children = psutil.Process(demo.proc.pid).children(recursive=True)
    by_command: dict[str, psutil.Process] = {}
    for child in children:
        args = child.cmdline()  # [python, .../sagsflow, sim, load, ...]: the script runs under its interpreter
        if "sim" in args:
            by_command[" ".join(args[args.index("sim") : args.index("sim") + 2])] = child
    tokens = {name: by_command[name].environ()["SAGSFLOW_STAFF_TOKEN"] for name in ("sim load", "sim caseworkers")}
    for child in children:
        cmdline = " ".join(child.cmdline())
        assert "eyJ" not in cmdline and "token" not in cmdline.lower(), cmdline
        assert not any(token in cmdline for token in tokens.values())
    assert "SAGSFLOW_STAFF_TOKEN" not in by_command["sim serve"].environ()


def test_the_banner_commands_run(demo: Demo) -> None:
    _wait_for_guide_data(demo)  # at once when the guide's test ran first
    commands = [line.strip()[2:] for line in demo.banner.splitlines() if line.strip().startswith("$ ")]
    assert commands[0] == "source .sagsflow/env" and len(commands) >= 6
    assert commands[1].startswith("export TOKEN=$(sagsflow staff add ") and "TEMPORAL_CODEC_AUTH" in commands[2]
    runs, done = run_blocks(demo, commands)
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    ready, overdue, inbox = runs[3], runs[4], runs[5]
    assert 'KommuneKode="101"' in ready.block and _rows(ready.stdout, "case-")
    assert 'KommuneKode="147"' in overdue.block and _rows(overdue.stdout, "task-")
    (page,) = inbox.json_lines()
    assert page["messages"] and page["messages"][0]["message"]["kommune_kode"] == "147"


if __name__ == "__main__":  # pragma: no cover - a way to print the guide as the test runs it
    sys.stdout.write("\n\n".join(sh_blocks(guide_text())))
