"""Custom search attributes for operations staff in the Web UI. Values are plain text: never personal data."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

CASE_STATUS = SearchAttributeKey.for_keyword("CaseStatus")
KOMMUNE_KODE = SearchAttributeKey.for_keyword("KommuneKode")
SLA_DUE_AT = SearchAttributeKey.for_datetime("SlaDueAt")
SLA_OVERDUE = SearchAttributeKey.for_bool("SlaOverdue")
CASE_TYPE = SearchAttributeKey.for_keyword("CaseType")
POLICY_VERSION = SearchAttributeKey.for_keyword("PolicyVersion")
# Set (true) on a case or task workflow that stopped because the event log refused to store its events: it waits
# for operations (the current details say why). Never set otherwise, so a workflow without it is not waiting.
NEEDS_OPERATIONS = SearchAttributeKey.for_bool("NeedsOperations")

ALL = (CASE_STATUS, KOMMUNE_KODE, SLA_DUE_AT, SLA_OVERDUE, CASE_TYPE, POLICY_VERSION, NEEDS_OPERATIONS)

# The server-side registration: name -> type as the `temporal` CLI spells it.
REGISTRATION: dict[str, str] = {
    "CaseStatus": "Keyword",
    "KommuneKode": "Keyword",
    "SlaDueAt": "Datetime",
    "SlaOverdue": "Bool",
    "CaseType": "Keyword",
    "PolicyVersion": "Keyword",
    "NeedsOperations": "Bool",
}
