#!/bin/sh
# The namespace qlrf-run uses, and the search attributes its runs publish
# (QlrfName, QlrfKind, QlrfWaiting: `list`, `pending` and the Temporal UI filter on them).
# Safe to run again: creating what exists as asked succeeds. Anything else fails
# loudly, with the server's words (an attribute that exists with another type, too).
set -eu
NAMESPACE=${DEFAULT_NAMESPACE:-default}
ADDRESS=${TEMPORAL_ADDRESS:-temporal:7233}

attempt=1
until temporal operator cluster health --address "$ADDRESS" >/dev/null 2>&1; do
  [ "$attempt" -ge 60 ] && { echo "Temporal at $ADDRESS never became healthy" >&2; exit 1; }
  attempt=$((attempt + 1)); sleep 2
done
if ! temporal operator namespace describe -n "$NAMESPACE" --address "$ADDRESS" >/dev/null 2>&1; then
  if ! said=$(temporal operator namespace create -n "$NAMESPACE" --address "$ADDRESS" 2>&1); then
    case $said in
      *"already exists"* | *"already registered"*) ;;  # made meanwhile by another run
      *) echo "cannot create namespace $NAMESPACE: $said" >&2; exit 1 ;;
    esac
  fi
fi
for spec in QlrfName:Keyword QlrfKind:Keyword QlrfWaiting:KeywordList; do
  name=${spec%%:*}; type=${spec#*:}
  attempt=1
  # A namespace just made is known to every part of the server only a few seconds on.
  until said=$(temporal operator search-attribute create --namespace "$NAMESPACE" \
      --address "$ADDRESS" --name "$name" --type "$type" 2>&1); do
    case $said in
      *"different type"*) echo "search attribute $name: $said" >&2; exit 1 ;;
      *"already exists"*) echo "search attribute $name exists"; break ;;
      *"is not found"*) [ "$attempt" -lt 30 ] || {
          echo "cannot create search attribute $name: $said" >&2; exit 1; } ;;
      *) echo "cannot create search attribute $name: $said" >&2; exit 1 ;;
    esac
    attempt=$((attempt + 1)); sleep 1
  done
done
echo "namespace $NAMESPACE is ready for qlrf-run"
