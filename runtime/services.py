"""Where the processes find the services they talk to.

Commands resolve their PostgreSQL URL and API URL here and the choice is remembered (`chosen_database`,
`chosen_api`), so that a failure can name the address that was tried and the setting that chose it
(cli/unreachable.py turns connection errors into that one line).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from runtime.config import Settings, get_settings


@dataclass
class Chosen:
    """The last URL a command resolved, and which setting it came from (an option wins over the environment)."""

    url: str
    setting: str  # what to do about it: "set DATABASE_URL" or "check --database-url"


DATABASE_SETTING = "set DATABASE_URL"
TEMPORAL_SETTING = "set TEMPORAL_ADDRESS"
API_SETTING = "set SAGSFLOW_API_HOST/SAGSFLOW_API_PORT or --api-url"
_database: Chosen | None = None
_api: Chosen | None = None


def chosen_database() -> Chosen:
    return _database or Chosen(database_url(), DATABASE_SETTING)


def chosen_api() -> Chosen | None:
    return _api


def database_url(settings: Settings | None = None, explicit: str | None = None) -> str:
    """`--database-url` if given, else DATABASE_URL, else the embedded dev stack's PostgreSQL."""
    global _database
    settings = settings or get_settings()
    default = f"postgresql://postgres@127.0.0.1:{settings.postgres_port}/postgres"
    url = explicit or settings.database_url or default
    _database = Chosen(url, "check --database-url" if explicit else DATABASE_SETTING)
    return url


def api_url(settings: Settings | None = None, explicit: str | None = None) -> str:
    """`--api-url` if given, else the API that `sagsflow api` serves at SAGSFLOW_API_HOST:SAGSFLOW_API_PORT."""
    global _api
    settings = settings or get_settings()
    url = explicit or f"http://{settings.api_host}:{settings.api_port}"
    _api = Chosen(url, "check --api-url" if explicit else API_SETTING)
    return url


async def require_api(base_url: str) -> None:
    """Fail now, with the CLI's one line, if nothing answers at `base_url`; any HTTP answer will do."""
    async with httpx.AsyncClient(timeout=10) as http:
        await http.get(f"{base_url.rstrip('/')}/healthz")


def where(dsn: str) -> str:
    """host:port/database of a PostgreSQL URL, never its user or password."""
    parts = urlsplit(dsn)
    hosts = parts.netloc.rpartition("@")[2] or "localhost"
    if ":" not in hosts and "," not in hosts and not hosts.startswith("["):
        hosts = f"{hosts}:5432"
    database = parts.path.lstrip("/")
    return f"{hosts}/{database}" if database else hosts
