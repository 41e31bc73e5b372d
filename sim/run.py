"""Run the simulator as a process: uvicorn serving `create_sim_app` until cancelled."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import uvicorn

from sim.client import SagsflowApiClient
from sim.profiles import default_profiles
from sim.server import KommuneSimulator, SimSettings, create_sim_app, dev_secrets


async def run_simulator(
    *,
    port: int,
    host: str = "127.0.0.1",
    api_url: str,
    api_keys: Mapping[str, str],
    master_secret: str,
    inbox_kommuner: frozenset[str] = frozenset(),
    seed: int = 1,
    compression: float = 1.0,
    extension_unit: Literal["days", "seconds"] = "days",
    act: bool = True,
    late_kommuner: frozenset[str] = frozenset(),
    late_answer_days: float = 365.0,
) -> None:
    settings = SimSettings(
        seed=seed,
        compression=compression,
        extension_unit=extension_unit,
        act=act,
        late_kommuner=late_kommuner,
        late_answer_days=late_answer_days,
    )
    async with SagsflowApiClient(api_url, keys=api_keys) as api:
        sim = KommuneSimulator(
            default_profiles(),
            dev_secrets(master_secret),
            api=api,
            settings=settings,
            inbox_kommuner=inbox_kommuner,
        )
        config = uvicorn.Config(create_sim_app(sim), host=host, port=port, log_level="warning", access_log=False)
        await uvicorn.Server(config).serve()
