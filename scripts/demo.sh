#!/usr/bin/env bash
# make demo: the whole system on the embedded default (see `cancel-worker demo --help`).
set -euo pipefail
exec .build/debug/cancel-worker demo "$@"
