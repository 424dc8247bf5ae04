import CancelCore
import CancelWorkerTesting
import Foundation
import Kafka
import Logging
import Sandbox
import Testing
import WorkerApp

/// A finished `cancel-worker` run: exit status, output, and how long it took.
struct FinishedRun {
    var status: Int32
    var output: String
    var errors: String
    var elapsed: Duration
}

/// Runs `cancel-worker` to completion with standard input from /dev/null (never a terminal,
/// never waiting), killing it after `timeout`.
func runCancelWorker(
    _ arguments: [String], environment: [String: String] = [:], timeout: Duration = .seconds(60)
) async throws -> FinishedRun {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("cw-run-\(UUID())")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    let outPath = directory.appendingPathComponent("out")
    let errPath = directory.appendingPathComponent("err")
    _ = FileManager.default.createFile(atPath: outPath.path, contents: nil)
    _ = FileManager.default.createFile(atPath: errPath.path, contents: nil)
    let out = try FileHandle(forWritingTo: outPath)
    let err = try FileHandle(forWritingTo: errPath)
    let started = ContinuousClock.now
    let process = try SpawnedProcess(
        executable: ChildProcess.cancelWorkerPath, arguments: arguments,
        environment: ProcessInfo.processInfo.environment.merging(environment) { _, new in new },
        standardOutput: out.fileDescriptor, standardError: err.fileDescriptor)
    try out.close()
    try err.close()
    var status = try await process.waitForExit(timeout: timeout)
    if status == nil {
        process.send(SIGKILL)
        status = process.waitBlocking()
    }
    let elapsed = ContinuousClock.now - started
    return FinishedRun(
        status: status ?? -1,
        output: (try? String(contentsOf: outPath, encoding: .utf8)) ?? "",
        errors: (try? String(contentsOf: errPath, encoding: .utf8)) ?? "",
        elapsed: elapsed
    )
}

