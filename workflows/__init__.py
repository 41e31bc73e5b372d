"""The case lifecycle on Temporal. What other parts (API, simulator, reports) use:

Workflow ids: `case-<case_id>` (CaseWorkflow; case_id is our own uuid) and `task-<task_id>` (OplysningTaskWorkflow,
one per request to a kommune; task ids are uuids chosen by the case). Start a case with
`workflows.client.start_case(client, CaseInput(...), task_queue=...)`.

Updates (request model → result model; all in workflows/models.py):
  on task-<task_id>:  submit_part(SubmitPartRequest), request_extension(ExtensionRequest),
                      decide_extension(ExtensionDecision), ask_question(QuestionRequest),
                      answer_question(AnswerRequest), return_task(ReturnRequest)          → TaskUpdateResult
  on case-<case_id>:  decide(DecisionRequest), withdraw(WithdrawRequest), transfer(TransferRequest)
                                                                                           → CaseUpdateResult
Queries: `status` → TaskSummary / CaseSummary (no personal data). A task the case took back (withdrawal, move) answers
`status=cancelled` with `cancelled_because` ("withdrawn" | "moved"); a case knows its open task only as requested
(the task workflow records its progress), so `CaseSummary.with_task(<the task's status>)` gives the real picture.
Search attributes: see workflows/search_attributes.py (CaseStatus on cases only, TaskStatus on tasks).
Refusals: the update fails with an ApplicationError whose `type` is the domain code (conflict, not_found,
forbidden, invalid) and whose message says why. The same idempotency key again gets the first answer; after the
workflow has closed, the answer is in its result (`TaskResult.answers` / `CaseResult.answers`, key
"<update>:<id>").
"""
