#!/usr/bin/env bash
# Installs the Debian packages the build, the tests and the demo need, when they are missing.
# Safe to run repeatedly: it does nothing when everything is present.
set -euo pipefail

need=()
pkg-config --exists rdkafka 2>/dev/null || need+=(librdkafka-dev)
[ -f /usr/include/sqlite3.h ] || need+=(libsqlite3-dev)
command -v kcat >/dev/null 2>&1 || need+=(kcat)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
# The providers' TLS tests make a throwaway certificate with it.
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# The cancel-worker binary links jemalloc (Sources/CJemalloc): its header and library to build.
[ -f /usr/include/jemalloc/jemalloc.h ] || need+=(libjemalloc-dev)
if [ "${WITH_POSTGRES:-0}" = 1 ]; then
    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
fi
if [ "${WITH_BENCH_TOOLS:-0}" = 1 ]; then
    command -v wrk >/dev/null 2>&1 || need+=(wrk)
fi
python3 -c 'import jsonschema, yaml' >/dev/null 2>&1 || need+=(python3-jsonschema python3-yaml)
# The console's browser test drives Debian's chromium headless through chromedriver (selenium from PyPI below).
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
# selenium (PyPI) drives that chromium through that chromedriver; it downloads no browser.
python3 -c 'import selenium' >/dev/null 2>&1 || python3 -m pip install --quiet 'selenium>=4.10,<5'

# The Python wire-contract example (examples/python) and its test use confluent-kafka from PyPI
# (a Debian-managed python3 needs --break-system-packages).
if ! python3 -c 'import confluent_kafka' >/dev/null 2>&1; then
    python3 -m pip install --quiet confluent-kafka ||
        python3 -m pip install --quiet --break-system-packages confluent-kafka ||
        echo "ensure-packages: could not install confluent-kafka from PyPI (the wire-contract test needs it)" >&2
fi

if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi

echo "ensure-packages: installing ${need[*]}" >&2
run() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else
        echo "ensure-packages: need root (or sudo) to install: ${need[*]}" >&2
        exit 1
    fi
}
export DEBIAN_FRONTEND=noninteractive
run apt-get update -qq
run apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The python modules may come from PyPI on machines whose python3 is not Debian's.
if ! python3 -c 'import jsonschema, yaml' >/dev/null 2>&1; then
    python3 -m pip install --quiet jsonschema pyyaml
fi
