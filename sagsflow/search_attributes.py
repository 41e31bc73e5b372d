"""Custom search attributes for operations staff in the Web UI. Values are plain text: never personal data."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

CASE_STATUS = SearchAttributeKey.for_keyword("CaseStatus")
KOMMUNE_KODE = SearchAttributeKey.for_keyword("KommuneKode")
SLA_DUE_AT = SearchAttributeKey.for_datetime("SlaDueAt")
SLA_OVERDUE = SearchAttributeKey.for_bool("SlaOverdue")
CASE_TYPE = SearchAttributeKey.for_keyword("CaseType")
POLICY_VERSION = SearchAttributeKey.for_keyword("PolicyVersion")

ALL = (CASE_STATUS, KOMMUNE_KODE, SLA_DUE_AT, SLA_OVERDUE, CASE_TYPE, POLICY_VERSION)

# The server-side registration: name -> type as the `temporal` CLI spells it.
REGISTRATION: dict[str, str] = {
    "CaseStatus": "Keyword",
    "KommuneKode": "Keyword",
    "SlaDueAt": "Datetime",
    "SlaOverdue": "Bool",
    "CaseType": "Keyword",
    "PolicyVersion": "Keyword",
}
