import ArgumentParser
import CancelCore
import Foundation
import OperatorTools

/// `cancel-worker dlq`: look at dead letters.
struct DeadLetterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dlq",
        abstract: "Inspect dead letters: counts, a listing, one record in full.",
        subcommands: [Stats.self, List.self, Show.self]
    )

    struct Common: ParsableArguments {
        @OptionGroup var settings: ConfigurationOptions
        @OptionGroup var kafka: KafkaOptions
        @OptionGroup var logging: LoggingOptions

        func inspector() async throws -> DeadLetterInspector {
            let logger = self.logging.bootstrap(label: "dlq", defaultLevel: .warning)
            let configuration = try await self.kafka.connect(self.settings)
            return DeadLetterInspector(
                options: configuration.worker.kafka, topic: configuration.worker.topics.deadLetters, logger: logger)
        }
    }

    struct Stats: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Count dead letters by error class, provider and age.")
        @OptionGroup var common: Common
        @OptionGroup var filters: FilterOptions

        func run() async throws {
            let records = try await self.common.inspector().records(filter: try self.filters.filter())
            StandardOutput.writeLine(DeadLetterInspector.stats(records))
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List dead letters with their failure context.")
        @OptionGroup var common: Common
        @OptionGroup var filters: FilterOptions
        @Option(help: "At most N records.")
        var limit: Int?

        func validate() throws {
            if let limit, limit < 0 { throw ValidationError("--limit must be at least 0") }
        }

        func run() async throws {
            let records = try await self.common.inspector().records(filter: try self.filters.filter())
            StandardOutput.writeLine(DeadLetterInspector.list(records, limit: self.limit))
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one dead letter: headers and payload.")
        @OptionGroup var common: Common
        @Argument(help: "The record's position, PARTITION@OFFSET (as `dlq list` prints it).")
        var position: String

        func validate() throws {
            let parts = self.position.split(separator: "@")
            guard parts.count == 2, Int32(parts[0]) != nil, Int64(parts[1]) != nil else {
                throw ValidationError("expected PARTITION@OFFSET, e.g. 0@12")
            }
        }

        func run() async throws {
            let records = try await self.common.inspector().records()
            guard let record = records.first(where: { $0.position == self.position }) else {
                throw ExitStatus.fail("no dead letter at \(self.position)", ExitStatus.failure)
            }
            StandardOutput.writeLine(DeadLetterInspector.show(record))
        }
    }
}
