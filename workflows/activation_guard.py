"""A guard against a replay hazard in the SDK: an update accepted in a later activation of a workflow task than
other work of that same task.

What the chaos soak found (temporalio 1.35, its Core; histories in tests/histories_known/): live, Core sometimes
hands lang a workflow task in two activations, first the resolutions (an activity result, a timer, a signal to the
parent delivered) and then the update. The workflow code woken by the first emits commands (a search-attribute
upsert, a patch marker, an activity), and the update's acceptance comes after them. Replayed from history, Core
puts both in one activation, and the SDK runs updates before resolutions: the acceptance now comes first, the
commands no longer match the history (TMPRL1100), and the workflow is stuck until someone resets it.

Nothing in the workflow's code can put the acceptance back where it was on replay, so such an update is not accepted
at all: its validator refuses it as `busy` when this workflow task already emitted commands in an earlier activation.
A refused update leaves no trace in history, so no replay ever meets it; the caller (the API) retries with the same
idempotency key, and the retry arrives in a workflow task of its own. An update in the same activation as other work
is accepted as before: both live and on replay the SDK runs it first.

`install()` wraps the SDK's activation entry point once per process, to note the history length of the last
workflow task whose activation emitted anything but answers to updates and queries; validators read it with
`emitted_earlier`. Validators do not run on replay, and the wrapper changes no command, so old histories replay as
they did.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.worker import _workflow_instance

# On the workflow object: the history length of the last workflow task that emitted commands.
_EMITTED_AT = "_sagsflow_emitted_at_history_length"
_WRAPPED = "_sagsflow_activation_guard"
# Answers, not work: they never come between an update's acceptance and the commands around it.
_NOT_WORK = frozenset({"update_response", "respond_to_query"})


def install() -> None:
    """Idempotent; the worker and everything that starts workflows in-process call it before running workflows."""
    impl: Any = _workflow_instance._WorkflowInstanceImpl
    original = impl.activate
    if getattr(original, _WRAPPED, False):
        return

    def activate(self: Any, act: Any) -> Any:
        completion = original(self, act)
        successful = completion.successful if completion.HasField("successful") else None
        workflow_object = getattr(self, "_object", None)
        if (
            successful is not None
            and workflow_object is not None
            and any(command.WhichOneof("variant") not in _NOT_WORK for command in successful.commands)
        ):
            setattr(workflow_object, _EMITTED_AT, act.history_length)
        return completion

    setattr(activate, _WRAPPED, True)
    impl.activate = activate


def installed() -> bool:
    return bool(getattr(_workflow_instance._WorkflowInstanceImpl.activate, _WRAPPED, False))


def emitted_earlier(workflow_object: object) -> bool:
    """For validators: did an earlier activation of the current workflow task emit commands? (Commands of this
    activation do not count: the SDK orders them the same way live and on replay.)"""
    return getattr(workflow_object, _EMITTED_AT, None) == workflow.info().get_current_history_length()


install()
