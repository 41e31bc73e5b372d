"""Every store the API, the CLI and the worker read and write through, over one connection pool.

A store is a class over the pool with a small typed interface, taking and returning plain values, dataclasses and
models, never connections or rows. Adding one is one line in `Stores`: `name = store(TheStore)`, where
`TheStore(pool)` makes it; what a store needs beyond the pool it takes per call (as `Documents` takes its key ring).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar, overload

from eventlog.access import AccessLog
from eventlog.api_keys import ApiKeys
from eventlog.db import Pool
from eventlog.documents import Documents
from eventlog.figures import FigureStore
from eventlog.forecast import ForecastStore
from eventlog.inbox import InboxStore
from eventlog.intake_keys import IntakeKeys
from eventlog.store import EventStore, create_pool

S = TypeVar("S")


class _Store(Generic[S]):
    """A store of the bundle: made from the pool on first use, then kept (a store may hold caches, as the event
    store does)."""

    def __init__(self, make: Callable[[Pool], S]) -> None:
        self._make = make
        self._name = ""

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self._name = name

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> _Store[S]: ...
    @overload
    def __get__(self, obj: Stores, owner: type[Any]) -> S: ...
    def __get__(self, obj: Stores | None, owner: type[Any]) -> _Store[S] | S:
        if obj is None:
            return self
        made: S | None = obj.__dict__.get(self._name)
        if made is None:
            made = self._make(obj.pool)
            obj.__dict__[self._name] = made
        return made


def store(make: Callable[[Pool], S]) -> _Store[S]:
    """Declare a store of `Stores`: `name = store(TheStore)`, where `TheStore(pool)` makes it."""
    return _Store(make)


class Stores:
    """The stores over one pool, each made on first use and shared by whoever holds the bundle."""

    events = store(EventStore)
    access = store(AccessLog)
    intake_keys = store(IntakeKeys)
    api_keys = store(ApiKeys)
    documents = store(Documents)
    figures = store(FigureStore)
    forecast = store(ForecastStore)
    inbox = store(InboxStore)

    def __init__(self, pool: Pool) -> None:
        # Shared with the event log's own machinery (projections, the kommune channel store), which the worker and
        # the CLI run over the same pool; routers use the stores only.
        self.pool = pool

    @classmethod
    async def connect(cls, dsn: str, *, min_size: int = 1, max_size: int = 10) -> Stores:
        return cls(await create_pool(dsn, min_size=min_size, max_size=max_size))

    async def close(self) -> None:
        await self.pool.close()

    async def reachable(self) -> bool:
        """Whether the database answers (for health checks: any failure is a no)."""
        try:
            await self.pool.fetchval("SELECT 1")
        except Exception:
            return False
        return True
