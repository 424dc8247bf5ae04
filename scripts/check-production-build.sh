#!/usr/bin/env bash
# The production build links no dev tooling. Builds `cancel-worker` the way deploy/Dockerfile
# does (`--disable-default-traits`: no `DevTools` trait) in its own scratch directory, then fails
# if its help lists a dev subcommand or its symbol table holds a symbol of the Sandbox, DevTools
# or Histogram module. When the default build's binary exists (`swift build`), the same symbol
# check must find those modules there, so the check is known to see them; both sizes are printed.
set -euo pipefail
cd "$(dirname "$0")/.."
SWIFT=${SWIFT:-swift}
SCRATCH=${SCRATCH:-.build-production}
DEV_SUBCOMMANDS=(demo bench chaos sandbox dev-cluster)
DEV_MODULES=(Sandbox DevTools Histogram)

$SWIFT build --product cancel-worker --disable-default-traits --scratch-path "$SCRATCH"
production="$($SWIFT build --disable-default-traits --scratch-path "$SCRATCH" --show-bin-path)/cancel-worker"
default="$($SWIFT build --show-bin-path)/cancel-worker"

# Symbols of `module` in `binary`: Swift mangles a module's declarations as `$s<length><name>…`.
symbols_of() {
    local binary=$1 module=$2
    nm "$binary" | grep -cE " _?\\\$s${#module}${module}" || true
}

failed=0
help=$("$production" --help)
for command in "${DEV_SUBCOMMANDS[@]}"; do
    if grep -qE "^  ${command}( |\$)" <<<"$help"; then
        echo "production-check: \`cancel-worker --help\` lists the dev subcommand $command" >&2
        failed=1
    fi
done
for module in "${DEV_MODULES[@]}"; do
    count=$(symbols_of "$production" "$module")
    if [ "$count" -ne 0 ]; then
        echo "production-check: the binary holds $count symbols of the $module module" >&2
        failed=1
    fi
    if [ -x "$default" ] && [ "$(symbols_of "$default" "$module")" -eq 0 ]; then
        echo "production-check: no $module symbol found in the default build either: the check is blind" >&2
        failed=1
    fi
done

size() { stat -c %s "$1"; }
echo "production-check: $production: $(size "$production") bytes, no dev subcommand, no ${DEV_MODULES[*]} symbol"
if [ -x "$default" ]; then
    echo "production-check: default build $default: $(size "$default") bytes"
fi
exit $failed
