# cancel-worker — the two commands a newcomer needs are `make demo` and `make test`.
# Both install missing Debian packages first (scripts/ensure-packages.sh).

SWIFT ?= swift
BUILD_FLAGS ?=
TEST_FLAGS ?=

.PHONY: demo test build release packages format lint clean bench chaos microbench production-check

packages:
	@./scripts/ensure-packages.sh

build: packages
	$(SWIFT) build $(BUILD_FLAGS)

release: packages
	$(SWIFT) build -c release $(BUILD_FLAGS)

## Runs the whole system on the embedded default: mock Kafka cluster, provider sandbox, workers.
demo: packages
	$(SWIFT) build $(BUILD_FLAGS) --product cancel-worker
	./scripts/demo.sh

## Runs every test tier: unit, Kafka on the mock cluster, providers on the sandbox, end to end.
## PostgreSQL tests run against a throwaway server that scripts/with-postgres.sh starts.
## scripts/run-tests.sh raises the open-descriptor limit, runs at most TEST_PARALLELISM tests at
## once (default 4 per core) and stops a run still going after TEST_TIME_LIMIT seconds (it takes
## 5-7 minutes on 2 cores), printing first what its processes were doing.
## The short chaos run goes last, alone: its rate invariant counts calls where the sandbox
## receives them, and with every other suite on the same two cores the sandbox itself read
## requests 200 ms late (a run counted 11 arrivals in a second for calls sent 1.2 s apart).
export TEST_TIME_LIMIT ?= 1500
CHAOS_TESTS = ChaosCommandTests
test: packages
	$(SWIFT) build --build-tests $(BUILD_FLAGS)
	./scripts/with-postgres.sh ./scripts/run-tests.sh $(SWIFT) test --skip-build --skip $(CHAOS_TESTS) $(TEST_FLAGS)
	./scripts/run-tests.sh $(SWIFT) test --skip-build --filter $(CHAOS_TESTS) $(TEST_FLAGS)

## Benchmarks on a release build: the Kafka floor (p) and scenarios a–h of BENCHMARKS.md, figures printed and written to bench-results/.
bench: packages
	WITH_BENCH_TOOLS=1 ./scripts/ensure-packages.sh
	$(SWIFT) build -c release $(BUILD_FLAGS) --product cancel-worker
	.build/release/cancel-worker bench --json bench-results/latest.json

## Micro-benchmarks (ordo-one/benchmark): the GCRA limiter, the command decoder, the ledgers, the upstream client.
microbench: packages
	$(SWIFT) package --disable-sandbox benchmark --target CancelBenchmarks --target CancelClientBenchmarks

## Chaos: three worker processes, SIGKILL and restart every 10 s, a broker down for 5 s, provider faults;
## checks the invariants at the end and fails if any breaks. CHAOS_SECONDS (default 60) bounds the run.
CHAOS_SECONDS ?= 60
chaos: packages
	$(SWIFT) build $(BUILD_FLAGS) --product cancel-worker
	.build/debug/cancel-worker chaos --seconds $(CHAOS_SECONDS)

## The production build (as deploy/Dockerfile makes it: without the DevTools trait) links no dev tooling:
## no dev subcommand in its help, no Sandbox, DevTools or Histogram symbol in the binary.
production-check: packages
	SWIFT=$(SWIFT) ./scripts/check-production-build.sh

format:
	$(SWIFT) format --in-place --recursive --configuration .swift-format Package.swift Sources Tests

## Fails on any formatting finding (`make format` fixes most of them).
lint:
	$(SWIFT) format lint --strict --recursive --configuration .swift-format Package.swift Sources Tests

clean:
	rm -rf .build
