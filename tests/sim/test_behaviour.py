"""The behaviour model: deterministic, sensible plans, calibrated to the seed's figures, runnable in a workflow."""

from __future__ import annotations

import statistics
import uuid
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from runtime.temporal import sandbox_runner
from sim.behaviour import (
    AskQuestionAction,
    KommuneProfile,
    RequestExtensionAction,
    ReturnTaskAction,
    SimTask,
    SubmitPartAction,
    answer_delay_days,
    plan_kommune_response,
    push_response,
    rng_for,
)
from sim.calibration import QueueParams, simulate_queue
from sim.profiles import default_profiles
from tests.sim.plan_workflow import PlanRunner

PROFILES = default_profiles()
DOCS = ("work_history", "job_description", "health_records")
THREE_MONTHS = timedelta(days=91)


def task(task_id: str = "t-1", kode: str = "329", **kw: object) -> SimTask:
    fields: dict[str, object] = {
        "task_id": task_id,
        "case_id": "c-1",
        "kommune_kode": kode,
        "deadline_in": THREE_MONTHS,
        "requested_documents": DOCS,
        **kw,
    }
    return SimTask.model_validate(fields)


def test_same_seed_same_plan_other_task_other_plan() -> None:
    a = plan_kommune_response(task("t-1"), PROFILES["329"], rng_for(7, "t-1"))
    b = plan_kommune_response(task("t-1"), PROFILES["329"], rng_for(7, "t-1"))
    assert a == b
    others = [plan_kommune_response(task(f"t-{i}"), PROFILES["329"], rng_for(7, f"t-{i}")) for i in range(2, 12)]
    assert any(p != a for p in others)
    assert plan_kommune_response(task("t-1"), PROFILES["329"], rng_for(8, "t-1")) != a


@settings(max_examples=300, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    kode=st.sampled_from(sorted(PROFILES)),
    docs=st.lists(st.sampled_from(DOCS), unique=True, max_size=3).map(tuple),
    deadline_days=st.one_of(st.none(), st.integers(1, 120)),
)
def test_every_plan_is_coherent(seed: int, kode: str, docs: tuple[str, ...], deadline_days: int | None) -> None:
    deadline = timedelta(days=deadline_days) if deadline_days is not None else None
    t = task("t", kode, requested_documents=docs, deadline_in=deadline)
    profile = PROFILES[kode].model_copy(update={"p_return": 0.05, "p_question": 0.3, "p_partial": 0.5})
    plan = plan_kommune_response(t, profile, rng_for(seed, "t"))
    assert plan == sorted(plan, key=lambda p: p.after)
    assert all(p.after > timedelta(0) for p in plan)
    kinds = [type(p.action) for p in plan]
    if ReturnTaskAction in kinds:
        (ret,) = plan
        assert isinstance(ret.action, ReturnTaskAction)
        assert ret.action.correct_kommune_kode in profile.return_candidates
        assert ret.action.correct_kommune_kode != kode
        return
    finals = [p for p in plan if isinstance(p.action, SubmitPartAction) and p.action.final]
    assert len(finals) == 1
    assert plan[-1] == finals[0]  # nothing after the final answer
    submitted = [d for p in plan if isinstance(p.action, SubmitPartAction) for d in p.action.documents]
    assert sorted(submitted) == sorted(docs or ("oplysninger",))
    for p in plan:
        if isinstance(p.action, RequestExtensionAction):
            assert deadline is not None
            assert finals[0].after > deadline  # only when it will be late
            assert p.after < finals[0].after
        if isinstance(p.action, SubmitPartAction) and not p.action.final:
            assert p.action.documents  # a partial submission always carries something


def test_reminders_and_notices_get_no_reaction() -> None:
    for kind in ("reminder", "notice"):
        assert plan_kommune_response(task(kind=kind), PROFILES["329"], rng_for(1, "t")) == []


def test_all_kinds_of_behaviour_occur() -> None:
    seen: set[str] = set()
    late = 0
    n = 2000
    for i in range(n):
        plan = plan_kommune_response(task(f"t-{i}"), PROFILES["101"], rng_for(3, f"t-{i}"))
        seen |= {p.action.kind for p in plan}
        seen |= {"partial" for p in plan if isinstance(p.action, SubmitPartAction) and not p.action.final}
        late += any(isinstance(p.action, SubmitPartAction) and p.action.final and p.after > THREE_MONTHS for p in plan)
    assert seen == {"submit_part", "partial", "ask_question", "request_extension", "return_task"}
    assert 0.05 < late / n < 0.35  # København: some answers come after the deadline


