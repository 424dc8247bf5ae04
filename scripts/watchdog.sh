#!/usr/bin/env bash
# watchdog.sh SECONDS COMMAND [ARG...]
#
# Runs COMMAND with line-buffered standard output. If it is still running after SECONDS, prints
# what every process it started is doing (process tree, and each test or worker process's
# threads' stacks when gdb is installed), stops them all, and exits 124. A hung test run then
# ends with the evidence of where it hung instead of running into CI's time limit silently.
set -uo pipefail

limit=$1
shift

# A process group of its own, so that every descendant can be found and stopped.
setsid stdbuf -oL -eL "$@" &
leader=$!
trap 'kill -TERM -- -$leader 2>/dev/null' INT TERM

waited=0
while kill -0 "$leader" 2>/dev/null; do
    if [ "$waited" -ge "$limit" ]; then
        echo >&2
        echo "watchdog: '$*' still running after ${limit} s; what its processes are doing:" >&2
        ps -o pid,ppid,etimes,stat,args -g "$leader" >&2 || true
        if command -v gdb >/dev/null 2>&1; then
            for pid in $(ps -o pid= -g "$leader"); do
                name=$(ps -o comm= -p "$pid" 2>/dev/null) || continue
                case "$name" in
                    *xctest* | *PackageTests* | cancel-worker | swift-test*) ;;
                    *) continue ;;
                esac
                echo "watchdog: threads of $pid ($name):" >&2
                timeout 60 gdb -batch -nx -p "$pid" -ex 'set pagination off' -ex 'thread apply all bt 30' 2>&1 |
                    grep -E '^(Thread|#)' >&2 || true
            done
        else
            echo "watchdog: gdb is not installed; no stacks" >&2
        fi
        kill -TERM -- "-$leader" 2>/dev/null
        sleep 10
        kill -KILL -- "-$leader" 2>/dev/null
        wait "$leader" 2>/dev/null
        echo "watchdog: stopped '$*' after ${limit} s" >&2
        exit 124
    fi
    sleep 1
    waited=$((waited + 1))
done
wait "$leader"
