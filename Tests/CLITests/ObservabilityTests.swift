import CancelCore
import CancelWorkerTesting
import Foundation
import Kafka
import OperatorTools
import Sandbox
import Testing

/// The Prometheus samples of one metric, by label set (`a="x",b="y"`).
func samples(_ text: String, _ name: String) -> [String: Double] {
    var values: [String: Double] = [:]
    for line in text.split(separator: "\n") where line.hasPrefix(name + "{") || line.hasPrefix(name + " ") {
        let parts = line.split(separator: " ")
        guard let value = Double(parts.last ?? "") else { continue }
        let labels = line.hasPrefix(name + "{") ? String(line.dropFirst(name.count + 1).prefix { $0 != "}" }) : ""
        values[labels] = value
    }
    return values
}

@Suite("Metrics, health and logs of a worker process", .serialized, .timeLimit(.minutes(4)))
struct ObservabilityTests {
    @Test("/metrics during an end-to-end run matches what happened; probes; JSON logs without secrets")
    func metricsMatch() async throws {
        try await ProcessFleet.with { fleet in
            let port = try freePort()
            let worker = try ChildProcess(
                fleet.arguments(
                    workerID: "observed", ledgerURL: "memory:",
                    extra: [
                        "http.port": "\(port)", "log.level": "info", "retry.in-process-attempts": "3",
                        "retry.max-attempts": "3",
                        "retry.base-backoff": "10ms",
                    ]))
            #expect(try await eventuallyMetric(port: port, "cancel_worker_assigned_partitions") { $0 > 0 })
            #expect(await fetch("http://127.0.0.1:\(port)/health/live")?.contains("live") == true)

            fleet.sandbox.addFault(
                SandboxFault(.status(code: 503, retryAfterSeconds: nil), provider: .fastpod, orderPattern: "44000000"))
            fleet.sandbox.addFault(
                SandboxFault(
                    .status(code: 502, retryAfterSeconds: nil), provider: .fastpod, orderPattern: "44000006", count: 1))
            var commands = fleet.commands(60)
            commands += (0..<15).map { index in
                CancelCommand(
                    commandID: "f\(index)", idempotencyKey: "burst-\(index)", provider: .futures, account: "demo-3",
                    order: .futures(id: String(55_000_000 + index)), requestedAt: Date())
            }
            let producer = try KafkaProducer(
                configuration: KafkaProducerConfiguration(bootstrapServers: fleet.cluster.bootstrapServers),
                logger: fleet.logger)
            let enqueuer = CommandEnqueuer(producer: producer, topic: TopicNames.default.commands)
            for command in commands { _ = try await enqueuer.send(command) }
            _ = try await producer.send(
                KafkaProducerMessage(topic: TopicNames.default.commands, key: "fastpod:demo-1", value: "not a command"))
            await producer.shutdown()

            let (byKey, _) = try await fleet.outcomes(expecting: commands.count, timeout: .seconds(90))
            #expect(byKey.count == commands.count)
            let outcomes = byKey.values.flatMap { $0 }
            let deadLetters = try await TopicSnapshot(
                options: KafkaClientOptions(bootstrapServers: fleet.cluster.bootstrapServers),
                topic: TopicNames.default.deadLetters, logger: fleet.logger
            ).read()
            // Wait until the worker committed and refreshed its gauges: nothing in flight, and a
            // caught-up lag for every partition it owns.
            let settled = try await eventually(timeout: .seconds(30)) {
                guard let text = await fetch("http://127.0.0.1:\(port)/metrics") else { return false }
                let lag = samples(text, "cancel_worker_consumer_lag")
                return samples(text, "cancel_worker_in_flight")[""] == 0 && !lag.isEmpty
                    && lag.values.allSatisfy { $0 == 0 }
                    && Double(lag.count) == samples(text, "cancel_worker_assigned_partitions")[""]
            }
            #expect(settled, "the worker's gauges settle once every command is done")
            let text = try #require(await fetch("http://127.0.0.1:\(port)/metrics"))

            #expect(
                samples(text, "cancel_worker_commands_consumed_total")[#"topic="cancel.commands""#]
                    == Double(commands.count + 1))
            let outcomeSeries = samples(text, "cancel_worker_outcomes_total")
            for status in OutcomeStatus.allCases {
                let expected = outcomes.filter { $0.status == status }.count
                let reported = outcomeSeries.filter { $0.key.contains(#"status="\#(status.rawValue)""#) }.values.reduce(
                    0, +)
                #expect(reported == Double(expected), "outcomes \(status): metrics \(reported), topic \(expected)")
            }
            let deadLetterSeries = samples(text, "cancel_worker_dead_letters_total")
            #expect(deadLetterSeries[#"error_class="invalid_command""#] == 1)
            #expect(deadLetterSeries[#"error_class="retries_exhausted""#] == 1)
            #expect(deadLetterSeries.values.reduce(0, +) == Double(deadLetters.count))
            let calls = Double(fleet.sandbox.stats().total)
            #expect(
                samples(text, "cancel_worker_provider_request_duration_seconds_count").values.reduce(0, +) == calls,
                "one latency sample per provider call")
            #expect(
                samples(text, "cancel_worker_retries_total")[#"provider="fastpod",tier="in_process""#] == 3,
                "2 for the outage, 1 for the blip")
            #expect(
                (samples(text, "cancel_worker_rate_limit_waits_total")[#"provider="futures""#] ?? 0) >= 1,
                "the futures burst waited")
            #expect(samples(text, "cancel_worker_rate_limit_wait_seconds_count")[#"provider="futures""#] != nil)
            for operation in ["claim", "mark_sent", "complete", "mark_published", "release"] {
                #expect(
                    samples(text, "cancel_worker_ledger_operation_duration_seconds_count")[
                        #"operation="\#(operation)""#] != nil, "\(operation)")
            }
            let lag = samples(text, "cancel_worker_consumer_lag")
            #expect(!lag.isEmpty && lag.values.allSatisfy { $0 == 0 }, "lag per partition, caught up: \(lag)")
            // Every owned partition has its lag, traffic or not (the retry tiers had none).
            #expect(Double(lag.count) == samples(text, "cancel_worker_assigned_partitions")[""], "\(lag.keys.sorted())")
            #expect(lag.keys.contains { $0.contains("retry") }, "idle retry-tier partitions report their lag too")
            // Every metric says what it means; the process metrics are there.
            let lines = text.split(separator: "\n")
            for (index, line) in lines.enumerated() where line.hasPrefix("# TYPE ") {
                let name = line.dropFirst(7).prefix { $0 != " " }
                #expect(index > 0 && lines[index - 1].hasPrefix("# HELP \(name) "), "\(name) has a HELP line")
            }
            #expect((samples(text, "process_cpu_seconds_total")[""] ?? 0) > 0)
            #expect((samples(text, "process_resident_memory_bytes")[""] ?? 0) > 10_000_000)
            #expect((samples(text, "process_open_fds")[""] ?? 0) > 3)
            #expect((samples(text, "process_start_time_seconds")[""] ?? 0) > Date().timeIntervalSince1970 - 600)
            #expect((samples(text, "cancel_worker_rebalances_total")[#"event="assigned""#] ?? 0) >= 1)
            #expect(samples(text, "cancel_worker_in_flight")[""] == 0)
            #expect(samples(text, "cancel_worker_throttled_users")[""] != nil)
            // Probed as Kubernetes does: a few tries (a loaded CI machine may miss one).
            var ready: String?
            for _ in 0..<10 where ready == nil {
                ready = await fetch("http://127.0.0.1:\(port)/health/ready")
                if ready == nil { try await Task.sleep(for: .milliseconds(500)) }
            }
            #expect(try #require(ready, "ready within 10 tries").contains(#""ready":"true""#), "\(ready ?? "")")

            #expect(try await worker.stop(signal: SIGTERM) == 0)
            let logs = worker.standardError.split(separator: "\n")
            let parsed = logs.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            #expect(parsed.count == logs.count, "every log line is JSON")
            let published = parsed.filter { $0["message"] as? String == "outcome published" }
            #expect(published.count == outcomes.filter { $0.status != .failed }.count)
            #expect(
                published.allSatisfy {
                    $0["command_id"] != nil && $0["idempotency_key"] != nil && $0["provider"] != nil
                        && $0["account"] != nil && $0["status"] != nil && $0["attempts"] != nil
                })
            // Typed values: counts are numbers, flags booleans, lists arrays (not quoted strings).
            #expect(published.allSatisfy { !($0["attempts"] is String) && ($0["attempts"] as? Int ?? 0) >= 1 })
            let listening = parsed.first { $0["message"] as? String == "metrics and health endpoints listening" }
            #expect(listening?["port"] as? Int == port, "\(listening ?? [:])")
            let assigned = parsed.first {
                $0["message"] as? String == "partitions assigned" && $0["logger"] != nil
                    && $0["source"] as? String == "Worker"
            }
            #expect((assigned?["partitions"] as? [String])?.isEmpty == false, "\(assigned ?? [:])")
            let revoked = parsed.first {
                $0["message"] as? String == "partitions revoked" && $0["source"] as? String == "Worker"
            }
            #expect(revoked?["drained"] as? Bool == true && revoked?["drain_time"] is Double, "\(revoked ?? [:])")
            for credentials in SandboxConfiguration.demoAccounts.values.flatMap(\.values) {
                #expect(!worker.standardError.contains(credentials.key.reveal()))
                if let secret = credentials.secret { #expect(!worker.standardError.contains(secret.reveal())) }
            }
        }
    }

    @Test("review finding: /health/ready answers 503 while the worker drains after SIGTERM")
    func notReadyWhileDraining() async throws {
        try await ProcessFleet.with { fleet in
            let port = try freePort()
            let worker = try ChildProcess(
                fleet.arguments(
                    workerID: "draining", ledgerURL: "memory:",
                    extra: [
                        "http.port": "\(port)", "drain-timeout": "20s", "claim-lease": "14s",
                        "providers.fastpod.timeout": "12s",
                    ]))
            // One call that takes 8 s: the drain waits for it.
            fleet.sandbox.addFault(
                SandboxFault(.latency(.fixed(milliseconds: 8_000)), provider: .fastpod, orderPattern: "44000000"))
            let ready = try await eventually(timeout: .seconds(60)) {
                await fetch("http://127.0.0.1:\(port)/health/ready")?.contains(#""ready":"true""#) == true
            }
            #expect(ready, "ready once it joined")
            let producer = try KafkaProducer(
                configuration: KafkaProducerConfiguration(bootstrapServers: fleet.cluster.bootstrapServers),
                logger: fleet.logger)
            _ = try await CommandEnqueuer(producer: producer, topic: TopicNames.default.commands).send(
                fleet.commands(1)[0])
            await producer.shutdown()
            #expect(try await eventuallyMetric(port: port, "cancel_worker_in_flight") { $0 == 1 })
            worker.process.send(SIGTERM)
            var answer: String?
            let deadline = ContinuousClock.now + .seconds(6)
            while ContinuousClock.now < deadline, answer == nil {
                let (status, output) = try await runProgram(
                    which("curl")!,
                    ["-s", "-w", "\n%{http_code}", "--max-time", "2", "http://127.0.0.1:\(port)/health/ready"])
                if status == 0, output.hasSuffix("503") { answer = output }
                try await Task.sleep(for: .milliseconds(200))
            }
            let body = try #require(answer, "a 503 while the call in flight is drained")
            #expect(body.contains(#""running":"stopping: draining"#), "\(body)")
            #expect(try await worker.waitForExit(timeout: .seconds(60)) == 0)
            let (byKey, _) = try await fleet.outcomes(expecting: 1, timeout: .seconds(5))
            #expect(byKey["fleet-0"]?.first?.status == .cancelled, "the drained call's outcome was published")
        }
    }

    @Test("/health/ready answers 503 naming the failing check when the ledger is unreachable")
    func notReady() async throws {
        try await ProcessFleet.with { fleet in
            let port = try freePort()
            let dead = try freePort()
            let worker = try ChildProcess(
                fleet.arguments(
                    workerID: "lost", ledgerURL: "postgres://cw:pw@127.0.0.1:\(dead)/none",
                    extra: ["http.port": "\(port)"]))
            var answer: String?
            let deadline = ContinuousClock.now + .seconds(60)
            while ContinuousClock.now < deadline {
                let (status, output) = try await runProgram(
                    which("curl")!,
                    ["-s", "-w", "\n%{http_code}", "--max-time", "5", "http://127.0.0.1:\(port)/health/ready"])
                if status == 0, output.hasSuffix("503"), output.contains(#""group":"ok""#) {
                    answer = output
                    break
                }
                try await Task.sleep(for: .milliseconds(300))
            }
            let body = try #require(answer, "a 503 once the group is joined")
            #expect(body.contains(#""ledger":"the ledger did not answer""#) && body.contains(#""ready":"false""#))
            #expect(!worker.standardError.contains(":pw@"), "the ledger password is not logged")
            _ = try await worker.stop(signal: SIGKILL)
        }
    }
}
