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

    /// The counts `dlq stats` prints (and the console shows): by error class, provider and age,
    /// each largest first.
    public struct Statistics: Sendable {
        public var total: Int
        public var byClass: [(name: String, count: Int)]
        public var byProvider: [(name: String, count: Int)]
        public var byAge: [(name: String, count: Int)]
    }

    /// The age buckets of `stats`, youngest first: a name and the age it stays below.
    public static let ageBuckets: [(name: String, below: TimeInterval)] = [
        ("< 1 hour", 3600), ("1 hour – 1 day", 86_400), ("1 – 7 days", 7 * 86_400), ("> 7 days", .infinity),
    ]

    public static func statistics(_ records: [DeadLetterRecord], now: Date = Date()) -> Statistics {
        func sorted(_ counts: [String: Int]) -> [(name: String, count: Int)] {
            counts.sorted { ($0.value, $1.key) > ($1.value, $0.key) }.map { (name: $0.key, count: $0.value) }
        }
        var byAge: [String: Int] = [:]
        for record in records {
            let age = now.timeIntervalSince(record.deadLetteredAt ?? now)
            byAge[Self.ageBuckets.first { age < $0.below }!.name, default: 0] += 1
        }
        return Statistics(
            total: records.count,
            byClass: sorted(Dictionary(grouping: records, by: \.errorClass).mapValues(\.count)),
            byProvider: sorted(
                Dictionary(grouping: records, by: { $0.provider ?? "(undecodable)" }).mapValues(\.count)),
            byAge: sorted(byAge)
        )
    }

    /// Counts by error class, provider and age.
    public static func stats(_ records: [DeadLetterRecord], now: Date = Date()) -> String {
        func table(_ title: String, _ counts: [(name: String, count: Int)]) -> [String] {
            ["\(title):"]
                + counts.map { "  \($0.name.padding(toLength: 24, withPad: " ", startingAt: 0)) \($0.count)" }
        }
        let statistics = Self.statistics(records, now: now)
        return
            (["dead letters: \(statistics.total)"] + table("by error class", statistics.byClass)
            + table("by provider", statistics.byProvider) + table("by age", statistics.byAge)).joined(separator: "\n")
    }

    /// One line per record.
    public static func list(_ records: [DeadLetterRecord], limit: Int?) -> String {
        let shown = limit.map { Array(records.prefix(max(0, $0))) } ?? records
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
            lines.append("  \(header.name): \(Self.text(of: header))")
        }
        lines.append("payload:")
        lines.append(Self.payloadText(record.message.value))
        return lines.joined(separator: "\n")
    }

    /// A header's value as `show` prints it: times (stored as epoch milliseconds) as ISO 8601.
    public static func text(of header: KafkaHeader) -> String {
        let text = header.stringValue ?? header.value.map { "\($0.count) bytes" } ?? "(null)"
        if Self.timeHeaders.contains(header.name), let milliseconds = Int64(text) {
            return ISO8601DateFormatter().string(from: Timestamp.date(milliseconds: milliseconds))
        }
        return text
    }

    /// The payload as `show` prints it: the original bytes as text, or (not UTF-8) their hex.
    public static func payloadText(_ value: [UInt8]) -> String {
        String(validating: value, as: UTF8.self)
            ?? "(\(value.count) bytes, not UTF-8: \(value.prefix(64).map { String(format: "%02x", $0) }.joined()))"
    }
}
