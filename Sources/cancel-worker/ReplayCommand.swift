import ArgumentParser
import CancelCore
import Foundation
import Ledger
import Logging
import ServiceLifecycle
import UnixSignals
import WorkerApp

/// `cancel-worker replay`: dead letters back to the commands topic, safely.
struct ReplayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Replay dead-lettered commands to the commands topic (completed keys skipped, resumable, with provenance).",
        discussion: """
            Reads the DLQ in the replay's own consumer group, so a second run continues where the
            first stopped (--from-beginning starts over). Kafka, topic names and the ledger come from
            the same configuration as `run` (--config, --set, CANCEL_WORKER_*).
            Exit status: 0 done, 1 failure, 64 bad arguments, 130 interrupted (progress kept).
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

    @Option(help: "JSON configuration file (as for run).")
    var config: String?

    @Option(name: .customLong("set"), help: "Override one setting (repeatable), e.g. --set kafka.bootstrap-servers=…")
    var overrides: [String] = []

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
        if let rate, rate <= 0 { throw ValidationError("--rate must be positive") }
        guard self.maxReplays >= 1 else { throw ValidationError("--max-replays must be at least 1") }
    }

    func run() async throws {
        let logger = self.logging.bootstrap(label: "replay")
        let configuration = try await ConfigurationLoading.load(file: self.config, overrides: self.overrides)
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
        let made = try LedgerFactory.make(url: configuration.ledgerURL.reveal(), logger: logger)
        let replayer = Replayer(options: options, ledger: made.ledger, logger: logger)
        let progress: @Sendable (ReplayReport) -> Void = { report in
            FileHandle.standardError.write(Data("replay: read \(report.read), \(report.dryRun ? "would replay" : "replayed") \(report.replayed.count), skipped \(report.skipped.count)\n".utf8))
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
            FileHandle.standardError.write(Data("replay: interrupted; what was done is committed, run again to continue\n".utf8))
            throw ExitCode(130)
        } catch {
            FileHandle.standardError.write(Data("replay failed: \(error)\n".utf8))
            throw ExitCode(1)
        }
        await made.ledger.shutdown()
        if self.dryRun || self.logging.logLevel == "debug" { StandardOutput.writeLine(report.details) }
        StandardOutput.writeLine(report.summary)
        if interrupted { throw ExitCode(130) }
    }
}
