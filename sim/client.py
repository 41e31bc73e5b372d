"""`SagsflowApiClient`: how a kommune system (here: the simulator) and the load generator call our API.

Paths and bodies are those of issue 5 (`api.kommune_schemas` holds the bodies). Each kommune authenticates with its
own API key (`Authorization: Bearer sfk....`); the client holds one key per kommune code it plays.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from api.kommune_schemas import (
    ApplicationSubmission,
    DocumentUpload,
    ExtensionRequestBody,
    QuestionBody,
    ReturnBody,
    SubmissionRequest,
)
from domain.application import Application
from domain.calendar import Duration
from eventlog.inbox import InboxPage


class ApiError(Exception):
    def __init__(self, status_code: int, body: Any) -> None:
        super().__init__(f"API answered HTTP {status_code}")
        self.status_code = status_code
        self.body = body


class NoKeyError(KeyError):
    pass


@dataclass(frozen=True)
class ApiResponse:
    status_code: int
    body: Any

    @property
    def ok(self) -> bool:
        return 200 <= self.status_code < 300


def document_upload(document_type: str, filename: str, content_type: str, data: bytes) -> DocumentUpload:
    return DocumentUpload(
        document_type=document_type,
        filename=filename,
        content_type=content_type,
        content_base64=base64.b64encode(data).decode(),
    )


class SagsflowApiClient:
    def __init__(
        self,
        base_url: str,
        *,
        keys: Mapping[str, str] | None = None,
        intake_token: str | None = None,
        http: httpx.AsyncClient | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.keys = dict(keys or {})
        self.intake_token = intake_token
        self._own_http = http is None
        self.http = http or httpx.AsyncClient(timeout=timeout)

    async def aclose(self) -> None:
        if self._own_http:
            await self.http.aclose()

    async def __aenter__(self) -> SagsflowApiClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _auth(self, kommune_kode: str) -> dict[str, str]:
        key = self.keys.get(kommune_kode)
        if key is None:
            raise NoKeyError(f"no API key for kommune {kommune_kode}")
        return {"Authorization": f"Bearer {key}"}

    async def _send(self, method: str, path: str, headers: dict[str, str], body: Any = None, **kw: Any) -> ApiResponse:
        response = await self.http.request(method, f"{self.base_url}{path}", headers=headers, json=body, **kw)
        try:
            parsed: Any = response.json()
        except ValueError:
            parsed = response.text
        return ApiResponse(response.status_code, parsed)

    async def _kommune_post(self, kommune_kode: str, task_id: str, what: str, body: Any) -> ApiResponse:
        path = f"/v1/kommune/tasks/{task_id}/{what}"
        return await self._send("POST", path, self._auth(kommune_kode), body.model_dump(mode="json"))

    # --- intake ------------------------------------------------------------------------------------------------

    async def submit_application(self, idempotency_key: str, application: Application) -> ApiResponse:
        body = ApplicationSubmission(idempotency_key=idempotency_key, application=application)
        headers = {"Authorization": f"Bearer {self.intake_token}"} if self.intake_token else {}
        return await self._send("POST", "/v1/applications", headers, body.model_dump(mode="json"))

    # --- kommune -----------------------------------------------------------------------------------------------

    async def poll_inbox(self, kommune_kode: str, *, after: int = 0, limit: int = 100) -> InboxPage:
        response = await self._send(
            "GET", "/v1/kommune/tasks", self._auth(kommune_kode), params={"after": after, "limit": limit}
        )
        if not response.ok:
            raise ApiError(response.status_code, response.body)
        return InboxPage.model_validate(response.body)

    async def get_task(self, kommune_kode: str, task_id: str) -> ApiResponse:
        return await self._send("GET", f"/v1/kommune/tasks/{task_id}", self._auth(kommune_kode))

    async def get_citizen(self, kommune_kode: str, path: str) -> ApiResponse:
        """Whom a task concerns, at the path its message names (personal data: the caller keeps it to itself)."""
        return await self._send("GET", path, self._auth(kommune_kode))

    async def submit_part(
        self,
        kommune_kode: str,
        task_id: str,
        *,
        idempotency_key: str,
        documents: Sequence[DocumentUpload],
        final: bool,
    ) -> ApiResponse:
        body = SubmissionRequest(idempotency_key=idempotency_key, final=final, documents=list(documents))
        return await self._kommune_post(kommune_kode, task_id, "submissions", body)

    async def request_extension(
        self, kommune_kode: str, task_id: str, *, idempotency_key: str, extend_by: Duration, reason: str | None
    ) -> ApiResponse:
        body = ExtensionRequestBody(idempotency_key=idempotency_key, extend_by=extend_by, reason=reason)
        return await self._kommune_post(kommune_kode, task_id, "extension-requests", body)

    async def ask_question(self, kommune_kode: str, task_id: str, *, idempotency_key: str, text: str) -> ApiResponse:
        body = QuestionBody(idempotency_key=idempotency_key, text=text)
        return await self._kommune_post(kommune_kode, task_id, "questions", body)

    async def return_task(
        self,
        kommune_kode: str,
        task_id: str,
        *,
        idempotency_key: str,
        correct_kommune_kode: str,
        reason: str | None,
    ) -> ApiResponse:
        body = ReturnBody(idempotency_key=idempotency_key, correct_kommune_kode=correct_kommune_kode, reason=reason)
        return await self._kommune_post(kommune_kode, task_id, "returns", body)
