"""Custom search attributes for operations staff in the Web UI. Values are plain text: never personal data.

Which workflow carries what (the operations guide's queries rely on it):
- case workflows: CaseStatus, KommuneKode (the case's kommune), CaseType, PolicyVersion, and while a task is out
  SlaDueAt / SlaOverdue of that task;
- task workflows: TaskStatus (the task's own status), KommuneKode (the kommune asked), CaseType, PolicyVersion,
  SlaDueAt / SlaOverdue while the task is open. Never CaseStatus, so a search by case status finds cases only.
A closed case or task keeps its final status, SlaOverdue=false and no SlaDueAt, so it never matches an open one.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

CASE_STATUS = SearchAttributeKey.for_keyword("CaseStatus")
TASK_STATUS = SearchAttributeKey.for_keyword("TaskStatus")
KOMMUNE_KODE = SearchAttributeKey.for_keyword("KommuneKode")
SLA_DUE_AT = SearchAttributeKey.for_datetime("SlaDueAt")
SLA_OVERDUE = SearchAttributeKey.for_bool("SlaOverdue")
CASE_TYPE = SearchAttributeKey.for_keyword("CaseType")
POLICY_VERSION = SearchAttributeKey.for_keyword("PolicyVersion")
# Set (true) on a case or task workflow that stopped because the event log refused to store its events: it waits
# for operations (the current details say why). Never set otherwise, so a workflow without it is not waiting.
NEEDS_OPERATIONS = SearchAttributeKey.for_bool("NeedsOperations")

ALL = (CASE_STATUS, TASK_STATUS, KOMMUNE_KODE, SLA_DUE_AT, SLA_OVERDUE, CASE_TYPE, POLICY_VERSION, NEEDS_OPERATIONS)

# The server-side registration: name -> type as the `temporal` CLI spells it. A cluster must have a new one
# registered before workers that set it are deployed (an unknown attribute fails the workflow task).
REGISTRATION: dict[str, str] = {
    "CaseStatus": "Keyword",
    "TaskStatus": "Keyword",
    "KommuneKode": "Keyword",
    "SlaDueAt": "Datetime",
    "SlaOverdue": "Bool",
    "CaseType": "Keyword",
    "PolicyVersion": "Keyword",
    "NeedsOperations": "Bool",
}
