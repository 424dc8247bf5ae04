public import CancelCore
import Foundation
public import Kafka
public import Logging

/// Reads the outcome topic from the beginning, as an upstream consumer would, without
/// committing anything: `read` stops once it has caught up with the end of every partition as
/// it was when reading started; `follow` keeps going.
public struct OutcomeReader: Sendable {
    /// One record of the outcome topic.
    public struct Record: Sendable, Hashable {
        public var outcome: CancelOutcome?
        /// The raw bytes (kept to count byte-identical copies).
        public var value: [UInt8]
        public var partition: Int32
        public var offset: Int64
    }

    public let options: KafkaClientOptions
    public let topic: String
    public let logger: Logger

    public init(options: KafkaClientOptions, topic: String, logger: Logger) {
        self.options = options
        self.topic = topic
        self.logger = logger
    }

    /// Everything on the topic now.
    public func read(timeout: Duration = .seconds(60)) async throws -> [Record] {
        try await TopicSnapshot(options: self.options, topic: self.topic, logger: self.logger).read(timeout: timeout)
            .map(Self.record)
    }

    /// Every record, then every new one, until the task is cancelled.
    public func follow(_ body: @Sendable (Record) async throws -> Void) async throws {
        try await TopicSnapshot(options: self.options, topic: self.topic, logger: self.logger).follow {
            try await body(Self.record($0))
        }
    }

    /// The first record (old or new) that `matches`, or nil when none arrived within `timeout`.
    public func first(where matches: @escaping @Sendable (Record) -> Bool, timeout: Duration) async throws -> Record? {
        struct Found: Error {
            var record: Record
        }
        return try await withThrowingTaskGroup(of: Record?.self) { group in
            group.addTask {
                do {
                    try await self.follow { record in
                        if matches(record) { throw Found(record: record) }
                    }
                } catch let found as Found {
                    return found.record
                }
                return nil
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            let first = try await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }

    private static func record(_ message: KafkaConsumerMessage) -> Record {
        Record(
            outcome: try? CancelOutcome.decode(message.value), value: message.value, partition: message.partition,
            offset: message.offset)
    }
}

/// Reads a topic from the beginning without committing anything (a consumer group of its
/// own per read): `read` stops at the end each partition had when reading started; `follow`
/// keeps going. For outcomes, dead letters, and tests.
public struct TopicSnapshot: Sendable {
    public let options: KafkaClientOptions
    public let topic: String
    public let logger: Logger

    public init(options: KafkaClientOptions, topic: String, logger: Logger) {
        self.options = options
        self.topic = topic
        self.logger = logger
    }

    /// Every record up to the end each partition had when reading started; throws `Incomplete`
    /// if that end was not reached in every partition within `timeout` (never a partial list).
    public func read(timeout: Duration = .seconds(60)) async throws -> [KafkaConsumerMessage] {
        let admin = try KafkaAdminClient(options: self.options, logger: self.logger)
        let partitions = try await admin.describeTopic(self.topic).partitions.map(\.id)
        let consumer = try self.consumer()
        var ends: [Int32: Int64] = [:]
        var reached = Set<Int32>()
        for partition in partitions {
            let marks = try await consumer.watermarks(for: KafkaTopicPartition(topic: self.topic, partition: partition))
            ends[partition] = marks.high
            // Nothing to read: empty, or every record deleted (retention: first offset = end).
            if marks.low >= marks.high { reached.insert(partition) }
        }
        var records: [KafkaConsumerMessage] = []
        if reached.count == partitions.count {
            consumer.close()
            return []
        }
        let deadline = ContinuousClock.now + timeout
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                try await Task.sleep(until: deadline, clock: .continuous)
                consumer.close()
            }
            for try await message in consumer.messages {
                if message.offset < ends[message.partition, default: 0] {
                    records.append(message)
                }
                if message.offset + 1 >= ends[message.partition, default: 0] { reached.insert(message.partition) }
                if reached.count == partitions.count { break }
            }
            consumer.close()
            group.cancelAll()
        }
        guard reached.count == partitions.count else {
            throw Incomplete(
                topic: self.topic, unread: Set(partitions).subtracting(reached).sorted(), timeout: timeout)
        }
        return records
    }

    /// `read` did not reach the end of every partition in time.
    public struct Incomplete: Error, CustomStringConvertible {
        public var topic: String
        public var unread: [Int32]
        public var timeout: Duration

        public var description: String {
            "could not read \(self.topic) to its end within \(self.timeout) (partitions not read to the end: "
                + "\(self.unread.map(String.init).joined(separator: ", "))); nothing is shown rather than a part"
        }
    }

    /// Every record, then every new one, until the task is cancelled.
    public func follow(_ body: @Sendable (KafkaConsumerMessage) async throws -> Void) async throws {
        let consumer = try self.consumer()
        try await withTaskCancellationHandler {
            for try await message in consumer.messages {
                try await body(message)
            }
        } onCancel: {
            consumer.close()
        }
    }

    private func consumer() throws -> KafkaConsumer {
        // A group of its own that never commits: every read starts at the beginning.
        var configuration = KafkaConsumerConfiguration(
            client: self.options, groupID: "cancel-worker-reader-\(UUID().uuidString.prefix(8))")
        configuration.autoOffsetReset = .earliest
        configuration.sessionTimeout = .seconds(6)
        return try KafkaConsumer(configuration: configuration, topics: [self.topic], logger: self.logger)
    }
}
