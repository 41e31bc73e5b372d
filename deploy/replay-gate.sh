#!/usr/bin/env bash
# Before each deploy: replay saved and freshly exported production histories against the new code.
# A non-determinism error (TMPRL1100) fails the deploy: change the workflow behind workflow.patched instead.
#   deploy/replay-gate.sh [N]   exports the N most recent cases (default 50) from $TEMPORAL_ADDRESS, then replays
set -euo pipefail
n="${1:-50}"
out="$(mktemp -d)"
temporal workflow list --query 'WorkflowType="CaseWorkflow"' --limit "$n" -o json \
  | python3 -c 'import json,sys; [print(w["execution"]["workflowId"]) for w in json.load(sys.stdin)]' \
  | while read -r wid; do temporal workflow show -w "$wid" -o json > "$out/$wid.json"; done
SAGSFLOW_EXTRA_HISTORIES="$out" python -m pytest -q tests/workflows -k replay
