from __future__ import annotations

import pytest

from domain.errors import DomainError, UnknownKommuneError
from domain.kommuner import FORUM_KOMMUNER, all_kommuner, is_kommune, kommune, normalize_kode


def test_the_98_kommuner_and_their_population() -> None:
    ks = all_kommuner()
    assert len(ks) == 98
    assert len({k.kode for k in ks}) == 98
    assert sum(k.indbyggere for k in ks) == 5_932_561
    assert {k.region for k in ks} == {
        "Region Hovedstaden",
        "Region Sjælland",
        "Region Syddanmark",
        "Region Midtjylland",
        "Region Nordjylland",
    }


@pytest.mark.parametrize("code", ["0329", 329, "329", " 329 "])
def test_lookup_by_code_in_any_spelling(code: str | int) -> None:
    k = kommune(code)
    assert (k.kode, k.navn) == ("329", "Ringsted")
    assert is_kommune(code)
    assert normalize_kode(code) == "329"


def test_forum_kommuner_are_known() -> None:
    assert [kommune(k).navn for k in FORUM_KOMMUNER] == ["København", "Ringsted", "Hedensted", "Esbjerg", "Brønderslev"]


# Only ASCII digits: fullwidth, superscript and Arabic-Indic digits are digits to Python, not to a kommune system.
@pytest.mark.parametrize("code", ["999", "0", "abc", "", 100, "１０１", "³", "٣٢٩"])
def test_unknown_code_is_a_clear_error(code: str | int) -> None:
    assert not is_kommune(code)
    with pytest.raises(UnknownKommuneError, match="unknown kommune code") as info:
        kommune(code)
    assert isinstance(info.value, DomainError)
    assert info.value.code == "unknown_kommune"
