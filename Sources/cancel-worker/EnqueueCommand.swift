import ArgumentParser
import CancelCore
import Foundation
import Kafka
import WorkerApp

/// `cancel-worker enqueue`: sends cancel commands as an upstream service would, from flags
/// (one command) or from JSON lines on standard input.
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

    @Option(help: "Provider id: feee, fungies, taker, fastpod, futures.")
    var provider: String?

    @Option(help: "The account whose credentials and rate limit apply.")
    var account: String?

    @Option(help: "The provider's order reference (feee order_no, Fungies id or number, FastPOD id, futures id).")
    var orderID: String?

    @Option(help: "The whole order object as JSON (required for taker).")
    var order: String?

    @Option(help: "Idempotency key (default: <provider>-<order id>).")
    var idempotencyKey: String?

    @Option(help: "Deadline from now, e.g. 30s, 5m.")
    var deadlineIn: String?

    @Option(help: "When the order was created (RFC 3339), for feee's 5-minute rule.")
    var orderCreatedAt: String?

    @Option(help: "Correlation id echoed in the outcome.")
    var correlationID: String?

    @Flag(help: "Send stdin lines even when they are not valid commands (to exercise dead-lettering).")
    var raw = false

    @OptionGroup var logging: LoggingOptions

    /// Whether a flag that describes one command was given.
    private var hasCommandFlags: Bool {
        [
            self.provider, self.account, self.orderID, self.order, self.idempotencyKey, self.deadlineIn,
            self.orderCreatedAt, self.correlationID,
        ]
        .contains { $0 != nil }
    }

    func validate() throws {
        if self.hasCommandFlags {
            if self.stdin {
                throw ValidationError("--stdin reads commands from standard input; drop the command flags, or --stdin")
            }
            if self.raw {
                throw ValidationError("--raw applies to lines from standard input, not to a command built from flags")
            }
            _ = try self.command()
        } else if !self.stdin && isatty(STDIN_FILENO) == 1 {
            throw ValidationError(
                "nothing to send: give --provider, --account and --order-id (or --order), or JSON lines on standard input"
            )
        }
    }

    func run() async throws {
        let logger = self.logging.bootstrap(label: "enqueue", defaultLevel: .warning)
        let configuration = try await self.kafka.connect(self.settings)
        let producer = try KafkaProducer(
            configuration: KafkaProducerConfiguration(client: configuration.worker.kafka), logger: logger)
        let enqueuer = CommandEnqueuer(producer: producer, topic: self.topic ?? configuration.worker.topics.commands)
        let results: [CommandEnqueuer.Result]
        do {
            if self.hasCommandFlags {
                results = [try await enqueuer.send(try self.command())]
            } else {
                var lines: [String] = []
                while let line = readLine(strippingNewline: true) { lines.append(line) }
                results = try await enqueuer.send(lines: lines, raw: self.raw)
            }
        } catch {
            await producer.shutdown()
            throw error
        }
        await producer.shutdown()
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

    /// The one command the flags describe.
    private func command() throws -> CancelCommand {
        guard let providerName = self.provider else {
            throw ValidationError("--provider is required with --account, --order-id and the other command flags")
        }
        guard let provider = ProviderID(rawValue: providerName) else {
            throw ValidationError(
                "unknown provider \(providerName); known: \(ProviderID.allCases.map(\.rawValue).joined(separator: ", "))"
            )
        }
        guard let account = self.account else { throw ValidationError("--account is required with --provider") }
        var orderObject: [String: JSONValue]
        if let order = self.order {
            guard let parsed = try? JSONDecoder().decode([String: JSONValue].self, from: Data(order.utf8)) else {
                throw ValidationError("--order must be a JSON object")
            }
            orderObject = parsed
        } else if let orderID = self.orderID {
            let field = [ProviderID.feee: "order_no", .fungies: "order_id_or_number"][provider] ?? "id"
            orderObject = [field: .string(orderID)]
        } else {
            throw ValidationError("--order-id or --order is required with --provider")
        }
        let order: OrderReference
        switch OrderReference.parse(orderObject, provider: provider) {
        case .success(let parsed): order = parsed
        case .failure(let error): throw ValidationError(error.description)
        }
        var deadline: Date?
        if let text = self.deadlineIn {
            guard let duration = Duration(humanReadable: text) else {
                throw ValidationError("--deadline-in: not a duration: \(text)")
            }
            deadline = Date().addingTimeInterval(duration.timeInterval)
        }
        var created: Date?
        if let text = self.orderCreatedAt {
            guard let parsed = Timestamp.parse(text) else {
                throw ValidationError("--order-created-at must be RFC 3339")
            }
            created = parsed
        }
        return CancelCommand(
            commandID: UUID().uuidString.lowercased(),
            idempotencyKey: self.idempotencyKey ?? "\(provider.rawValue)-\(order.orderID)",
            provider: provider,
            account: account,
            order: order,
            requestedAt: Date(),
            deadline: deadline,
            orderCreatedAt: created,
            correlationID: self.correlationID
        )
    }
}
