import CancelCore
import Foundation
import Kafka
import Ledger
import Logging
import OperatorTools
import Sandbox
import Synchronization
import Worker

/// The checks at the end of a chaos run: every command settled, no partition stalled, and the
/// invariants over outcomes, provider calls, dead letters and the ledger (with what explains a
/// broken one).
extension ChaosRunner {
    /// While the workers still run: every partition of `topics` must have `group`'s committed
    /// offset reach the end of the partition within 60 s of the last outcome (commits every
    /// 100 ms). A partition a worker owns but stopped reading, or one held up by a record that
    /// never finishes, stays behind: one violation per such partition, with its gap.
    func stalledPartitions(
        bootstrap: String, group: String, topics: [String], partitions: Int32
    ) async throws -> [String] {
        let queries = try KafkaConsumer(
            configuration: KafkaConsumerConfiguration(bootstrapServers: bootstrap, groupID: group), topics: [],
            logger: self.logger
        )
        defer { queries.close() }
        let all = topics.flatMap { topic in (0..<partitions).map { KafkaTopicPartition(topic: topic, partition: $0) } }
        let deadline = ContinuousClock.now + .seconds(60)
        var behind: [String] = []
        repeat {
            behind = []
            let committed = try await queries.committed(all)
            for partition in all {
                let high = try await queries.watermarks(for: partition).high
                let at = committed.first { $0.topicPartition == partition }?.offset ?? -1
                if high > 0 && at < high {
                    behind.append("stall: \(partition) committed \(max(at, 0)) of \(high) (group \(group))")
                }
            }
            if behind.isEmpty { return [] }
            try await Task.sleep(for: .milliseconds(500))
        } while ContinuousClock.now < deadline
        return behind
    }

    /// For a rate violation: each futures user's densest second at arrival, if it holds more than
    /// 10 calls, with every call's arrival (ms into the second) and how long before it the call
    /// was signed (its `timestamp`): a long sign-to-arrival delay points at the way (jitter, a
    /// starved process), calls signed closer than the pacing allows at the pacing.
    static func densestSecond(of requests: [SandboxRequestRecord]) -> [String] {
        var lines: [String] = []
        let byUser = Dictionary(grouping: requests.filter { $0.account != nil }) { $0.account ?? "" }
        for (user, calls) in byUser.sorted(by: { $0.key < $1.key }) {
            let sorted = calls.sorted { $0.at < $1.at }
            var best = 0..<0
            var start = 0
            for end in sorted.indices {
                while sorted[end].at.timeIntervalSince(sorted[start].at) >= 1 { start += 1 }
                if end + 1 - start > best.count { best = start..<(end + 1) }
            }
            guard best.count > 10 else { continue }
            let first = sorted[best.lowerBound].at
            let described = sorted[best].map { call -> String in
                let arrival = Int((call.at.timeIntervalSince(first) * 1000).rounded())
                guard let signed = call.headers["timestamp"].flatMap(Int64.init) else { return "+\(arrival)" }
                let delay = Int64((call.at.timeIntervalSince1970 * 1000).rounded()) - signed
                return "+\(arrival) (signed \(delay) ms before)"
            }
            lines.append(
                "futures user \(user): \(best.count) arrivals within 1 s from \(Timestamp.format(first)), ms: "
                    + described.joined(separator: ", "))
        }
        return lines
    }

    /// What each running worker says of its partitions, for a stall's report: its lag per owned
    /// partition (high watermark minus what it committed) and the commands it has in flight.
    func workerViews(_ fleet: Fleet) async -> [String] {
        var views: [String] = []
        for worker in fleet.all {
            guard let port = worker.port, let curl = BenchRunner.which("curl"),
                let text = try? await BenchRunner.run(
                    curl, ["-sf", "--max-time", "2", "http://127.0.0.1:\(port)/metrics"])
            else {
                views.append("worker \(worker.id): no /metrics answer")
                continue
            }
            let lines = text.split(separator: "\n")
            let inFlight = lines.first { $0.hasPrefix("cancel_worker_in_flight ") }.map(String.init) ?? "?"
            let lags = lines.filter {
                $0.hasPrefix("cancel_worker_consumer_lag{") && !$0.hasSuffix(" 0") && !$0.hasSuffix(" 0.0")
            }
            views.append(
                "worker \(worker.id): \(inFlight); owned partitions behind: "
                    + (lags.isEmpty
                        ? "none"
                        : lags.map { $0.replacingOccurrences(of: "cancel_worker_consumer_lag", with: "") }.joined(
                            separator: ", ")))
        }
        return views
    }

