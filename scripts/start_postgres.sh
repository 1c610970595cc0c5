#!/usr/bin/env bash
# Start Debian's PostgreSQL (installing it if needed) and create a throwaway test
# database; prints the URL for CXR_TEST_POSTGRES_URL. Used by .ci/run.
set -euo pipefail
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
ver=$(ls /usr/lib/postgresql | sort -V | tail -1)
if ! pg_lsclusters -h | grep -q "^$ver main"; then
  pg_createcluster "$ver" main >/dev/null
fi
pg_ctlcluster "$ver" main start 2>/dev/null || true
for _ in $(seq 1 30); do
  su postgres -c "pg_isready -q" && break
  sleep 1
done
su postgres -c "psql -qtc \"SELECT 1 FROM pg_roles WHERE rolname='cxr'\"" | grep -q 1 ||
  su postgres -c "psql -qc \"CREATE ROLE cxr LOGIN SUPERUSER PASSWORD 'cxr-test-only'\""
su postgres -c "psql -qtc \"SELECT 1 FROM pg_database WHERE datname='cxr_test'\"" | grep -q 1 ||
  su postgres -c "createdb -O cxr cxr_test"
echo "postgresql+psycopg://cxr:cxr-test-only@127.0.0.1:5432/cxr_test"
