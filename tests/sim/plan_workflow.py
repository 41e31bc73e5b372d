"""The Temporal-time driver in its smallest form: a workflow that plans a kommune's response with the behaviour model
and carries it out with `workflow.sleep`. `sim.behaviour` is imported normally (not passed through), which proves
the model is sandbox-safe: no I/O, no global randomness."""

from __future__ import annotations

from temporalio import workflow

from sim.behaviour import KommuneProfile, SimTask, plan_kommune_response, rng_for


@workflow.defn
class PlanRunner:
    @workflow.run
    async def run(self, task: SimTask, profile: KommuneProfile, seed: int) -> list[tuple[float, str]]:
        plan = plan_kommune_response(task, profile, rng_for(seed, task.task_id))
        started = workflow.now()
        done: list[tuple[float, str]] = []
        for planned in plan:
            wait = started + planned.after - workflow.now()
            await workflow.sleep(max(wait.total_seconds(), 0.0))
            done.append(((workflow.now() - started).total_seconds(), planned.action.kind))
        return done
