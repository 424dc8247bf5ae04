import ArgumentParser
import CancelClient
import CancelCore
import Foundation
import Kafka
import OperatorTools

/// `cancel-worker enqueue`: sends cancel commands as an upstream service would (through
/// `CancelClient`), from flags (one command) or from JSON lines on standard input.
struct EnqueueCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enqueue",
        abstract: "Send cancel commands: one from flags, or JSON lines (cancel-command.v1) from standard input.",
        discussion: """
            Examples:
              cancel-worker enqueue --brokers B --provider futures --account trader-42 --order-id 33308749002645666
              cancel-worker enqueue --brokers B < commands.jsonl
            Where commands come from: with any command flag (--provider, --account, --order-id, --order,
            --idempotency-key, --deadline-in, --order-created-at, --correlation-id) exactly one command is
            built from the flags, and --provider, --account and --order-id (or --order) are required;
            standard input is never read then. Without command flags, JSON lines are read from standard
            input when it is not a terminal, or when --stdin is given.
            Commands are checked with the worker's intake rules before anything is sent (see `cancel` to
            also wait for the outcome).
            Prints one line per command: sent <idempotency key> <partition>@<offset>, or refused <line>: <reason>.
            Exit status: 0 all sent, 1 a line was refused, 64 bad arguments, 69 Kafka unreachable, 78 invalid configuration.
            """
    )

    @OptionGroup var settings: ConfigurationOptions
    @OptionGroup var kafka: KafkaOptions

    @Option(help: "The commands topic (default: topics.commands).")
    var topic: String?

    @Flag(help: "Read JSON lines from standard input even when it is a terminal.")
    var stdin = false

    @OptionGroup var flags: CommandFlags

    @Flag(help: "Send stdin lines even when they are not valid commands (to exercise dead-lettering).")
    var raw = false

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        if !self.flags.isEmpty {
            if self.stdin {
                throw ValidationError("--stdin reads commands from standard input; drop the command flags, or --stdin")
            }
            if self.raw {
                throw ValidationError("--raw applies to lines from standard input, not to a command built from flags")
            }
            _ = try self.flags.command()
        } else if !self.stdin && isatty(STDIN_FILENO) == 1 {
            throw ValidationError(
                "nothing to send: give --provider, --account and --order-id (or --order), or JSON lines on standard input"
            )
        }
    }

    func run() async throws {
        let logger = self.logging.bootstrap(label: "enqueue", defaultLevel: .warning)
        let configuration = try await self.settings.cancelClient(
            self.kafka, commandsTopic: self.topic, listens: false)
        let results = try await CancelClient.withRunning(configuration: configuration, logger: logger) { client in
            if !self.flags.isEmpty {
                return [try await CommandEnqueuer(client: client).send(try self.flags.command())]
            }
            var lines: [String] = []
            while let line = readLine(strippingNewline: true) { lines.append(line) }
            guard self.raw else { return try await CommandEnqueuer(client: client).send(lines: lines) }
            // Invalid lines never pass the client: they go on a plain producer, as a buggy upstream would send them.
            let rawProducer = try KafkaProducer(
                configuration: KafkaProducerConfiguration(client: configuration.kafka), logger: logger)
            do {
                let results = try await CommandEnqueuer(client: client, rawProducer: rawProducer)
                    .send(lines: lines, raw: true)
                await rawProducer.shutdown()
                return results
            } catch {
                await rawProducer.shutdown()
                throw error
            }
        }
        var refused = 0
        for result in results {
            switch result {
            case .sent(let key, let partition, let offset):
                StandardOutput.writeLine("sent \(key) \(partition)@\(offset)")
            case .refused(let line, let reason):
                refused += 1
                StandardOutput.writeLine("refused line \(line): \(reason)")
            }
        }
        if refused > 0 { throw ExitStatus.failure }
    }
}
