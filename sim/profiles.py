"""Default kommune profiles for all 98 kommuner, built from the shipped populations (call outside workflows)."""

from __future__ import annotations

from collections.abc import Mapping

from sim.behaviour import KommuneProfile, default_profile
from sim.population import populations

RETURN_CANDIDATES_PER_KOMMUNE = 6


def default_profiles(
    *, speed: float = 1.0, overrides: Mapping[str, Mapping[str, object]] | None = None
) -> dict[str, KommuneProfile]:
    """One profile per kommune. A returned task goes on to one of the largest kommuner in the same region, which is
    where people most often turn out to live. `overrides` patches fields per kommune code (demo and fault tests)."""
    everyone = populations()
    out: dict[str, KommuneProfile] = {}
    for k in everyone:
        neighbours = sorted(
            (o for o in everyone if o.region == k.region and o.kode != k.kode), key=lambda o: -o.indbyggere
        )
        candidates = [o.kode for o in neighbours[:RETURN_CANDIDATES_PER_KOMMUNE]]
        profile = default_profile(k.kode, k.indbyggere, candidates, speed=speed)
        if overrides and k.kode in overrides:
            profile = profile.model_copy(update=dict(overrides[k.kode]))
            profile = KommuneProfile.model_validate(profile.model_dump())
        out[k.kode] = profile
    return out
