#!/usr/bin/env bash
# run-tests.sh COMMAND [ARG...]: how `make test` runs the test command.
#
# - Raises the soft limit on open descriptors. The suite runs many mock clusters, Kafka clients,
#   HTTP servers and worker processes at once: at its peak the test process alone holds about
#   1,500 descriptors (measured), more than the 1,024 soft limit many machines start with.
# - Bounds the run: scripts/watchdog.sh stops it after TEST_TIME_LIMIT seconds (default 1500;
#   the suite takes 3-5 minutes), printing first what each of its processes was doing.
set -euo pipefail
cd "$(dirname "$0")/.."

want=65536
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$want" ]; then want=$hard; fi
if [ "$(ulimit -Sn)" != unlimited ] && [ "$(ulimit -Sn)" -lt "$want" ]; then
    ulimit -Sn "$want" || true
fi
if [ "$(ulimit -Sn)" != unlimited ] && [ "$(ulimit -Sn)" -lt 2048 ]; then
    echo "run-tests: open descriptors limited to $(ulimit -Sn) (hard limit $hard); the suite may need ~1,500" >&2
fi
exec ./scripts/watchdog.sh "${TEST_TIME_LIMIT:-1500}" "$@"
