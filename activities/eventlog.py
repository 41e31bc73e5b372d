"""The event-log append activity: the only way the workflows write the case's stream.

A regular activity, never a local one: its input is fixed in the workflow's history before it runs, so a retry
(after a lost reply, a crashed worker or a lost workflow task) appends exactly the same events. `EventStore.append`
is idempotent, so such a retry confirms instead of writing twice; a stream-version conflict or an event id stored
with other content can never heal by retrying, so they end the activity as non-retryable errors and fail the
workflow. Nor can events the database refuses as data (a NUL character in a text, a value it cannot encode): they
end the activity as `EVENT_DATA_REFUSED`, and the workflow stops for operations instead of retrying for ever.
"""

from __future__ import annotations

import time

from temporalio import activity
from temporalio.exceptions import ApplicationError

from eventlog.store import ConcurrencyError, DuplicateEventConflict, EventDataRefused, EventStore
from workflows.models import APPEND_EVENTS, EVENT_DATA_REFUSED, AppendRequest, AppendResult


class EventLogActivities:
    def __init__(self, store: EventStore) -> None:
        self.store = store

    @activity.defn(name=APPEND_EVENTS)
    async def append_events(self, request: AppendRequest) -> AppendResult:
        started = time.perf_counter()
        try:
            positions = await self.store.append(request.case_id, request.expected_version, request.events)
        except ConcurrencyError as exc:
            raise ApplicationError(str(exc), type="ConcurrencyError", non_retryable=True) from None
        except DuplicateEventConflict as exc:
            raise ApplicationError(str(exc), type="DuplicateEventConflict", non_retryable=True) from None
        except EventDataRefused as exc:
            # About the values, which the same append sends again on every retry.
            raise ApplicationError(str(exc), type=EVENT_DATA_REFUSED, non_retryable=True) from None
        # Exported with the SDK's own metrics on the worker's Prometheus endpoint.
        activity.metric_meter().create_histogram_float(
            "sagsflow_eventlog_append_seconds", "Event-log append latency", "s"
        ).record(time.perf_counter() - started)
        return AppendResult(positions=tuple(positions))
