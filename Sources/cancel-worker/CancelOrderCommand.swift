import ArgumentParser
import CancelClient
import CancelCore
import Foundation
import WorkerApp

/// `cancel-worker cancel … [--wait]`: sends one cancel command through `CancelClient`, and with
/// `--wait` prints its outcome when a worker published it.
struct CancelOrderCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cancel",
        abstract: "Cancel one order as an upstream service would; with --wait, print its outcome when it arrives.",
        discussion: """
            Examples:
              cancel-worker cancel --brokers B --provider fastpod --account demo-1 --order-id 1001 --wait
              cancel-worker cancel --brokers B --provider futures --account trader-42 --order-id 33308749002645666 --wait --timeout 2m
            The command flags are those of `enqueue`. The command is checked with the worker's intake rules
            before anything is sent. Without --wait it prints `sent <idempotency key> <partition>@<offset>`;
            with --wait it prints the key's outcome (cancel-outcome.v1, one JSON line) once it arrives, or
            the one already published if the key was cancelled before. A timeout does not undo anything:
            the cancel may still complete, and running the same command again (same idempotency key) is safe.
            Exit status: 0 sent (or the outcome printed, whatever its status), 64 bad arguments, 69 Kafka
            unreachable, 75 --wait timed out, 78 invalid configuration.
            """
    )

    @OptionGroup var settings: ConfigurationOptions
    @OptionGroup var kafka: KafkaOptions
    @OptionGroup var flags: CommandFlags

    @OptionGroup var waiting: WaitOptions

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        if self.flags.isEmpty {
            throw ValidationError("give the order to cancel: --provider, --account and --order-id (or --order)")
        }
        _ = try self.flags.command()
    }

    func run() async throws {
        let logger = self.logging.bootstrap(label: "cancel", defaultLevel: .warning)
        let command = try self.flags.command()
        let configuration = try await self.settings.cancelClient(self.kafka, listens: self.waiting.wait)
        let timeout = self.waiting.duration
        try await CancelClient.withRunning(configuration: configuration, logger: logger) { client in
            guard self.waiting.wait else {
                let enqueued = try await client.enqueue(command)
                StandardOutput.writeLine("sent \(enqueued.idempotencyKey) \(enqueued.partition)@\(enqueued.offset)")
                return
            }
            do {
                // The one `cancel` awaits, or one published before this run (a key already
                // cancelled is not cancelled again: the worker publishes nothing new for it). Only
                // an outcome that answers this command counts: not another order's under the same
                // key (this one gets its own `idempotency_key_reused`), nor another's rejection.
                let outcome = try await client.cancel(command, timeout: timeout, lookBack: .beginning)
                StandardOutput.writeLine(String(decoding: outcome.encoded(), as: UTF8.self))
            } catch let error as CancelClientError where error.code == .timedOut {
                throw ExitStatus.fail(
                    "no outcome for \(command.idempotencyKey) within \(timeout.settingText); the cancel may still complete"
                        + " (is a worker running? keep waiting with `outcomes --key \(command.idempotencyKey) --wait`,"
                        + " or run this again: the same idempotency key never cancels twice)",
                    ExitStatus.temporaryFailure)
            }
        }
    }
}
