#!/usr/bin/env bash
# The replay gate, before each rollout: the code (and the locked libraries) about to be deployed replays
#   1. the saved histories of tests/histories (every recorded scenario, under their test-only key ring), and
#   2. the N most recent executions of each workflow type on the cluster (CaseWorkflow, OplysningTaskWorkflow,
#      QuarterlyReportWorkflow), fetched from TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE and decoded with the production
#      codec key ring (SAGSFLOW_CODEC_KEY_FILE, or the secrets dir), as the worker would decode them.
# Any failure (a non-determinism error, TMPRL1100, names the workflow) exits non-zero: do not roll out. Put the
# change behind workflow.patched instead (docs/architecture.md, "Where a change goes").
#
# Run it from a checkout of the release, with that release's environment installed from requirements.lock
# (`make venv`, or pip install -r requirements.lock && pip install --no-deps .): the libraries are part of what is
# replayed. A dependency upgrade goes the same way: `make lock`, commit pyproject.toml and requirements.lock
# together, run this gate against production histories, and deploy only when it passes.
#
#   N=50 deploy/replay-gate.sh                  N: per workflow type (default 50)
#   QUERY='StartTime > "2026-01-01T00:00:00Z"'  narrows what is fetched (a visibility query)
#   HISTORIES=<dir>                             saved histories (default tests/histories; HISTORIES= skips them)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
if [[ -x "$root/.venv/bin/sagsflow" ]]; then sagsflow="$root/.venv/bin/sagsflow"; else sagsflow="sagsflow"; fi
histories="${HISTORIES-$root/tests/histories}"

if [[ -n "$histories" ]]; then
  if [[ ! -d "$histories" ]]; then
    echo "replay gate: no saved histories at $histories (run from a checkout, or set HISTORIES= to skip them)" >&2
    exit 2
  fi
  echo "== saved histories ($histories)"
  "$sagsflow" replay "$histories" --key-ring "$histories/test-keyring.json"
fi

echo "== the cluster's most recent histories (${N:-50} per workflow type)"
if [[ -n "${QUERY:-}" ]]; then
  "$sagsflow" replay --limit "${N:-50}" --query "$QUERY"
else
  "$sagsflow" replay --limit "${N:-50}"
fi
