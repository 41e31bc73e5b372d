"""The 98 kommuner (codes and names from DAWA, regions, population 1 January 2023 from Danmarks Statistik)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from functools import cache
from importlib import resources

from domain.errors import UnknownKommuneError

# Samarbejdsforum for Seniorpension: the five kommuner in the forum from the start.
FORUM_KOMMUNER: tuple[str, ...] = ("101", "329", "766", "561", "810")


@dataclass(frozen=True)
class Kommune:
    kode: str
    navn: str
    region: str
    indbyggere: int


@cache
def all_kommuner() -> tuple[Kommune, ...]:
    text = resources.files("domain.data").joinpath("kommuner.csv").read_text(encoding="utf-8")
    return tuple(
        Kommune(kode=row["kode"], navn=row["navn"], region=row["region"], indbyggere=int(row["indbyggere"]))
        for row in csv.DictReader(io.StringIO(text))
    )


@cache
def _by_code() -> dict[str, Kommune]:
    return {k.kode: k for k in all_kommuner()}


def normalize_kode(kode: str | int) -> str:
    """ "0329" → "329". Only ASCII digits are a code: `str.isdigit` is also true of "１０１" and "³", which no kommune
    system would read as 101 (and `int("³")` fails)."""
    text = str(kode).strip()
    return str(int(text)) if text.isascii() and text.isdigit() else text


def is_kommune(kode: str | int) -> bool:
    return normalize_kode(kode) in _by_code()


def kommune(kode: str | int) -> Kommune:
    found = _by_code().get(normalize_kode(kode))
    if found is None:
        raise UnknownKommuneError(str(kode))
    return found
