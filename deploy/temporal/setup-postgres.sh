#!/bin/sh
# Temporal's two databases and their schemas, in the compose file's PostgreSQL.
# Safe to run again: `create` of an existing database fails, the schema steps no-op.
set -eu
: "${POSTGRES_SEEDS:?set POSTGRES_SEEDS to the PostgreSQL host}"
: "${POSTGRES_USER:?set POSTGRES_USER}"
PORT=${DB_PORT:-5432}
SCHEMAS=/etc/temporal/schema/postgresql/v12

nc -z -w 10 "$POSTGRES_SEEDS" "$PORT"
for db in temporal temporal_visibility; do
  case $db in temporal) dir=temporal ;; *) dir=visibility ;; esac
  tool="temporal-sql-tool --plugin postgres12 --ep $POSTGRES_SEEDS -u $POSTGRES_USER -p $PORT --db $db"
  $tool create || echo "database $db exists"
  $tool setup-schema -v 0.0 || true
  $tool update-schema -d "$SCHEMAS/$dir/versioned"
done
echo "Temporal's schema is ready"