def test_larger_kommuner_answer_slower() -> None:
    def median_days(kode: str) -> float:
        return statistics.median(answer_delay_days(PROFILES[kode], rng_for(1, kode, str(i))) for i in range(2000))

    koebenhavn, aarhus, laesoe, samsoe = median_days("101"), median_days("751"), median_days("825"), median_days("741")
    assert koebenhavn > aarhus > max(laesoe, samsoe)
    assert 50 < koebenhavn < 80
    assert 20 < laesoe < 40


def test_push_failures_follow_the_profile() -> None:
    flaky = KommuneProfile(kode="329", population=1, median_response_days=1, push_5xx_rate=0.2, push_timeout_rate=0.1)
    outcomes = [push_response(flaky, rng_for(1, str(i)), 1) for i in range(5000)]
    assert abs(outcomes.count("error_5xx") / 5000 - 0.2) < 0.03
    assert abs(outcomes.count("timeout") / 5000 - 0.1) < 0.03
    down = flaky.model_copy(update={"reject_first_deliveries": 2, "push_5xx_rate": 0.0, "push_timeout_rate": 0.0})
    assert [push_response(down, rng_for(1, "x"), a) for a in (1, 2, 3)] == ["error_5xx", "error_5xx", "accept"]


def test_calibration_a_year_at_300_a_week() -> None:
    """The seed: at ~300 applications a week, more than half of the open cases wait on a kommune."""
    result = simulate_queue(QueueParams(rate_per_week=300, weeks=52, seed=1), PROFILES)
    final = result.final
    assert 15_000 < final.received < 16_200
    assert final.share_waiting_on_kommune > 0.5
    # ...and not only at the end: from the first month on, every week.
    assert all(p.share_waiting_on_kommune > 0.5 for p in result.points[4:])
    # By the first Samarbejdsforum meeting (2 March 2021, week 9) about 2,400 had applied.
    assert 2_300 < result.points[8].received < 3_100
    assert 6 * 7 <= result.median_kommune_days <= 8 * 7
    assert 0.05 < result.late_tasks / result.tasks < 0.25
    assert result.returned_tasks > 0


def test_calibration_is_deterministic_and_responds_to_kommune_speed() -> None:
    params = QueueParams(weeks=20, seed=4)
    assert simulate_queue(params, PROFILES) == simulate_queue(params, PROFILES)
    fast = simulate_queue(params, default_profiles(speed=4.0)).final
    assert fast.share_waiting_on_kommune < simulate_queue(params, PROFILES).final.share_waiting_on_kommune
    assert fast.share_waiting_on_kommune < 0.5


async def test_the_plan_runs_in_temporal_time(time_skipping_env: WorkflowEnvironment) -> None:
    profile = PROFILES["101"].model_copy(update={"p_question": 1.0, "p_partial": 1.0, "p_return": 0.0})
    t = task("t-wf", "101")
    expected = plan_kommune_response(t, profile, rng_for(11, t.task_id))
    assert {type(p.action) for p in expected} >= {AskQuestionAction, SubmitPartAction}
    queue = f"plan-{uuid.uuid4().hex[:8]}"
    async with Worker(
        time_skipping_env.client, task_queue=queue, workflows=[PlanRunner], workflow_runner=sandbox_runner()
    ):
        done = await time_skipping_env.client.execute_workflow(
            PlanRunner.run, args=[t, profile, 11], id=f"plan-{uuid.uuid4().hex[:8]}", task_queue=queue
        )
    assert [kind for _, kind in done] == [p.action.kind for p in expected]
    # Timers fire at whole seconds at or after the planned instant: weeks of model time in a test.
    for (at, _), planned in zip(done, expected, strict=True):
        assert planned.after.total_seconds() <= at < planned.after.total_seconds() + 2


def test_a_requested_documents_label_becomes_an_id_the_api_accepts() -> None:
    from sim.temporal_driver import SUPPLEMENTARY_DOCUMENTS, document_id
    from workflows.models import SubmitPartRequest

    for label in (*SUPPLEMENTARY_DOCUMENTS, "LÆ 145", "oplysninger", "æøå"):
        ids = (document_id("task-1", label),)
        SubmitPartRequest(kommune_kode="329", submission_id="s1", document_ids=ids, final=True)
