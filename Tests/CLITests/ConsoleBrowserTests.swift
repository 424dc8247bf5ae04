import CancelCore
import CancelWorkerTesting
import Foundation
import Kafka
import OperatorTools
import Sandbox
import Testing

/// The operator console end to end, in a real browser: a mock cluster, the sandbox, a worker
/// process and `cancel-worker console`; commands flow, some dead-letter; Debian's chromium,
/// driven headless by scripts/console-browser.py (selenium over chromedriver), signs in, sees
/// the flow numbers change, filters the dead letters, opens one, dry-runs a replay, confirms
/// it, and sees the replayed commands get their terminal outcomes — which this test then checks
/// on the outcomes topic, with the audit in the log and on the replayed records.
@Suite("Operator console in a browser", .serialized, .timeLimit(.minutes(6)))
struct ConsoleBrowserTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let token = "console-test-token-\(UUID().uuidString.prefix(8))"

    /// Screenshots go to a temporary directory; `CANCEL_WORKER_TEST_SCREENSHOTS=docs` writes the
    /// README's (docs/console-*.png) instead.
    static var screenshotDirectory: URL {
        if ProcessInfo.processInfo.environment["CANCEL_WORKER_TEST_SCREENSHOTS"] == "docs" {
            return Self.root.appendingPathComponent("docs")
        }
        return FileManager.default.temporaryDirectory.appendingPathComponent("console-shots-\(UUID().uuidString)")
    }

    /// `curl` status code of one request to the console (000 if it did not answer).
    static func status(
        _ url: String, method: String = "GET", headers: [String] = [], data: String? = nil
    ) async throws
        -> String
    {
        var arguments = ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "20", "-X", method]
        for header in headers { arguments += ["-H", header] }
        if let data { arguments += ["--data", data] }
        return try await runProgram(try #require(which("curl")), arguments + [url]).output
    }

    @Test("no token (or a short one): the console does not start, exit 78 naming console.token")
    func noToken() async throws {
        for environment in [[:], ["CANCEL_WORKER_CONSOLE_TOKEN": "short"]] {
            let console = try ChildProcess(
                ["console", "--set", "console.port=0", "--brokers", "127.0.0.1:1"], environment: environment)
            #expect(try await console.waitForExit(timeout: .seconds(30)) == 78)
            #expect(console.standardError.contains("console.token (CANCEL_WORKER_CONSOLE_TOKEN)"))
        }
    }

    @Test(
        "sign in, flow numbers change, filter and open dead letters, dry-run and confirm a replay, terminal outcomes",
        // CI installs them (scripts/ensure-packages.sh): there a missing browser fails the test.
        .enabled(
            if: (which("chromium") != nil && which("chromedriver") != nil)
                || ProcessInfo.processInfo.environment["CI"] == "true",
            "needs chromium and chromium-driver (scripts/ensure-packages.sh)")
    )
    func browser() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("console-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let ledgerURL = "sqlite:\(directory.path)/ledger.db"
        let shots = Self.screenshotDirectory
        try FileManager.default.createDirectory(at: shots, withIntermediateDirectories: true)

        try await ProcessFleet.with { fleet in
            let metricsPort = try freePort()
            let workerSettings = [
                "http.port": "\(metricsPort)", "retry.max-attempts": "2", "retry.base-backoff": "10ms",
            ]
            let worker = try ChildProcess(
                fleet.arguments(workerID: "console-worker", ledgerURL: ledgerURL, extra: workerSettings))
            #expect(try await eventuallyMetric(port: metricsPort, "cancel_worker_assigned_partitions") { $0 > 0 })

            // Commands that succeed; FastPOD orders behind an outage (retries exhausted); an account
            // without credentials (configuration); an undecodable record with markup in it.
            fleet.sandbox.addFault(
                SandboxFault(.status(code: 503, retryAfterSeconds: nil), provider: .fastpod, orderPattern: "66000*"))
            let stuck = (0..<4).map { index in
                CancelCommand(
                    commandID: "stuck-\(index)", idempotencyKey: "console-stuck-\(index)", provider: .fastpod,
                    account: "demo-\(1 + index % 3)", order: .fastpod(id: "66000\(index)"), requestedAt: Date())
            }
            let unknownAccount = CancelCommand(
                commandID: "nobody", idempotencyKey: "console-nobody", provider: .feee, account: "nobody",
                order: .feee(orderNo: "77001"), requestedAt: Date())
            try await fleet.produce(
                fleet.commands(12) + stuck + [unknownAccount], raw: [#"<script>window.__pwned=1</script>"#])
            let deadLetterCount = stuck.count + 2
            let dlq = TopicSnapshot(
                options: KafkaClientOptions(bootstrapServers: fleet.cluster.bootstrapServers),
                topic: TopicNames.default.deadLetters, logger: fleet.logger)
            let dead = try await eventually(timeout: .seconds(90)) { try await dlq.read().count >= deadLetterCount }
            let classes = try await dlq.read().map { DeadLetterRecord($0).errorClass }
            try #require(dead, "the outage, the unknown account and the poison record dead-lettered: \(classes)")
            fleet.sandbox.clearFaults()  // the outage is over: a replay now succeeds

            let consolePort = try freePort()
            var consoleArguments = ["console"]
            let consoleSettings = [
                "kafka.bootstrap-servers": fleet.cluster.bootstrapServers, "ledger.url": ledgerURL,
                "console.port": "\(consolePort)", "console.workers": "127.0.0.1:\(metricsPort)",
                "console.scrape-interval": "1s", "retry.tiers": "1s,2s", "log.format": "json", "log.level": "info",
            ]
            for (key, value) in consoleSettings.sorted(by: { $0.key < $1.key }) {
                consoleArguments += ["--set", "\(key)=\(value)"]
            }
            let console = try ChildProcess(consoleArguments, environment: ["CANCEL_WORKER_CONSOLE_TOKEN": Self.token])
            let base = try await console.firstLine(timeout: .seconds(60)).trimmingCharacters(in: .whitespaces)
            #expect(base == "http://127.0.0.1:\(consolePort)/")

            // Without the token every page answers 401; a replay POST without the CSRF token is refused.
            for path in ["", "flow", "dead-letters", "dead-letters/0@0", "replay", "replay/preview", "console.js"] {
                #expect(try await Self.status(base + path) == "401", "/\(path)")
            }
            #expect(try await Self.status(base + "replay/start", method: "POST", data: "preview=x&count=4") == "401")
            #expect(
                try await Self.status(
                    base + "replay/start", method: "POST", headers: ["Authorization: Bearer \(Self.token)"],
                    data: "preview=x&count=4") == "403")
            #expect(try await Self.status(base + "flow", headers: ["Authorization: Bearer \(Self.token)"]) == "200")

            // A trickle of commands while the browser watches the Flow page.
            let trickle = Task {
                let producer = try KafkaProducer(
                    configuration: KafkaProducerConfiguration(bootstrapServers: fleet.cluster.bootstrapServers),
                    logger: fleet.logger)
                let enqueuer = CommandEnqueuer(producer: producer, topic: TopicNames.default.commands)
                for command in fleet.commands(400).dropFirst(12) where !Task.isCancelled {
                    _ = try? await enqueuer.send(command)
                    try? await Task.sleep(for: .milliseconds(300))
                }
                await producer.shutdown()
            }
            defer { trickle.cancel() }

            let python = try #require(which("python3"))
            let browser = try ChildProcess(
                [Self.root.appendingPathComponent("scripts/console-browser.py").path, base, shots.path],
                executable: python,
                environment: [
                    "CONSOLE_TOKEN": Self.token, "CONSOLE_OPERATOR": "ops-ann",
                    "EXPECT_DEAD_LETTERS": "\(deadLetterCount)", "EXPECT_REPLAY": "\(stuck.count)",
                ])
            let exit = try await browser.waitForExit(timeout: .seconds(260))
            trickle.cancel()
            _ = await trickle.result
            #expect(exit == 0, "browser run: \(browser.standardError.suffix(3000))")
            let line = try #require(browser.lines.last { $0.hasPrefix("{") }, "the browser's report")
            let report = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])

            #expect(report["operator"] as? String == "ops-ann", "signed in as the basic-auth user")
            #expect((report["flow_after"] as? Int ?? 0) > (report["flow_before"] as? Int ?? .max), "flow changed")
            #expect(
                (report["lag_rows"] as? Int) == ProcessFleet.partitions * 3, "lag per partition: commands and 2 tiers")
            #expect((report["provider_rows"] as? Int ?? 0) >= 1)
            #expect(report["dead_letters"] as? Int == deadLetterCount)
            #expect(report["filtered"] as? Int == stuck.count && report["filtered_rows"] as? Int == stuck.count)
            #expect(report["record_class"] as? String == "retries_exhausted")
            #expect(
                report["record_has_key_header"] as? Bool == true && report["record_payload_is_command"] as? Bool == true
            )
            #expect(report["poison_payload"] as? String == #"<script>window.__pwned=1</script>"#, "shown as text")
            #expect(report["scripts_in_main"] as? Int == 0 && report["alerts"] as? Int == 0, "and never run")
            #expect(report["would_replay"] as? Int == stuck.count)
            let replayID = try #require(report["replay_id"] as? String)
            let shown = try #require(report["outcomes"] as? [String: String])
            #expect(shown == Dictionary(uniqueKeysWithValues: stuck.map { ($0.idempotencyKey, "cancelled") }))
            for name in [
                "console-flow.png", "console-dead-letters.png", "console-dead-letter.png", "console-replay-preview.png",
                "console-replay-result.png",
            ] {
                let data = try Data(contentsOf: shots.appendingPathComponent(name))
                #expect(data.starts(with: [0x89, 0x50, 0x4E, 0x47]), "\(name) is a PNG")
            }

            // Kafka agrees: one terminal outcome for each replayed key, cancelled after the replay.
            let (byKey, _) = try await fleet.outcomes(expecting: 12 + stuck.count, timeout: .seconds(30))
            for command in stuck {
                let statuses = byKey[command.idempotencyKey]?.map(\.status) ?? []
                #expect(statuses.contains(.cancelled) && statuses.filter { $0 != .failed }.count == 1, "\(statuses)")
            }
            // The replayed records carry the audit: who and which replay.
            let commands = try await TopicSnapshot(
                options: KafkaClientOptions(bootstrapServers: fleet.cluster.bootstrapServers),
                topic: TopicNames.default.commands, logger: fleet.logger
            ).read()
            let replayed = commands.filter { $0.headers.string("cw.replay.id") == replayID }
            #expect(replayed.count == stuck.count)
            #expect(replayed.allSatisfy { $0.headers.string(ReplayDecision.requestedByHeader) == "ops-ann" })
            #expect(
                replayed.allSatisfy {
                    $0.headers.string(ReplayDecision.requestedAtHeader).flatMap(Timestamp.parse) != nil
                })

            #expect(try await console.stop(signal: SIGTERM) == 0, "the console stops cleanly")
            _ = try await worker.stop(signal: SIGTERM)
            // The audit in the log: who, when, which filters, how many; the token nowhere.
            let logs = console.standardError.split(separator: "\n").compactMap {
                try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            }
            let confirmed = logs.first { $0["message"] as? String == "replay confirmed" }
            #expect(confirmed?["operator"] as? String == "ops-ann" && confirmed?["replay_id"] as? String == replayID)
            #expect(confirmed?["filters"] as? String == "class=retries_exhausted provider=fastpod")
            #expect(confirmed?["requested_at"] != nil && confirmed?["previewed"] != nil)
            let finished = logs.first { $0["message"] as? String == "replay finished" }
            #expect("\(finished?["replayed"] ?? "")" == "\(stuck.count)", "\(finished ?? [:])")
            for output in [console.standardError, worker.standardError, browser.standardError] + console.lines {
                #expect(!output.contains(Self.token), "the console token is never logged")
            }
        }
    }
}
