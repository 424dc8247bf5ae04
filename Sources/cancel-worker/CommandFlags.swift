import ArgumentParser
import CancelClient
import CancelCore
import Foundation

/// The flags that describe one cancel command, shared by `enqueue` and `cancel`.
struct CommandFlags: ParsableArguments {
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

    /// Whether a flag that describes a command was given.
    var isEmpty: Bool {
        [
            self.provider, self.account, self.orderID, self.order, self.idempotencyKey, self.deadlineIn,
            self.orderCreatedAt, self.correlationID,
        ]
        .allSatisfy { $0 == nil }
    }

    /// The one command the flags describe, checked with the worker's intake rules (a refusal is
    /// a usage error: nothing is sent).
    func command() throws -> CancelCommand {
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
        let command = CancelCommand(
            order: order, account: account, idempotencyKey: self.idempotencyKey, deadline: deadline,
            orderCreatedAt: created, correlationID: self.correlationID)
        if case .failure(let error) = command.validatedRecord() { throw ValidationError(error.description) }
        return command
    }
}

extension ConfigurationOptions {
    /// A client for the configured cluster and topics, after `kafka` checked that a broker answers.
    func cancelClient(
        _ kafka: KafkaOptions, commandsTopic: String? = nil, outcomesTopic: String? = nil, listens: Bool
    ) async throws -> CancelClientConfiguration {
        let loaded = try await kafka.connect(self)
        var configuration = CancelClientConfiguration(kafka: loaded.worker.kafka)
        configuration.topics = loaded.worker.topics
        configuration.topics.commands = commandsTopic ?? loaded.worker.topics.commands
        configuration.topics.outcomes = outcomesTopic ?? loaded.worker.topics.outcomes
        configuration.maxCommandBytes = loaded.worker.maxCommandBytes
        configuration.listensForOutcomes = listens
        configuration.outcomeFetchWait = loaded.worker.fetchWaitMax
        return configuration
    }
}
