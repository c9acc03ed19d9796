#!/usr/bin/env bash
# Run once by the postgres image when it initialises an empty data volume
# (mounted into /docker-entrypoint-initdb.d by deploy/compose.yaml): creates
# `tessera_verifier`, a role that can read every table the owner role
# ($POSTGRES_USER, which the migration and the issuer use) has created or
# will create. The verifiers connect with it. Its one write, the last-used
# columns of `tokens`, is granted by the migration service
# (TESSERA_VERIFIER_ROLE in deploy/compose.yaml), once the table exists.
#
# The same statements set up the role on any PostgreSQL; see
# deploy/README.md.
set -euo pipefail

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v owner="$POSTGRES_USER" -v db="$POSTGRES_DB" \
  -v password="${TESSERA_VERIFIER_DB_PASSWORD:?set TESSERA_VERIFIER_DB_PASSWORD}" <<'SQL'
CREATE ROLE tessera_verifier LOGIN PASSWORD :'password';
GRANT CONNECT ON DATABASE :"db" TO tessera_verifier;
GRANT USAGE ON SCHEMA public TO tessera_verifier;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO tessera_verifier;
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
  GRANT SELECT ON TABLES TO tessera_verifier;
SQL