@Suite("Issue 17, the first hour: configuration, flags, unreachable Kafka", .timeLimit(.minutes(4)))
struct FirstHourTests {
    /// `config` and `run` are given the same input; both must refuse it with 78 and name it.
    @Test("config and run refuse the same inputs with exit 78, naming the key, file or variable")
    func configAndRunAgree() async throws {
        let malformed = FileManager.default.temporaryDirectory.appendingPathComponent("cw-\(UUID()).json").path
        try Data(#"{"group-id": "a" "max-in-flight": 5"#.utf8).write(to: URL(fileURLWithPath: malformed))
        defer { try? FileManager.default.removeItem(atPath: malformed) }
        let missing = "/nonexistent/cw-\(UUID()).json"
        let cases: [(arguments: [String], environment: [String: String], named: String)] = [
            (["--set", "ledger.url=mysql://x"], [:], "CANCEL_WORKER_LEDGER_URL"),
            (["--set", "kafka.security-protocol=tls"], [:], "CANCEL_WORKER_KAFKA_SECURITY_PROTOCOL"),
            (["--set", "max-inflight=5"], [:], "did you mean `max-in-flight`?"),
            (["--config", malformed], [:], malformed),
            (["--config", missing], [:], missing),
            ([], ["CANCEL_WORKER_PROVIDERS__FASTPOD__ACCOUNTS": "demo-1"], "CANCEL_WORKER_PROVIDERS_FASTPOD_ACCOUNTS"),
        ]
        for item in cases {
            for command in ["config", "run"] {
                // Were the input accepted, run would start a worker: on any port, with no ledger file.
                let ledger =
                    item.arguments.contains { $0.hasPrefix("ledger.url") } ? [] : ["--set", "ledger.url=memory:"]
                let result = try await runCancelWorker(
                    [command] + item.arguments + ["--set", "http.port=0"] + ledger, environment: item.environment,
                    timeout: .seconds(30)
                )
                #expect(
                    result.status == 78,
                    "\(command) \(item.arguments) \(item.environment): \(result.status) \(result.errors)")
                #expect(result.errors.contains(item.named), "\(command) \(item.arguments): \(result.errors)")
                #expect(
                    !result.errors.contains("NSCocoaErrorDomain") && !result.errors.contains("CANCEL_WORKER___CONFIG"))
            }
        }
        let shown = try await runCancelWorker([
            "config", "--set", "drain-timeout=5", "--set", "kafka.sasl-password=hunter2",
        ])
        #expect(shown.status == 0, "\(shown.errors)")
        #expect(
            shown.output.contains("drain-timeout = 5s") && shown.output.contains("commit-interval = 200ms"),
            "\(shown.output)")
        #expect(!shown.output.contains("hunter2"))
    }

    @Test("--version; --config/--set/--brokers/--log-level on run and every Kafka-facing subcommand")
    func versionAndFlags() async throws {
        let version = try await runCancelWorker(["--version"])
        #expect(version.status == 0)
        #expect(version.output.trimmingCharacters(in: .whitespacesAndNewlines) == CancelWorkerVersion.current)
        let kafkaFacing = [
            ["run"], ["enqueue"], ["outcomes"], ["replay"], ["dlq", "stats"], ["dlq", "list"], ["dlq", "show"],
        ]
        for command in kafkaFacing {
            let help = try await runCancelWorker(command + ["--help"])
            for flag in ["--config", "--set", "--brokers", "--connect-timeout", "--log-level"] {
                #expect(help.output.contains(flag), "\(command) --help lacks \(flag)")
            }
        }
        let config = try await runCancelWorker(["config", "--help"])
        #expect(config.output.contains("--config") && config.output.contains("--set"))
    }

    @Test("every Kafka-facing tool fails within 10 s with exit 69 naming the brokers when none answers")
    func unreachableBrokers() async throws {
        let unreachable = ["--brokers", "127.0.0.1:1"]
        let commands: [[String]] = [
            ["enqueue", "--provider", "fastpod", "--account", "demo-1", "--order-id", "F1"],
            ["outcomes"], ["outcomes", "--key", "k", "--wait"],
            ["replay", "--dry-run", "--set", "ledger.url=memory:"],
            ["dlq", "stats"], ["dlq", "list"], ["dlq", "show", "0@0"],
        ]
        try await withThrowingTaskGroup(of: ([String], FinishedRun).self) { group in
            for command in commands {
                group.addTask { (command, try await runCancelWorker(command + unreachable, timeout: .seconds(30))) }
            }
            for try await (command, result) in group {
                #expect(result.status == 69, "\(command): \(result.status) \(result.errors)")
                #expect(result.elapsed < .seconds(10), "\(command) took \(result.elapsed)")
                #expect(
                    result.errors.contains("127.0.0.1:1") && result.errors.contains("no Kafka broker answered"),
                    "\(command): \(result.errors)")
                #expect(!result.errors.contains("does not exist"))
            }
        }
    }

    @Test("argument errors print the subcommand's usage; enqueue never reads stdin behind command flags")
    func subcommandUsage() async throws {
        let noProvider = try await runCancelWorker([
            "enqueue", "--brokers", "127.0.0.1:1", "--account", "demo-1", "--order-id", "F3",
        ])
        #expect(noProvider.status == 64, "\(noProvider.status) \(noProvider.errors)")
        #expect(noProvider.errors.contains("--provider is required"), "\(noProvider.errors)")
        #expect(noProvider.errors.contains("Usage: cancel-worker enqueue"), "\(noProvider.errors)")
        let badProvider = try await runCancelWorker([
            "enqueue", "--provider", "nope", "--account", "a", "--order-id", "1",
        ])
        #expect(badProvider.status == 64)
        #expect(
            badProvider.errors.contains("unknown provider nope")
                && badProvider.errors.contains("Usage: cancel-worker enqueue"), "\(badProvider.errors)")
        let badSet = try await runCancelWorker(["dlq", "list", "--set", "oops"])
        #expect(badSet.status == 64)
        #expect(
            badSet.errors.contains("--set expects key=value")
                && badSet.errors.contains("Usage: cancel-worker dlq list"), "\(badSet.errors)")
    }

    /// Review finding: with a host name (`localhost`) the check was skipped, and the server's
    /// own bind failed later: the service group's cancellation outlasted its budget while the
    /// worker waited for a broker, and the process trapped (SIGILL) naming no setting.
    @Test(
        "a second worker on the port names http.port, its variable and the way out, exit 69",
        arguments: ["127.0.0.1", "localhost"])
    func portClash(host: String) async throws {
        let (fd, port) = try listeningSocket()
        defer { close(fd) }
        let result = try await runCancelWorker(
            [
                "run", "--brokers", "127.0.0.1:1", "--connect-timeout", "1s", "--set", "http.host=\(host)", "--set",
                "http.port=\(port)",
                "--set", "ledger.url=memory:",
            ],
            timeout: .seconds(30)
        )
        #expect(result.status == 69, "\(result.status) \(result.errors)")
        #expect(
            result.errors.contains("http.port \(port) (CANCEL_WORKER_HTTP_PORT) is already in use"), "\(result.errors)")
        #expect(result.errors.contains("--set http.port=0"))
    }

    @Test(
        "review finding: a console on a taken port names console.port and its variable, exit 69, before it looks for Kafka"
    )
    func consolePortClash() async throws {
        let (fd, port) = try listeningSocket()
        defer { close(fd) }
        let result = try await runCancelWorker(
            [
                "console", "--brokers", "127.0.0.1:1", "--set", "console.token=review-token-123456",
                "--set", "console.port=\(port)", "--set", "ledger.url=memory:",
            ],
            timeout: .seconds(30)
        )
        #expect(result.status == 69, "\(result.status) \(result.errors.suffix(500))")
        #expect(
            result.errors.contains("console.port \(port) (CANCEL_WORKER_CONSOLE_PORT) is already in use"),
            "\(result.errors.suffix(500))")
    }

    @Test("a sandbox on a taken port says so and names --port, exit 69 (before: exit 64 with the usage)")
    func sandboxPortClash() async throws {
        let (fd, port) = try listeningSocket()
        defer { close(fd) }
        let result = try await runCancelWorker(["sandbox", "--port", "\(port)"], timeout: .seconds(30))
        #expect(result.status == 69, "\(result.status) \(result.errors.suffix(500))")
        #expect(result.errors.contains("--port \(port) is already in use on 127.0.0.1"), "\(result.errors.suffix(500))")
        #expect(!result.errors.contains("Usage:"), "\(result.errors.suffix(500))")
    }

    /// A dead letter's bytes and its failure context are anyone's text (a producer's payload, a
    /// provider's message): escape sequences in them would reach the operator's terminal (clear
    /// the screen, hide text, set the title, write the clipboard with OSC 52).
    @Test("review finding: dlq show, dlq list and replay --dry-run print control characters escaped, never raw")
    func controlCharactersEscaped() async throws {
        let names = TopicNames.default
        let fixture = try await DeadLetterFixture(
            label: "first-hour-tests", topics: [names.commands, names.outcomes, names.deadLetters],
            headers: [KafkaHeader(name: "cw.error.message", string: "bad\u{1b}[8mhidden\u{9b}2J")])
        _ = try await fixture.producer.send(
            KafkaProducerMessage(
                topic: names.deadLetters, key: Array("fastpod:shop".utf8),
                value: Array("{\"x\":\"\u{1b}]0;pwned\u{07}\u{1b}[2J\r\"}".utf8),
                headers: [KafkaHeader(name: "cw.error.class", string: "invalid_command")]))
        let brokers = ["--brokers", fixture.cluster.bootstrapServers]
        for arguments in [
            ["dlq", "show", "0@0"], ["dlq", "show", "0@1"], ["dlq", "list"],
            ["replay", "--dry-run", "--from-beginning", "--set", "ledger.url=memory:"],
        ] {
            let run = try await runCancelWorker(arguments + brokers)
            #expect(run.status == 0, "\(arguments) \(run.errors)")
            let bytes = Array((run.output + run.errors).utf8)
            #expect(!bytes.contains(0x1b) && !bytes.contains(0x07) && !bytes.contains(0x0d), "\(arguments)")
            #expect(!(run.output + run.errors).unicodeScalars.contains("\u{9b}"), "\(arguments)")
            if arguments[0] == "dlq" {
                #expect(run.output.contains("\\x1b"), "\(arguments): shown escaped: \(run.output)")
            }
        }
    }

    @Test("an address not on this host names http.host and http.port, exit 69 (before: a trap)")
    func addressNotHere() async throws {
        let result = try await runCancelWorker(
            [
                "run", "--brokers", "127.0.0.1:1", "--connect-timeout", "1s", "--set", "http.host=192.0.2.1",
                "--set", "http.port=9464", "--set", "ledger.url=memory:",
            ],
            timeout: .seconds(30)
        )
        #expect(result.status == 69, "\(result.status) \(result.errors.suffix(500))")
        #expect(result.errors.contains("cannot listen on http.host 192.0.2.1"), "\(result.errors.suffix(500))")
    }

    @Test(
        "operator tools on a live cluster: replay never creates a ledger; outcomes --wait; ISO times; no client noise")
    func toolsOnACluster() async throws {
        let names = TopicNames.default
        let fixture = try await DeadLetterFixture(
            label: "first-hour-tests", topics: [names.commands, names.outcomes, names.deadLetters],
            headers: [KafkaHeader(name: "cw.dead-lettered-at", string: "1795341601500")])
        let (cluster, producer) = (fixture.cluster, fixture.producer)
        let brokers = ["--brokers", cluster.bootstrapServers]

        // replay opens the workers' ledger, never a new one.
        let ledger = FileManager.default.temporaryDirectory.appendingPathComponent("cw-ledger-\(UUID()).db").path
        let replay = try await runCancelWorker(
            ["replay", "--dry-run", "--set", "ledger.url=sqlite:\(ledger)"] + brokers)
        #expect(replay.status == 78, "\(replay.status) \(replay.errors)")
        #expect(replay.errors.contains("no ledger at \(ledger)"), "\(replay.errors)")
        #expect(!FileManager.default.fileExists(atPath: ledger))
        let dry = try await runCancelWorker(["replay", "--dry-run", "--set", "ledger.url=memory:"] + brokers)
        #expect(dry.status == 0, "\(dry.errors)")
        #expect(!dry.errors.contains("read 0,"), "\(dry.errors)")

        // dlq: ISO times in show as in list; tools log no partition assignments by default.
        let show = try await runCancelWorker(["dlq", "show", "0@0"] + brokers)
        #expect(show.status == 0, "\(show.errors)")
        #expect(show.output.contains("  cw.dead-lettered-at: 2026-11-22T10:00:01Z"), "\(show.output)")
        #expect(!show.errors.contains("assigned"), "\(show.errors)")

        // outcomes --wait: times out with 75 and a hint, or prints the outcome when it comes.
        let early = try await runCancelWorker(["outcomes", "--key", "key-1", "--wait", "--timeout", "2s"] + brokers)
        #expect(early.status == 75, "\(early.status) \(early.errors)")
        #expect(early.errors.contains("may still complete"), "\(early.errors)")
        async let waited = runCancelWorker(["outcomes", "--key", "key-1", "--wait", "--timeout", "30s"] + brokers)
        try await Task.sleep(for: .seconds(2))
        let identity = CommandIdentity(
            commandID: "c1", idempotencyKey: "key-1", provider: "fastpod", account: "shop",
            order: ["id": .string("F1")],
            requestedAt: Date(), correlationID: nil, metadata: [:]
        )
        for key in ["other-key", "key-1"] {
            var outcomeIdentity = identity
            outcomeIdentity.idempotencyKey = key
            let outcome = CancelOutcome(
                outcomeID: OutcomeID.terminal(idempotencyKey: key), identity: outcomeIdentity, status: .cancelled,
                reason: "order cancelled",
                providerResponse: nil, attempts: 1, completedAt: Date(), workerID: "w1"
            )
            _ = try await producer.send(
                KafkaProducerMessage(topic: names.outcomes, key: Array(key.utf8), value: outcome.encoded()))
        }
        await producer.shutdown()
        let result = try await waited
        #expect(result.status == 0, "\(result.status) \(result.errors)")
        #expect(
            result.output.contains(#""idempotency_key":"key-1""#) && !result.output.contains("other-key"),
            "\(result.output)")
    }
}
