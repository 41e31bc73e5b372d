"""CPU time of the processes a benchmark runs, grouped by role (API, worker, Temporal server, PostgreSQL)."""

from __future__ import annotations

import psutil


def cpu_seconds(groups: dict[str, list[int]]) -> dict[str, float]:
    """User + system seconds per group: its root processes and their descendants, except a descendant that is the
    root of another group (a benchmark that runs the worker in its own process also starts the servers as its
    children; they count once, in their own group). A process gone meanwhile counts nothing."""
    roots = {pid for pids in groups.values() for pid in pids}

    def tree(proc: psutil.Process) -> float:
        try:
            times = proc.cpu_times()
            children = proc.children()
        except psutil.Error:
            return 0.0
        own: float = times.user + times.system
        return own + sum(tree(c) for c in children if c.pid not in roots)

    out: dict[str, float] = {}
    for name, pids in groups.items():
        total = 0.0
        for pid in pids:
            try:
                total += tree(psutil.Process(pid))
            except psutil.Error:
                continue
        out[name] = total
    return out
