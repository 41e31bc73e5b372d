"""Kommune answers under load: latency from request to answer on the dev stack (issue #18, item 1).

    python bench/kommune_api.py [--tasks 500] [--seconds 45] [--rates 1,2,5,10,20,30] [--workers 1]

Starts the system as `sagsflow dev up` runs it, each part a process of its own: the Temporal dev server on its
SQLite file, PostgreSQL, `sagsflow worker` and `sagsflow api`; every kommune is on the inbox channel, so nothing is
pushed. Files --tasks applications, waits until each task is in its kommune's inbox, then, per rate, sends
open-loop non-final submissions (one small PDF each, a new idempotency key each, round-robin over the tasks, each
with its own kommune's key): a request leaves on schedule whether or not earlier ones have answered, so a slow
answer shows as latency instead of a lower rate. Then `GET /v1/kommune/tasks/{id}` at 20 req/s, and, as the baseline
measured in the same run, `GET /healthz` at 20 req/s (the API's own floor: HTTP, auth-free, no Temporal).

Per rate: p50/p95/p99/max latency (ms), status counts and the achieved rate; at 10 req/s also the CPU seconds per
process (API, worker, Temporal server, PostgreSQL with its backends) over the window. The last line is one JSON
object with every figure, and p95 at 10 and 30 req/s as ratios to the healthz baseline.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import base64
import json
import shutil
import statistics
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import httpx

from bench.chaos import ChaosOptions, Stack
from bench.processes import cpu_seconds
from eventlog.store import create_pool
from runtime.identity import LOCAL_KEY_FILE, LocalIssuer
from sim.keys import provision_sim_keys
from sim.load import ApplicationFactory

PDF = base64.b64encode(b"%PDF-1.4 bench work history").decode()


@dataclass(frozen=True)
class OpenTask:
    task_id: str
    kommune_kode: str


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(latencies: list[float], statuses: Counter[str], sent: int, seconds: float) -> dict[str, Any]:
    ms = [v * 1000 for v in latencies]
    return {
        "sent": sent,
        "achieved_per_s": round(sent / seconds, 2),
        "p50_ms": round(percentile(ms, 0.50), 1),
        "p95_ms": round(percentile(ms, 0.95), 1),
        "p99_ms": round(percentile(ms, 0.99), 1),
        "max_ms": round(max(ms), 1) if ms else None,
        "mean_ms": round(statistics.fmean(ms), 1) if ms else None,
        "statuses": dict(sorted(statuses.items())),
    }


async def open_loop(rate: float, seconds: float, send: Callable[[int], Awaitable[httpx.Response]]) -> dict[str, Any]:
    """`rate` requests a second for `seconds`, each on its schedule; waits for the stragglers (up to 60 s)."""
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    statuses: Counter[str] = Counter()

    async def one(n: int) -> None:
        began = time.perf_counter()
        try:
            response = await send(n)
            statuses[str(response.status_code)] += 1
        except httpx.HTTPError as exc:
            statuses[type(exc).__name__] += 1
            return
        latencies.append(time.perf_counter() - began)

    count = int(rate * seconds)
    start = loop.time()
    pending: list[asyncio.Task[None]] = []
    for n in range(count):
        await asyncio.sleep(max(0.0, start + n / rate - loop.time()))
        pending.append(asyncio.ensure_future(one(n)))
    elapsed = loop.time() - start
    await asyncio.wait(pending, timeout=60)
    return summary(latencies, statuses, count, max(elapsed, 1e-9))


class ApiStack(Stack):
    """The chaos soak's stack with the dev stack's settings: the default SLA policy (no reminder or escalation
    within the run) and every kommune on the inbox channel (nothing pushed, no simulator)."""

    kommuner: tuple[str, ...] = ()

    def env(self) -> dict[str, str]:
        env = super().env()
        env.pop("SAGSFLOW_SLA_POLICY", None)
        env.pop("SAGSFLOW_SIM_URL", None)
        env["SAGSFLOW_TASK_QUEUE"] = "bench-kommune-api"
        env["SAGSFLOW_INBOX_KOMMUNER"] = ",".join(self.kommuner)
        return env


class Bench:
    def __init__(self, root: Path, args: argparse.Namespace) -> None:
        self.args = args
        self.stack = ApiStack(root, ChaosOptions(log_level="INFO"))
        self.keys: dict[str, str] = {}

    async def start(self) -> None:
        stack = self.stack
        await stack.start_servers()
        pool = await create_pool(stack.postgres.url, min_size=1, max_size=2)
        try:
            self.keys = await provision_sim_keys(pool, stack.root / "sim-keys.json")
        finally:
            await pool.close()
        stack.kommuner = tuple(sorted(self.keys))
        await stack.start_processes(workers=self.args.workers)

    async def file(self, http: httpx.AsyncClient, token: str) -> None:
        factory = ApplicationFactory(self.args.seed)
        semaphore = asyncio.Semaphore(20)

        async def one(n: int) -> None:
            generated = factory.generate(n, date.today())
            body = {
                "idempotency_key": generated.idempotency_key,
                "application": generated.application.model_dump(mode="json"),
            }
            async with semaphore:
                for _ in range(20):
                    try:
                        r = await http.post("/v1/applications", json=body, headers={"Authorization": f"Bearer {token}"})
                        if r.status_code < 500:
                            return
                    except httpx.HTTPError:
                        pass
                    await asyncio.sleep(0.5)

        await asyncio.gather(*(one(n) for n in range(1, self.args.tasks + 1)))

    async def open_tasks(self, http: httpx.AsyncClient) -> list[OpenTask]:
        """Every task in the kommuner's inboxes, once as many as applications were filed are there (formal
        rejections never get one: those are waited for until the count stops growing)."""
        found: dict[str, OpenTask] = {}
        cursors = dict.fromkeys(self.keys, 0)
        deadline = time.monotonic() + 600
        last_growth = time.monotonic()
        while time.monotonic() < deadline:
            before = len(found)
            for kode, key in self.keys.items():
                r = await http.get(
                    "/v1/kommune/tasks", params={"after": cursors[kode]}, headers={"Authorization": f"Bearer {key}"}
                )
                r.raise_for_status()
                page = r.json()
                cursors[kode] = page["next_after"]
                for m in page["messages"]:
                    message = m["message"]
                    if message["kind"] == "task":
                        found[message["task_id"]] = OpenTask(message["task_id"], message["kommune_kode"])
            if len(found) > before:
                last_growth = time.monotonic()
            if len(found) >= self.args.tasks or (found and time.monotonic() - last_growth > 30):
                break
            await asyncio.sleep(1.0)
        return sorted(found.values(), key=lambda t: t.task_id)

    async def run(self) -> dict[str, Any]:
        began = time.monotonic()
        await self.start()
        stack = self.stack
        issuer = LocalIssuer(stack.root / LOCAL_KEY_FILE)
        intake = issuer.mint("Bench intake", ["intake"], subject="bench-intake", ttl=timedelta(days=1))
        limits = httpx.Limits(max_connections=400, max_keepalive_connections=400)
        async with httpx.AsyncClient(base_url=stack.api_url, timeout=30, limits=limits) as http:
            await self.file(http, intake)
            tasks = await self.open_tasks(http)
            print(f"kommune_api: {len(tasks)} open tasks", flush=True)
            if not tasks:
                raise RuntimeError("no task reached an inbox")
            run_id = uuid.uuid4().hex[:8]

            def submit(rate: float) -> Callable[[int], Awaitable[httpx.Response]]:
                def send(n: int) -> Awaitable[httpx.Response]:
                    task = tasks[n % len(tasks)]
                    body = {
                        "idempotency_key": f"bench-{run_id}-{rate:g}-{n}",
                        "final": False,
                        "documents": [
                            {
                                "document_type": "work_history",
                                "filename": "arbejdshistorik.pdf",
                                "content_type": "application/pdf",
                                "content_base64": PDF,
                            }
                        ],
                    }
                    headers = {"Authorization": f"Bearer {self.keys[task.kommune_kode]}"}
                    return http.post(f"/v1/kommune/tasks/{task.task_id}/submissions", json=body, headers=headers)

                return send

            def read(n: int) -> Awaitable[httpx.Response]:
                task = tasks[n % len(tasks)]
                headers = {"Authorization": f"Bearer {self.keys[task.kommune_kode]}"}
                return http.get(f"/v1/kommune/tasks/{task.task_id}", headers=headers)

            def healthz(_n: int) -> Awaitable[httpx.Response]:
                return http.get("/healthz")

            seconds = self.args.seconds
            baseline = await open_loop(20, seconds, healthz)
            print(f"kommune_api: healthz at 20/s {json.dumps(baseline)}", flush=True)
            pids = {
                "api": [stack.api.proc.pid] if stack.api and stack.api.proc else [],
                "worker": [w.proc.pid for w in stack.workers if w.proc],
                "temporal": [p for p in [_pid(stack.temporal)] if p],
                "postgres": [p for p in [_pid(stack.postgres)] if p],
            }
            submissions: dict[str, Any] = {}
            cpu: dict[str, float] = {}
            for rate in self.args.rates:
                before = cpu_seconds(pids)
                t0 = time.monotonic()
                submissions[f"{rate:g}"] = await open_loop(rate, seconds, submit(rate))
                if rate == 10:
                    after = cpu_seconds(pids)
                    window = time.monotonic() - t0
                    cpu = {name: round((after[name] - before[name]) / window, 3) for name in pids}
                print(f"kommune_api: submissions at {rate:g}/s {json.dumps(submissions[f'{rate:g}'])}", flush=True)
            reads = await open_loop(20, seconds, read)
            print(f"kommune_api: GET task at 20/s {json.dumps(reads)}", flush=True)
        base_p95 = baseline["p95_ms"]
        return {
            "bench": "kommune_api",
            "open_tasks": len(tasks),
            "seconds_per_rate": seconds,
            "workers": self.args.workers,
            "submissions": submissions,
            "get_task_20_per_s": reads,
            "healthz_20_per_s": baseline,
            "cpu_cores_at_10_per_s": cpu,
            "p95_at_10_over_healthz": _ratio(submissions.get("10", {}).get("p95_ms"), base_p95),
            "p95_at_30_over_healthz": _ratio(submissions.get("30", {}).get("p95_ms"), base_p95),
            "wall_seconds": round(time.monotonic() - began, 1),
        }


def _pid(server: object) -> int | None:
    proc = getattr(server, "proc", None)
    pid = getattr(proc, "pid", None)
    return pid if isinstance(pid, int) else None


def _ratio(value: float | None, base: float) -> float | None:
    if value is None or not base:
        return None
    return round(value / base, 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=45.0)
    parser.add_argument("--rates", type=lambda s: [float(x) for x in s.split(",")], default=[1, 2, 5, 10, 20, 30])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--quick", action="store_true", help="60 tasks, 8 s a rate (a smoke run)")
    args = parser.parse_args(argv)
    if args.quick:
        args.tasks, args.seconds = 60, 8.0
    root = Path(tempfile.mkdtemp(prefix="sagsflow-kommune-api-"))
    bench = Bench(root, args)
    try:
        result = asyncio.run(bench.run())
    finally:
        bench.stack.stop()
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
