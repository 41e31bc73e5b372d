#!/bin/sh
# Registers Sagsflow's search attributes on a Temporal cluster; safe to run again (existing ones are kept).
# Names and types must match workflows/search_attributes.py.
set -eu
ns="${TEMPORAL_NAMESPACE:-default}"
for pair in CaseStatus=Keyword TaskStatus=Keyword KommuneKode=Keyword SlaDueAt=Datetime SlaOverdue=Bool CaseType=Keyword PolicyVersion=Keyword NeedsOperations=Bool; do
  name="${pair%%=*}"; type="${pair#*=}"
  if temporal operator search-attribute list --namespace "$ns" | grep -q "^ *$name "; then
    echo "search attribute $name exists"
  else
    temporal operator search-attribute create --namespace "$ns" --name "$name" --type "$type"
  fi
done
