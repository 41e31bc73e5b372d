"""The one line the CLI prints when it cannot reach a service, instead of a traceback.

`cli.main` turns the connection errors of PostgreSQL, the Temporal client and httpx into that line, naming the
address that was tried and the setting that chose it (runtime/services.py remembers both); commands themselves do
not catch them.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType

import httpx
import typer
from temporalio.service import RPCError, RPCStatusCode

from eventlog.db import postgres_refused, postgres_unreachable
from runtime.config import Settings, get_settings
from runtime.services import API_SETTING, TEMPORAL_SETTING, Chosen, chosen_api, chosen_database, where
from runtime.temporal import temporal_address


def unreachable_message(exc: BaseException, settings: Settings | None = None) -> str | None:
    """The line to print if `exc` (or what caused it) means a service could not be reached or refused us."""
    for err in _causes(exc):
        if isinstance(err, typer.TyperException | typer.Exit | typer.Abort):
            return None  # the command has already said what it wanted to say
        found = _classify(err)
        if found is not None:
            return found.line(settings or get_settings())
    return None


@dataclass(frozen=True)
class _Failure:
    service: str
    where: str
    setting: str
    reason: str
    refused: bool = False  # the server answered and said no (login, database name), rather than not answering

    def line(self, settings: Settings) -> str:
        if self.refused:
            return f"{self.service} at {self.where} refused the connection ({self.reason}): {self.setting}"
        env_file = settings.data_dir / "env"
        return (
            f"cannot reach {self.service} at {self.where} ({self.reason}): is the stack running?"
            f" {self.setting} (or run `source {env_file}`)"
        )


def _classify(err: BaseException) -> _Failure | None:
    if isinstance(err, RuntimeError) and str(err).startswith("Failed client connect"):
        return _Failure("Temporal", temporal_address(get_settings()), TEMPORAL_SETTING, _reason(err))
    if isinstance(err, RPCError) and err.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
        return _Failure("Temporal", temporal_address(get_settings()), TEMPORAL_SETTING, _reason(err))
    if isinstance(err, httpx.ConnectError | httpx.ConnectTimeout):
        chosen = chosen_api() or Chosen(_request_origin(err), API_SETTING)
        return _Failure("the Sagsflow API", chosen.url, chosen.setting, _reason(err))
    if postgres_refused(err):
        chosen = chosen_database()
        return _Failure("PostgreSQL", where(chosen.url), chosen.setting, str(err), refused=True)
    if postgres_unreachable(err) or (isinstance(err, OSError) and _raised_in(err, "asyncpg")):
        chosen = chosen_database()
        return _Failure("PostgreSQL", where(chosen.url), chosen.setting, _reason(err))
    return None


def _causes(exc: BaseException, *, everything: bool = False) -> Iterator[BaseException]:
    """`exc`, what it was raised from, and the members of exception groups; depth first, each once. With
    `everything`, also what a wrapper hid: suppressed contexts and errors passed as arguments (httpcore does)."""
    seen: set[int] = set()
    stack = [exc]
    while stack:
        err = stack.pop()
        if id(err) in seen:
            continue
        seen.add(id(err))
        yield err
        if isinstance(err, BaseExceptionGroup):
            stack.extend(reversed(err.exceptions))
        if everything:
            stack.extend(a for a in reversed(err.args) if isinstance(a, BaseException))
        if err.__cause__ is not None:
            stack.append(err.__cause__)
        elif err.__context__ is not None and (everything or not err.__suppress_context__):
            stack.append(err.__context__)


def _raised_in(err: BaseException, package: str) -> bool:
    tb: TracebackType | None = err.__traceback__
    while tb is not None:
        module = str(tb.tb_frame.f_globals.get("__name__", ""))
        if module == package or module.startswith(f"{package}."):
            return True
        tb = tb.tb_next
    return False


def _reason(err: BaseException) -> str:
    """Why, in a few words: from the first error in the chain that says more than "connection failed"."""
    for cause in _causes(err, everything=True):
        reason = _own_reason(cause)
        if reason != "connection failed":
            return reason
    return "connection failed"


def _own_reason(err: BaseException) -> str:
    text = f"{type(err).__name__} {err}".lower()
    if isinstance(err, ConnectionRefusedError) or "refused" in text or "errno 111" in text:
        return "connection refused"
    if isinstance(err, socket.gaierror) or any(s in text for s in ("name or service", "dns error", "lookup")):
        return "unknown host"
    if isinstance(err, TimeoutError | httpx.ConnectTimeout) or "timed out" in text or "timeout" in text:
        return "timed out"
    if isinstance(err, OSError) and err.strerror:
        return err.strerror.lower()
    return "connection failed"


def _request_origin(err: httpx.HTTPError) -> str:
    try:
        url = err.request.url
    except RuntimeError:  # an error raised without its request
        return "the configured address"
    return f"{url.scheme}://{url.netloc.decode()}"
