import CancelCore
public import Foundation
public import Kafka
public import Logging
import Worker

/// Reads the dead-letter topic (without committing) and formats it for operators. Payloads and
/// headers are shown as stored: they never contain secrets, because commands never carry them.
public struct DeadLetterInspector: Sendable {
    public let snapshot: TopicSnapshot

    public init(options: KafkaClientOptions, topic: String, logger: Logger) {
        self.snapshot = TopicSnapshot(options: options, topic: topic, logger: logger)
    }

    public func records(filter: DeadLetterFilter = DeadLetterFilter()) async throws -> [DeadLetterRecord] {
        try await self.snapshot.read().map(DeadLetterRecord.init).filter(filter.matches)
    }

    /// Counts by error class, provider and age.
    public static func stats(_ records: [DeadLetterRecord], now: Date = Date()) -> String {
        func table(_ title: String, _ counts: [String: Int]) -> [String] {
            ["\(title):"]
                + counts.sorted { ($0.value, $1.key) > ($1.value, $0.key) }.map {
                    "  \($0.key.padding(toLength: 24, withPad: " ", startingAt: 0)) \($0.value)"
                }
        }
        let ages: [(String, TimeInterval)] = [
            ("< 1 hour", 3600), ("1 hour – 1 day", 86_400), ("1 – 7 days", 7 * 86_400), ("> 7 days", .infinity),
        ]
        var byAge: [String: Int] = [:]
        for record in records {
            let age = now.timeIntervalSince(record.deadLetteredAt ?? now)
            byAge[ages.first { age < $0.1 }!.0, default: 0] += 1
        }
        return
            (["dead letters: \(records.count)"]
            + table("by error class", Dictionary(grouping: records, by: \.errorClass).mapValues(\.count))
            + table(
                "by provider", Dictionary(grouping: records, by: { $0.provider ?? "(undecodable)" }).mapValues(\.count))
            + table("by age", byAge)).joined(separator: "\n")
    }

    /// One line per record.
    public static func list(_ records: [DeadLetterRecord], limit: Int?) -> String {
        let shown = limit.map { Array(records.prefix($0)) } ?? records
        let rows = shown.map { record in
            [
                record.position, record.deadLetteredAt.map { ISO8601DateFormatter().string(from: $0) } ?? "-",
                record.errorClass,
                record.provider ?? "-", record.account ?? "-", record.idempotencyKey ?? "-", String(record.attempts),
                String(record.replayCount), String(record.reason.prefix(80)),
            ].joined(separator: "\t")
        }
        return (["position\tdead-lettered at\terror class\tprovider\taccount\tkey\tattempts\treplays\treason"] + rows)
            .joined(separator: "\n")
    }

    /// Headers that hold a time (epoch milliseconds).
    static let timeHeaders: Set<String> = [
        WorkerHeaders.deadLetteredAt, WorkerHeaders.firstFailureAt, WorkerHeaders.lastFailureAt,
        WorkerHeaders.retryDueAt,
    ]

    /// One record in full: failure context (headers) and the original payload.
    public static func show(_ record: DeadLetterRecord) -> String {
        var lines = [
            "dead letter \(record.message.topic) \(record.position)", "key: \(record.message.keyString ?? "(none)")",
            "headers:",
        ]
        for header in record.message.headers {
            var text = header.stringValue ?? header.value.map { "\($0.count) bytes" } ?? "(null)"
            // Times are stored as epoch milliseconds; shown as ISO 8601, as `dlq list` does.
            if Self.timeHeaders.contains(header.name), let milliseconds = Int64(text) {
                text = ISO8601DateFormatter().string(from: Timestamp.date(milliseconds: milliseconds))
            }
            lines.append("  \(header.name): \(text)")
        }
        lines.append("payload:")
        lines.append(
            String(validating: record.message.value, as: UTF8.self)
                ?? "(\(record.message.value.count) bytes, not UTF-8: \(record.message.value.prefix(64).map { String(format: "%02x", $0) }.joined()))"
        )
        return lines.joined(separator: "\n")
    }
}
