"""Approximate populations of the 98 kommuner (Danmarks Statistik FOLK1AM, 1 January 2023), shipped as data.

Read once at import of the first caller, never inside a workflow: the behaviour model receives what it needs (e.g.
return candidates) inside `KommuneProfile`, so it stays free of I/O.
"""

from __future__ import annotations

import bisect
import csv
import io
import itertools
import random
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources


@dataclass(frozen=True)
class KommunePopulation:
    kode: str
    navn: str
    region: str
    indbyggere: int


@cache
def populations() -> tuple[KommunePopulation, ...]:
    text = resources.files("sim.data").joinpath("kommuner.csv").read_text(encoding="utf-8")
    return tuple(
        KommunePopulation(kode=r["kode"], navn=r["navn"], region=r["region"], indbyggere=int(r["indbyggere"]))
        for r in csv.DictReader(io.StringIO(text))
    )


@cache
def by_kode() -> dict[str, KommunePopulation]:
    return {k.kode: k for k in populations()}


def total_population() -> int:
    return sum(k.indbyggere for k in populations())


class PopulationSampler:
    """Draws kommune codes in proportion to population; `shares` sends a fixed share to some kommuner first (the
    demo sends one application in ten to the kommune a person plays, so its inbox fills within a minute); the rest
    are drawn by population as before, those kommuner included."""

    def __init__(
        self, kommuner: tuple[KommunePopulation, ...] | None = None, shares: Mapping[str, float] | None = None
    ) -> None:
        self.kommuner = kommuner or populations()
        self._cumulative = list(itertools.accumulate(k.indbyggere for k in self.kommuner))
        known = {k.kode for k in self.kommuner}
        self.shares = dict(shares or {})
        for kode, share in self.shares.items():
            if kode not in known:
                raise ValueError(f"{kode!r} is not one of the kommuner sampled from")
            if not 0 < share < 1:
                raise ValueError(f"the share of {kode} must be between 0 and 1, not {share}")
        if sum(self.shares.values()) >= 1:
            raise ValueError("the fixed shares must leave room for the other kommuner")

    def sample(self, rng: random.Random) -> str:
        if self.shares:
            # One extra draw, only when shares are set: the sequence without shares stays what it always was.
            u = rng.random()
            for kode, share in self.shares.items():
                if u < share:
                    return kode
                u -= share
        x = rng.random() * self._cumulative[-1]
        return self.kommuner[bisect.bisect_right(self._cumulative, x)].kode
