"""The bundle of stores: one pool, each store made once and shared by whoever holds the bundle."""

from __future__ import annotations

from eventlog.access import AccessLog
from eventlog.api_keys import ApiKeys
from eventlog.documents import Documents
from eventlog.intake_keys import IntakeKeys
from eventlog.store import EventStore
from eventlog.stores import Stores


async def test_each_store_is_made_once_over_the_one_pool(db_url: str) -> None:
    stores = await Stores.connect(db_url, max_size=2)
    try:
        kinds = {
            "events": EventStore,
            "access": AccessLog,
            "intake_keys": IntakeKeys,
            "api_keys": ApiKeys,
            "documents": Documents,
        }
        for name, kind in kinds.items():
            made = getattr(stores, name)
            assert isinstance(made, kind)
            assert getattr(stores, name) is made  # the event store's caches and group commit are shared
        assert stores.events.pool is stores.pool
        assert await stores.reachable()
    finally:
        await stores.close()
    assert not await stores.reachable()
