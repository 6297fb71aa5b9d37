#!/bin/sh
# The namespace qlrf-run uses, and the search attributes its runs publish
# (QlrfName, QlrfKind, QlrfWaiting: `list`, `pending` and the Temporal UI filter on them).
set -eu
NAMESPACE=${DEFAULT_NAMESPACE:-default}
ADDRESS=${TEMPORAL_ADDRESS:-temporal:7233}

attempt=1
until temporal operator cluster health --address "$ADDRESS" >/dev/null 2>&1; do
  [ "$attempt" -ge 60 ] && { echo "Temporal at $ADDRESS never became healthy"; exit 1; }
  attempt=$((attempt + 1)); sleep 2
done
temporal operator namespace describe -n "$NAMESPACE" --address "$ADDRESS" >/dev/null 2>&1 \
  || temporal operator namespace create -n "$NAMESPACE" --address "$ADDRESS"
for spec in QlrfName:Keyword QlrfKind:Keyword QlrfWaiting:KeywordList; do
  name=${spec%%:*}; type=${spec#*:}
  temporal operator search-attribute create --namespace "$NAMESPACE" --address "$ADDRESS" \
    --name "$name" --type "$type" >/dev/null 2>&1 || echo "search attribute $name exists"
done
echo "namespace $NAMESPACE is ready for qlrf-run"
