"""Where the CLI finds the services it talks to, and the one line it prints when it cannot reach one.

Commands resolve their PostgreSQL URL and API URL here, so that a failure can name the address that was tried and
the setting that chose it. `cli.main` turns the connection errors of asyncpg, the Temporal client and httpx into
that line; commands themselves do not catch them.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import urlsplit

import asyncpg
import httpx
import typer
from temporalio.service import RPCError, RPCStatusCode

from runtime.config import Settings, get_settings
from runtime.temporal import temporal_address


@dataclass
class _Chosen:
    """The last URL a command resolved, and which setting it came from (an option wins over the environment)."""

    url: str
    setting: str  # what to do about it: "set DATABASE_URL" or "check --database-url"


DATABASE_SETTING = "set DATABASE_URL"
TEMPORAL_SETTING = "set TEMPORAL_ADDRESS"
API_SETTING = "set SAGSFLOW_API_HOST/SAGSFLOW_API_PORT or --api-url"
_database: _Chosen | None = None
_api: _Chosen | None = None


def database_url(settings: Settings | None = None, explicit: str | None = None) -> str:
    """`--database-url` if given, else DATABASE_URL, else the embedded dev stack's PostgreSQL."""
    global _database
    settings = settings or get_settings()
    default = f"postgresql://postgres@127.0.0.1:{settings.postgres_port}/postgres"
    url = explicit or settings.database_url or default
    _database = _Chosen(url, "check --database-url" if explicit else DATABASE_SETTING)
    return url


def api_url(settings: Settings | None = None, explicit: str | None = None) -> str:
    """`--api-url` if given, else the API that `sagsflow api` serves at SAGSFLOW_API_HOST:SAGSFLOW_API_PORT."""
    global _api
    settings = settings or get_settings()
    url = explicit or f"http://{settings.api_host}:{settings.api_port}"
    _api = _Chosen(url, "check --api-url" if explicit else API_SETTING)
    return url


async def require_api(base_url: str) -> None:
    """Fail now, with the CLI's one line, if nothing answers at `base_url`; any HTTP answer will do."""
    async with httpx.AsyncClient(timeout=10) as http:
        await http.get(f"{base_url.rstrip('/')}/healthz")


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


# Errors with which PostgreSQL itself turns a connection away: a wrong login or database, or not accepting yet.
_PG_REFUSALS = (
    asyncpg.InvalidAuthorizationSpecificationError,
    asyncpg.InvalidCatalogNameError,
    asyncpg.TooManyConnectionsError,
)


def _classify(err: BaseException) -> _Failure | None:
    if isinstance(err, RuntimeError) and str(err).startswith("Failed client connect"):
        return _Failure("Temporal", temporal_address(get_settings()), TEMPORAL_SETTING, _reason(err))
    if isinstance(err, RPCError) and err.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
        return _Failure("Temporal", temporal_address(get_settings()), TEMPORAL_SETTING, _reason(err))
    if isinstance(err, httpx.ConnectError | httpx.ConnectTimeout):
        chosen = _api or _Chosen(_request_origin(err), API_SETTING)
        return _Failure("the Sagsflow API", chosen.url, chosen.setting, _reason(err))
    if isinstance(err, _PG_REFUSALS):
        chosen = _database or _Chosen(database_url(), DATABASE_SETTING)
        return _Failure("PostgreSQL", _where(chosen.url), chosen.setting, str(err), refused=True)
    if isinstance(err, asyncpg.PostgresConnectionError | asyncpg.CannotConnectNowError) or (
        isinstance(err, OSError) and _raised_in(err, "asyncpg")
    ):
        chosen = _database or _Chosen(database_url(), DATABASE_SETTING)
        return _Failure("PostgreSQL", _where(chosen.url), chosen.setting, _reason(err))
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


def _where(dsn: str) -> str:
    """host:port/database of a PostgreSQL URL, never its user or password."""
    parts = urlsplit(dsn)
    hosts = parts.netloc.rpartition("@")[2] or "localhost"
    if ":" not in hosts and "," not in hosts and not hosts.startswith("["):
        hosts = f"{hosts}:5432"
    database = parts.path.lstrip("/")
    return f"{hosts}/{database}" if database else hosts


def _request_origin(err: httpx.HTTPError) -> str:
    try:
        url = err.request.url
    except RuntimeError:  # an error raised without its request
        return "the configured address"
    return f"{url.scheme}://{url.netloc.decode()}"
