"""The kommune simulator and the load generator (issue 5).

- `sim.behaviour`: the ONE behaviour model (pure, seeded): `plan_kommune_response`, `push_response`, profiles.
- `sim.profiles`: default profiles for the 98 kommuner; `sim.population`: shipped populations (`sim/data`).
- `sim.calibration`: a year of the case queue in pure Python, checking the seed's ">half wait on kommuner".
- `sim.server` + `sim.run`: the real-time driver, an HTTP server playing all 98 kommune systems.
- `sim.client`: `SagsflowApiClient`, the calls a kommune system (and the load generator) makes to our API.
- `sim.load`: seeded applications at a Poisson rate, spread by population.
- `sim.keys`: one API key per kommune for the simulator.
- `sim.tamper`: an HTTP hop that damages pushes in transit (the network between us and a kommune, for tests).
"""
