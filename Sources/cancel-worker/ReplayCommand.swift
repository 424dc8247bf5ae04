import ArgumentParser
import CancelCore
import Foundation
import Ledger
import Logging
import OperatorTools
import ServiceLifecycle
import Synchronization
import UnixSignals

/// `cancel-worker replay`: dead letters back to the commands topic, safely.
struct ReplayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract:
            "Replay dead-lettered commands to the commands topic (completed keys skipped, resumable, with provenance).",
        discussion: """
            Reads the DLQ in the replay's own consumer group, so a second run continues where the
            first stopped (--from-beginning starts over). Kafka, topic names and the ledger come from
            the same configuration as `run` (--config, --set, CANCEL_WORKER_*).
            The ledger must exist: replay opens the workers' ledger (ledger.url) and never creates one.
            Exit status: 0 done, 1 failure, 64 bad arguments, 69 Kafka unreachable, 78 invalid
            configuration or no ledger at ledger.url, 130 interrupted (progress kept).
            """
    )

    @OptionGroup var filters: FilterOptions

    @Flag(help: "Show what would be replayed and skipped; produce and commit nothing.")
    var dryRun = false

    @Option(help: "Replay at most N records, then stop (the next run continues).")
    var limit: Int?

    @Option(help: "At most R records per second.")
    var rate: Double?

    @Flag(help: "Start from the beginning of the DLQ instead of where the last run stopped.")
    var fromBeginning = false

    @Flag(help: "Replay records that were already replayed --max-replays times.")
    var force = false

    @Option(help: "Replays of one command before it is parked.")
    var maxReplays: Int = 3

    @Option(help: "The replay's consumer group.")
    var group: String = "cancel-worker-replay"

    @OptionGroup var settings: ConfigurationOptions
    @OptionGroup var kafka: KafkaOptions
    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
        if let rate, !(0.001...1_000_000).contains(rate) {
            throw ValidationError("--rate must be from 0.001 to 1000000 records per second")
        }
        guard self.maxReplays >= 1 else { throw ValidationError("--max-replays must be at least 1") }
    }

    func run() async throws {
        let logger = self.logging.bootstrap(label: "replay", defaultLevel: .warning)
        let configuration = try await self.kafka.connect(self.settings)
        if let path = configuration.sqliteLedgerPath, !FileManager.default.fileExists(atPath: path) {
            throw ExitStatus.fail(
                "configuration ledger.url (CANCEL_WORKER_LEDGER_URL): no ledger at \(path); replay reads the workers' ledger"
                    + " and never creates one: point ledger.url at it",
                ExitStatus.configuration
            )
        }
        var options = ReplayOptions(kafka: configuration.worker.kafka, topics: configuration.worker.topics)
        options.group = self.group
        options.filter = try self.filters.filter()
        options.dryRun = self.dryRun
        options.limit = self.limit
        options.rate = self.rate
        options.fromBeginning = self.fromBeginning
        options.force = self.force
        options.maxReplays = self.maxReplays
        options.ledgerRetention = configuration.ledgerRetention
        let made = try configuration.makeLedger(logger: logger)
        let replayer = Replayer(options: options, ledger: made.ledger, logger: logger)
        // Progress only when something was read and it changed since the last line.
        let lastProgress = ProgressLine()
        let progress: @Sendable (ReplayReport) -> Void = { report in
            guard report.read > 0 else { return }
            let line =
                "replay: read \(report.read), \(report.dryRun ? "would replay" : "replayed") \(report.replayed.count), skipped \(report.skipped.count)"
            if lastProgress.changed(to: line) { FileHandle.standardError.write(Data((line + "\n").utf8)) }
        }
        var interrupted = false
        let report: ReplayReport
        do {
            report = try await withThrowingTaskGroup(of: ReplayReport?.self) { group in
                if let service = made.service {
                    group.addTask {
                        try await service.run()
                        return nil
                    }
                }
                group.addTask { try await replayer.run(progress: progress) }
                group.addTask {
                    // SIGINT/SIGTERM stop the replay after the record in hand.
                    for await _ in await UnixSignalsSequence(trapping: .sigint, .sigterm) { break }
                    return nil
                }
                while let next = try await group.next() {
                    if let report = next {
                        group.cancelAll()
                        return report
                    }
                    if !Task.isCancelled {
                        interrupted = true
                        group.cancelAll()
                    }
                }
                throw CancellationError()
            }
        } catch is CancellationError {
            FileHandle.standardError.write(
                Data("replay: interrupted; what was done is committed, run again to continue\n".utf8))
            throw ExitStatus.interrupted
        } catch {
            FileHandle.standardError.write(Data("replay failed: \(StandardOutput.visible("\(error)"))\n".utf8))
            throw ExitStatus.failure
        }
        await made.ledger.shutdown()
        if self.dryRun || self.logging.logLevel == "debug" { StandardOutput.writeLine(report.details) }
        StandardOutput.writeLine(report.summary)
        if interrupted { throw ExitStatus.interrupted }
    }
}

/// The last progress line printed, so an unchanged one is not printed again.
private final class ProgressLine: Sendable {
    private let last = Mutex<String?>(nil)

    func changed(to line: String) -> Bool {
        self.last.withLock { last in
            defer { last = line }
            return last != line
        }
    }
}
