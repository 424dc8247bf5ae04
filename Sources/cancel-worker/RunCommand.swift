import ArgumentParser
import Foundation
import Logging
import UnixSignals
import WorkerApp

/// `cancel-worker run`: one worker replica.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a worker: consume cancel commands, call providers, publish outcomes.",
        discussion: """
            Configuration: --set key=value (and --brokers, --log-level), then CANCEL_WORKER_* environment
            variables, then the JSON file given with --config (env CANCEL_WORKER_CONFIG), then defaults.
            `cancel-worker config --reference` lists every key; `cancel-worker config` checks a
            configuration exactly as run does. Unlike the tools, run does not give up when no broker
            answers: it logs an error and keeps trying.
            Exit status: 0 after SIGTERM/SIGINT, 69 http.port in use, 78 invalid configuration, 1 other failures.
            """
    )

    @OptionGroup var settings: ConfigurationOptions
    @OptionGroup var kafka: KafkaOptions
    @OptionGroup var logging: LoggingOptions

    /// SIGTERM and SIGINT are trapped first: a stop asked while the worker starts (configuration,
    /// the broker check, the ledger) is not the signal's default action (exit 143) but an orderly
    /// stop as soon as the worker runs, exit 0.
    func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
        let (stops, stop) = AsyncStream<Void>.makeStream()
        try await withThrowingDiscardingTaskGroup { tasks in
            tasks.addTask {
                for await _ in signals { stop.yield() }
            }
            try await self.start(stopRequests: stops)
            tasks.cancelAll()
        }
    }

    private func start(stopRequests: AsyncStream<Void>) async throws {
        let (configuration, logger) = try await self.settings.loadService(
            kafka: self.kafka, logging: self.logging, label: "cancel-worker")
        do {
            try await KafkaReachability.check(configuration.worker.kafka, timeout: self.kafka.timeout)
        } catch {
            logger.error("\(error); the worker keeps trying")
        }
        do {
            try await WorkerApplication.run(
                configuration, logger: logger, stopRequests: stopRequests, allocator: Allocator.description)
        } catch let error as WorkerApplication.PortInUse {
            throw ExitStatus.fail(error, ExitStatus.unavailable)
        }
    }
}
