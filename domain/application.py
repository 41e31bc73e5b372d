"""The application as the citizen submits it. Pure data: validation here, rules in `prescreen`.

Personal data lives in `Applicant` and in the health-related fields; the event log encrypts the `personal` part of
`ApplicationReceived` per person, and nothing here is ever logged.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator
from stdnum.dk import cpr as stdnum_cpr
from stdnum.exceptions import ValidationError as StdnumValidationError

from domain.boundary import CPR_PATTERN, MAX_NAME, FiniteFloat, KommuneKode, PersonName, PlausibleDate
from domain.kommuner import is_kommune, normalize_kode

# A working life, in periods and in months or years: beyond these no person could mean the number.
MAX_EMPLOYMENT_PERIODS = 200
MAX_MONTHS = 100 * 12
MAX_YEARS = 100


class CaseType(StrEnum):
    SENIORPENSION = "seniorpension"
    SENIORFOERTIDSPENSION = "seniorfoertidspension"


class EmploymentKind(StrEnum):
    EMPLOYMENT = "employment"
    FLEKSJOB = "fleksjob"
    SELF_EMPLOYED = "self_employed"


class AttachmentStatus(StrEnum):
    """Current attachment to the labour market (the caseworkers' guide's list)."""

    WORKING = "working"
    SYGEDAGPENGE = "sygedagpenge"
    ARBEJDSLOESHEDSDAGPENGE = "arbejdsloeshedsdagpenge"
    LEDIGHEDSYDELSE = "ledighedsydelse"
    RESSOURCEFORLOEBSYDELSE = "ressourceforloebsydelse"
    CARE_OF_RELATIVE = "care_of_relative"  # serviceloven: caring for a close relative
    CARE_OF_DISABLED_CHILD = "care_of_disabled_child"  # serviceloven: caring for a disabled child
    KONTANTHJAELP = "kontanthjaelp"
    NO_INCOME = "no_income"


class PriorBenefit(StrEnum):
    NONE = "none"
    FOERTIDSPENSION = "foertidspension"
    INVALIDITETSYDELSE = "invaliditetsydelse"


def parse_cpr(value: str) -> str:
    """Normalise to DDMMYY-SSSS. Checks format and date only: modulus 11 is not guaranteed since 2007."""
    # ASCII only, as the schema says: stdnum would read "０１０３５７１２３４" as the same number, but the kommune code
    # next to it may not be written that way either, and a person's number is not something to guess at.
    if not value.isascii():
        raise ValueError("CPR number must be written in ASCII digits, DDMMYY-SSSS")
    digits = stdnum_cpr.compact(value)
    if len(digits) != 10 or not digits.isdigit():
        raise ValueError("CPR number must be 10 digits, DDMMYY-SSSS")
    try:
        stdnum_cpr.get_birth_date(digits)
    except StdnumValidationError:
        raise ValueError("CPR number does not contain a valid birth date") from None
    return f"{digits[:6]}-{digits[6:]}"


# The pattern is for the schema (clients, generators); `parse_cpr` checks, and says precisely what is wrong.
Cpr = Annotated[str, AfterValidator(parse_cpr), Field(json_schema_extra={"pattern": CPR_PATTERN})]


def birth_date_from_cpr(cpr: str) -> date:
    return stdnum_cpr.get_birth_date(stdnum_cpr.compact(cpr))


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Applicant(Frozen):
    cpr: Cpr = Field(description="CPR number, DDMMYY-SSSS; personal data")
    name: PersonName = Field(description=f"Full name, up to {MAX_NAME} characters on one line; personal data")

    def __repr__(self) -> str:  # a stray repr in a traceback must not leak the person
        return "Applicant(<personal data>)"

    __str__ = __repr__


class EmploymentPeriod(Frozen):
    start: PlausibleDate
    end: PlausibleDate | None = Field(default=None, description="None while the period is ongoing")
    weekly_hours: FiniteFloat = Field(gt=0, le=168)
    kind: EmploymentKind = EmploymentKind.EMPLOYMENT
    foreign: bool = False

    @model_validator(mode="after")
    def _end_after_start(self) -> EmploymentPeriod:
        if self.end is not None and self.end < self.start:
            raise ValueError("end must not be before start")
        return self


class CurrentAttachment(Frozen):
    status: AttachmentStatus
    since: PlausibleDate = Field(description="When the current status began")
    stopped_work_for_health_reasons: bool = False
    stopped_work_on: PlausibleDate | None = None


class Application(Frozen):
    case_type: CaseType
    applicant: Applicant
    kommune_kode: KommuneKode = Field(description="The applicant's kommune")
    received_on: PlausibleDate
    # Bounded so the application fits a Temporal payload with room to spare (a working life is some dozen periods).
    employment: tuple[EmploymentPeriod, ...] = Field(default=(), max_length=MAX_EMPLOYMENT_PERIODS)
    current_attachment: CurrentAttachment
    declared_weekly_work_capacity_hours: FiniteFloat = Field(
        ge=0,
        le=168,
        description="Work capacity the applicant declares, hours a week, relative to the latest job",
    )
    latest_job_months: int = Field(default=0, ge=0, le=MAX_MONTHS, description="Months in the latest job")
    offered_capacity_development: bool = Field(default=False, description="Offers to develop the work capacity")
    prior_benefit: PriorBenefit = PriorBenefit.NONE
    danish_citizen_or_equivalent: bool = True
    resides_in_denmark: bool = True
    residence_years_15_to_pension_age: FiniteFloat = Field(default=40, ge=0, le=MAX_YEARS)
    consent_to_health_records: bool = False

    @field_validator("kommune_kode")
    @classmethod
    def _kommune(cls, value: str) -> str:
        kode = normalize_kode(value)
        if not is_kommune(kode):
            raise ValueError("must be one of the 98 kommune codes")
        return kode

    @property
    def birth_date(self) -> date:
        return birth_date_from_cpr(self.applicant.cpr)
