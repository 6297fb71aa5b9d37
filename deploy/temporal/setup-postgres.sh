#!/bin/sh
# Temporal's two databases and their schemas, in the compose file's PostgreSQL.
# Safe to run again: a database or schema that already exists is kept, and
# update-schema has nothing to do. Any other error stops here, with its words.
set -eu
: "${POSTGRES_SEEDS:?set POSTGRES_SEEDS to the PostgreSQL host}"
: "${POSTGRES_USER:?set POSTGRES_USER}"
PORT=${DB_PORT:-5432}
SCHEMAS=/etc/temporal/schema/postgresql/v12

# Runs `temporal-sql-tool ... "$@"` on database $db; "already exists" is success.
sql_tool() {
  what=$1; shift
  if ! said=$(temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -u "$POSTGRES_USER" \
      -p "$PORT" --db "$db" "$@" 2>&1); then
    case $said in
      *"already exists"*) echo "$what exists" ;;
      *) echo "$what: failed: $said" >&2; exit 1 ;;
    esac
  fi
}

nc -z -w 10 "$POSTGRES_SEEDS" "$PORT"
for db in temporal temporal_visibility; do
  case $db in temporal) dir=temporal ;; *) dir=visibility ;; esac
  sql_tool "database $db" create
  sql_tool "the schema of $db" setup-schema -v 0.0
  sql_tool "the schema update of $db" update-schema -d "$SCHEMAS/$dir/versioned"
done
echo "Temporal's schema is ready"
