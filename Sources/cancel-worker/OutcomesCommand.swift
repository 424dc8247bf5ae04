import ArgumentParser
import CancelCore
import Foundation
import Kafka
import OperatorTools
import WorkerApp

/// `cancel-worker outcomes [--follow | --key K --wait]`: prints the outcome topic as JSON lines.
struct OutcomesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "outcomes",
        abstract: "Print outcomes (cancel-outcome.v1) as JSON lines, from the beginning.",
        discussion: """
            By default prints the outcomes on the topic now and exits 0, also when there are none:
            right after `enqueue` a worker may not have processed the command yet. To wait for one
            command's outcome: outcomes --key K --wait [--timeout 30s] (exit 0 and the outcome, or
            exit 75 when none came in time: the cancel may still complete). --follow keeps printing
            new outcomes until interrupted.
            Exit status: 0 done, 64 bad arguments, 69 Kafka unreachable, 75 --wait timed out, 78 invalid configuration.
            """
    )

    @OptionGroup var settings: ConfigurationOptions
    @OptionGroup var kafka: KafkaOptions

    @Option(help: "The outcome topic (default: topics.outcomes).")
    var topic: String?

    @Flag(help: "Keep printing new outcomes until interrupted.")
    var follow = false

    @Option(help: "Only this idempotency key.")
    var key: String?

    @Option(
        help: "Only this status (cancelled, already_cancelled, not_cancellable, not_found, rejected, expired, failed).")
    var status: String?

    /// With --key only.
    @OptionGroup var waiting: WaitOptions

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        if let status, OutcomeStatus(rawValue: status) == nil {
            throw ValidationError("unknown status \(status)")
        }
        if self.waiting.wait {
            guard self.key != nil else { throw ValidationError("--wait needs --key (the idempotency key to wait for)") }
            guard !self.follow else { throw ValidationError("--wait and --follow exclude each other") }
        }
    }

    func run() async throws {
        let logger = self.logging.bootstrap(label: "outcomes", defaultLevel: .warning)
        let configuration = try await self.kafka.connect(self.settings)
        let reader = OutcomeReader(
            options: configuration.worker.kafka, topic: self.topic ?? configuration.worker.topics.outcomes,
            logger: logger
        )
        let key = self.key
        let status = self.status
        let matches: @Sendable (OutcomeReader.Record) -> Bool = { record in
            if let key, record.outcome?.idempotencyKey != key { return false }
            if let status, record.outcome?.status.rawValue != status { return false }
            return true
        }
        let print: @Sendable (OutcomeReader.Record) -> Void = { record in
            StandardOutput.writeLine(String(decoding: record.value, as: UTF8.self))
        }
        if self.waiting.wait {
            let timeout = self.waiting.duration
            guard let record = try await reader.first(where: matches, timeout: timeout) else {
                throw ExitStatus.fail(
                    "no outcome for \(key ?? "") within \(timeout.settingText); the cancel may still complete"
                        + " (is a worker running? see its logs, or wait longer with --timeout)",
                    ExitStatus.temporaryFailure
                )
            }
            print(record)
        } else if self.follow {
            try await reader.follow { if matches($0) { print($0) } }
        } else {
            for record in try await reader.read() where matches(record) { print(record) }
        }
    }
}