    /// Waits until every command has a final outcome (terminal or failed), or 180 s.
    func settle(
        _ commands: [CancelCommand], bootstrap: String, topic: String
    ) async throws -> [OutcomeReader.Record] {
        let reader = OutcomeReader(
            options: KafkaClientOptions(bootstrapServers: bootstrap), topic: topic, logger: self.logger)
        let deadline = ContinuousClock.now + .seconds(180)
        let keys = Set(commands.map(\.idempotencyKey))
        while true {
            let records = try await reader.read()
            let settled = Set(records.compactMap(\.outcome).map(\.idempotencyKey))
            if keys.isSubset(of: settled) || ContinuousClock.now > deadline { return records }
            try await Task.sleep(for: .seconds(1))
        }
    }

    func check(
        _ commands: [CancelCommand], outcomes records: [OutcomeReader.Record], deadLetters: [KafkaConsumerMessage],
        sandbox: ProviderSandbox, ledgerPath: String, into report: inout ChaosReport
    ) async throws {
        var distinct: [String: [CancelOutcome]] = [:]
        var seenBytes = Set<[UInt8]>()
        var published: [String: [UInt8]] = [:]
        for record in records {
            guard seenBytes.insert(record.value).inserted else {
                report.identicalCopies += 1
                continue
            }
            if let outcome = record.outcome {
                distinct[outcome.idempotencyKey, default: []].append(outcome)
                if outcome.status.isTerminal { published[outcome.idempotencyKey] = record.value }
            }
        }
        let deadLetteredKeys = Set(deadLetters.compactMap { $0.headers.string(WorkerHeaders.idempotencyKey) })
        for command in commands {
            let outcomes = distinct[command.idempotencyKey] ?? []
            let terminal = outcomes.filter(\.status.isTerminal)
            if terminal.count > 1 {
                report.violations.append(
                    "outcome: \(command.idempotencyKey) has \(terminal.count) distinct terminal outcomes")
            } else if terminal.isEmpty {
                if outcomes.contains(where: { $0.status == .failed })
                    && deadLetteredKeys.contains(command.idempotencyKey)
                {
                    report.failed += 1
                } else {
                    report.violations.append("outcome: \(command.idempotencyKey) has no final outcome")
                }
            } else {
                report.terminal[terminal[0].status.rawValue, default: 0] += 1
            }
            // No call sent after the command's deadline: judged by when the sandbox began to handle
            // it (before the network jitter it adds), with 250 ms for loopback and scheduling.
            if let deadline = command.deadline {
                let late = sandbox.requests(provider: command.provider, orderID: command.order.orderID).filter {
                    ($0.receivedAt ?? $0.at) > deadline.addingTimeInterval(0.25)
                }
                if let first = late.first {
                    let after = Int((((first.receivedAt ?? first.at).timeIntervalSince(deadline)) * 1000).rounded())
                    report.violations.append(
                        "deadline: \(late.count) call(s) for \(command.idempotencyKey) after its deadline (the first received \(after) ms after it)"
                    )
                }
            }
            // No call after the key's completion.
            if let completed = terminal.first?.completedAt {
                let late = sandbox.requests(provider: command.provider, orderID: command.order.orderID).filter {
                    $0.at > completed
                }
                if !late.isEmpty {
                    report.violations.append(
                        "late call: \(late.count) for \(command.idempotencyKey) after \(Timestamp.format(completed))")
                }
            }
        }
        let stats = sandbox.stats()
        report.providerCalls = stats.total
        report.maxFuturesRate = stats.maxRatePerUser.filter { $0.key.hasPrefix("futures:") }.values.max() ?? 0
        if report.maxFuturesRate > 10 || stats.totalViolations > 0 {
            report.violations.append(
                "rate: a futures user reached \(report.maxFuturesRate)/s; \(stats.totalViolations) violations counted")
            report.diagnostics += Self.densestSecond(of: sandbox.requests(provider: .futures))
        }
        report.deadLetters = deadLetters.count
        for letter in deadLetters
        where (letter.headers.string(WorkerHeaders.errorMessage) ?? "").isEmpty
            || letter.headers.string(WorkerHeaders.errorClass) == nil
        {
            report.violations.append("dead letter: \(letter.partition)@\(letter.offset) has no reason")
        }
        let ledger = try SQLiteLedger(path: ledgerPath)
        for (key, bytes) in published {
            let entry = try await ledger.entry(for: key)
            if entry?.isDone != true || entry?.outcome != bytes {
                report.violations.append(
                    "ledger: \(key) is \(entry?.state.rawValue ?? "missing") or holds other bytes than the published outcome"
                )
            }
        }
    }
}
