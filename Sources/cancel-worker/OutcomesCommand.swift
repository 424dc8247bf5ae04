import ArgumentParser
import CancelCore
import Foundation
import Kafka
import WorkerApp

/// `cancel-worker outcomes [--follow]`: prints the outcome topic as JSON lines.
struct OutcomesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "outcomes",
        abstract: "Print outcomes (cancel-outcome.v1) as JSON lines, from the beginning; --follow keeps printing new ones."
    )

    @OptionGroup var kafka: KafkaOptions

    @Option(help: "The outcome topic.")
    var topic: String = TopicNames.default.outcomes

    @Flag(help: "Keep printing new outcomes until interrupted.")
    var follow = false

    @Option(help: "Only this idempotency key.")
    var key: String?

    @Option(help: "Only this status (cancelled, already_cancelled, not_cancellable, not_found, rejected, expired, failed).")
    var status: String?

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        if let status, OutcomeStatus(rawValue: status) == nil {
            throw ValidationError("unknown status \(status)")
        }
    }

    func run() async throws {
        let logger = self.logging.bootstrap(label: "outcomes")
        let reader = OutcomeReader(options: try self.kafka.clientOptions, topic: self.topic, logger: logger)
        let key = self.key
        let status = self.status
        let print: @Sendable (OutcomeReader.Record) -> Void = { record in
            if let key, record.outcome?.idempotencyKey != key { return }
            if let status, record.outcome?.status.rawValue != status { return }
            StandardOutput.writeLine(String(decoding: record.value, as: UTF8.self))
        }
        if self.follow {
            try await reader.follow { print($0) }
        } else {
            for record in try await reader.read() { print(record) }
        }
    }
}
