#!/usr/bin/env bash
# run-tests.sh COMMAND [ARG...]: how `make test` runs the test command.
#
# - Raises the soft limit on open descriptors. The suite runs many mock clusters, Kafka clients,
#   HTTP servers and worker processes at once: at its peak the test process alone holds about
#   1,500 descriptors (measured), more than the 1,024 soft limit many machines start with.
# - Bounds how many tests run at once: TEST_PARALLELISM (default 4 per core, 8 on two cores),
#   passed to swift-testing as SWT_EXPERIMENTAL_MAXIMUM_PARALLELIZATION_WIDTH. Unbounded, all
#   ~360 tests start together: mock clusters, sandboxes and a dozen debug worker processes kept
#   two cores at 0 % idle with 20-65 runnable threads for over a minute, and 27-40 timing
#   assertions failed per run (a 1 s timeout ending after 5 s, PostgreSQL "not reachable within
#   30 s"). Measured on two cores: unbounded 227 s and 27 issues; 12 at once 304 s and 2 issues;
#   8 at once 370 s and none.
# - Bounds the run: scripts/watchdog.sh stops it after TEST_TIME_LIMIT seconds (default 1500;
#   the suite takes 5-7 minutes), printing first what each of its processes was doing.
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
cores=$(nproc 2>/dev/null || echo 2)
export SWT_EXPERIMENTAL_MAXIMUM_PARALLELIZATION_WIDTH="${TEST_PARALLELISM:-$((cores * 4))}"
exec ./scripts/watchdog.sh "${TEST_TIME_LIMIT:-1500}" "$@"
