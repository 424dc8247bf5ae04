#!/usr/bin/env bash
# Runs a command with a test PostgreSQL server up and CANCEL_WORKER_TEST_POSTGRES_URL exported.
set -euo pipefail
cd "$(dirname "$0")/.."
WITH_POSTGRES=1 ./scripts/ensure-packages.sh
CANCEL_WORKER_TEST_POSTGRES_URL=$(./scripts/test-postgres.sh)
export CANCEL_WORKER_TEST_POSTGRES_URL
exec "$@"
