"""Request bodies of the intake and kommune write endpoints, as the simulator's `SagsflowApiClient` sends them.

Their fields have the boundary types of `domain.boundary`, the same as the workflows' requests and the domain's
commands, so whatever passes here passes there too (and the OpenAPI document says what that is).

Shared so the API routers and the simulator cannot drift apart. Every write carries the caller's
`idempotency_key` (an answer, the `question_id` it answers): the same key twice gives the first answer again and no
second effect. A body is not the workflow update's argument: that one names the key for what it identifies and
adds what the route knows (the caller's kommune, the stored documents' ids); see `workflows.models`.

    POST /v1/applications                                   ApplicationSubmission
    GET  /v1/kommune/tasks?after=<seq>&limit=<n>            -> eventlog.inbox.InboxPage
    GET  /v1/kommune/tasks/{task_id}
    GET  /v1/kommune/tasks/{task_id}/citizen                -> CitizenView (personal data, access-logged)
    POST /v1/kommune/tasks/{task_id}/submissions            SubmissionRequest
    POST /v1/kommune/tasks/{task_id}/extension-requests     ExtensionRequestBody
    POST /v1/kommune/tasks/{task_id}/questions              QuestionBody (also operations': /v1/ops/tasks/...)
    POST /v1/kommune/tasks/{task_id}/answers                AnswerBody (also operations': /v1/ops/tasks/...)
    POST /v1/kommune/tasks/{task_id}/returns                ReturnBody
"""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import date

from pydantic import BaseModel, ConfigDict, Field, field_validator

from domain.application import Application, CaseType, CurrentAttachment, EmploymentPeriod
from domain.boundary import FileName, FreeText, Key, KommuneKode, Label, Message
from domain.calendar import Duration
from domain.commands import MAX_DOCUMENTS
from domain.events import RequestReason
from eventlog.documents import ALLOWED_CONTENT_TYPES, MAX_DOCUMENT_BYTES

# base64 of MAX_DOCUMENT_BYTES, rounded up to whole 4-character groups.
MAX_BASE64_CHARS = 4 * ((MAX_DOCUMENT_BYTES + 2) // 3)
DOCUMENT_IDS = uuid.UUID("0f6f2f5e-5b8e-4a77-9a52-8d3c2a1e9b10")


def document_id(task_id: str, idempotency_key: str, index: int) -> uuid.UUID:
    """The id of the `index`th document of the submission `idempotency_key` to `task_id`. Deterministic, so a
    retried submission names the same documents and the workflow sees the same request again."""
    return uuid.uuid5(DOCUMENT_IDS, f"{task_id}/{idempotency_key}/{index}")


# The base of every HTTP request body, operations' too: unknown fields are refused, not ignored.
class Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ApplicationSubmission(Body):
    idempotency_key: Key
    application: Application


class DocumentUpload(Body):
    document_type: Label = Field(description="Which requested document this is")
    filename: FileName
    content_type: str = Field(description=f"One of: {', '.join(sorted(ALLOWED_CONTENT_TYPES))}")
    content_base64: str = Field(min_length=1, max_length=MAX_BASE64_CHARS)

    @field_validator("content_base64")
    @classmethod
    def _is_base64(cls, value: str) -> str:
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("content_base64 is not valid base64") from None
        return value

    def content(self) -> bytes:
        return base64.b64decode(self.content_base64)


class SubmissionRequest(Body):
    idempotency_key: Key
    final: bool = Field(description="True when this completes the kommune's information for the task")
    documents: list[DocumentUpload] = Field(default_factory=list, max_length=MAX_DOCUMENTS)

    def document_ids(self, task_id: str) -> list[uuid.UUID]:
        return [document_id(task_id, self.idempotency_key, i) for i in range(len(self.documents))]


class ExtensionRequestBody(Body):
    idempotency_key: Key
    extend_by: Duration
    reason: FreeText | None = None


class QuestionBody(Body):
    idempotency_key: Key
    text: Message


class AnswerBody(Body):
    question_id: Key
    text: Message


class ReturnBody(Body):
    idempotency_key: Key
    correct_kommune_kode: KommuneKode
    reason: FreeText | None = None


class CitizenView(BaseModel):
    """Whom a task concerns and what the kommune needs to start its oplysning; personal data, sent only to the
    task's own kommune while the task is open, every read in the access log.

    Chosen from the application by what a kommune's oplysning for seniorpension asks of it (data minimisation,
    GDPR art. 5(1)(c)): who the person is (CPR number and name, to find them in its own systems); which case type
    (seniorpension or seniorførtidspension are documented differently); the documents asked for; the work history
    it is to document or confirm (the employment periods, the latest job's length, the current attachment to the
    labour market and why work stopped) and the work capacity the citizen declares, which the kommune's
    assessment is set against; and whether the citizen consented to health records being obtained, without which
    the kommune may not ask the doctor. Left out: residence, citizenship and prior benefits (Seniorpension checks
    those in the registers itself) and the pre-screening. The application holds no contact details (no address,
    telephone or e-mail): the kommune reaches the citizen through its own CPR-based registers and Digital Post.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    task_id: str
    case_id: str
    kommune_kode: str
    reason: RequestReason = Field(description="Why this task was sent: initial, supplementary, rerouted, transferred")
    requested_documents: tuple[str, ...] = Field(description="The documents this task asks the kommune for")
    cpr: str = Field(description="CPR number, DDMMYY-SSSS; personal data")
    name: str = Field(description="Full name as the application gives it; personal data")
    case_type: CaseType
    received_on: date = Field(description="When Seniorpension received the application")
    employment: tuple[EmploymentPeriod, ...] = Field(description="The employment periods the citizen declared")
    latest_job_months: int = Field(description="Months in the latest job, as declared")
    current_attachment: CurrentAttachment = Field(description="The citizen's current attachment to the labour market")
    declared_weekly_work_capacity_hours: float = Field(
        description="Work capacity the citizen declares, hours a week, relative to the latest job"
    )
    consent_to_health_records: bool = Field(
        description="Whether the citizen consented to health records being obtained for the case"
    )

    def __repr__(self) -> str:  # a stray repr in a traceback must not leak the person
        return f"CitizenView(task_id={self.task_id!r}, <personal data>)"

    __str__ = __repr__
