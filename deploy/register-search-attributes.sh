#!/bin/sh
# Registers Sagsflow's search attributes with the `temporal` CLI, for compose's temporalio/admin-tools container,
# which has no `sagsflow`; where the Sagsflow image runs (Kubernetes), `sagsflow search-attributes register` does
# the same from workflows/search_attributes.py directly. Safe to run again: existing ones are kept.
# Any failure ends the script non-zero (set -e), so a service that depends on it does not start on a cluster that
# would fail every workflow task.
set -eu
ns="${TEMPORAL_NAMESPACE:-default}"
# A copy of workflows/search_attributes.py REGISTRATION, in its order; tests/deploy/test_deploy_files.py fails when
# the two differ, so the Python list stays the one source of truth.
attributes="CaseStatus=Keyword TaskStatus=Keyword KommuneKode=Keyword SlaDueAt=Datetime SlaOverdue=Bool CaseType=Keyword PolicyVersion=Keyword NeedsOperations=Bool"
# Listed once, and a failed listing stops here rather than reading as "none registered".
known="$(temporal operator search-attribute list --namespace "$ns")"
for pair in $attributes; do
  name="${pair%%=*}"; type="${pair#*=}"
  if printf '%s\n' "$known" | grep -q "^ *$name "; then
    echo "search attribute $name exists"
  else
    temporal operator search-attribute create --namespace "$ns" --name "$name" --type "$type"
  fi
done
