import Foundation

/// Turns a Kafka record value into a command, or into the reason it is not one.
public struct CommandDecoder: Sendable {
    /// What the decoder made of a record.
    public enum Decoded: Sendable, Hashable {
        case valid(CancelCommand)
        /// Addressable but invalid: the worker answers with a `rejected` outcome.
        case invalid(CommandIdentity, reason: String)
        /// Not addressable: the record goes to the dead-letter topic with the reason.
        case undecodable(reason: String)
    }

    /// Records larger than this are dead-lettered unread.
    public var maxRecordBytes: Int

    /// The worker's default `max-command-bytes`, and the client's default limit.
    public static let defaultMaxRecordBytes = 64 * 1024

    public init(maxRecordBytes: Int = CommandDecoder.defaultMaxRecordBytes) {
        self.maxRecordBytes = maxRecordBytes
    }

    /// The wire form; every field optional so that one wrong field still leaves the identity.
    private struct Wire {
        var commandID: String?
        var idempotencyKey: String?
        var provider: String?
        var account: String?
        var order: [String: JSONValue]?
        var requestedAt: String?
        var deadline: String?
        var orderCreatedAt: String?
        var correlationID: String?
        var metadata: [String: JSONValue]?
        /// The first field (in the order above) whose JSON type is wrong.
        var wrongType: String?

        init(_ object: [String: JSONValue]) {
            self.commandID = self.text(object, "command_id")
            self.idempotencyKey = self.text(object, "idempotency_key")
            self.provider = self.text(object, "provider")
            self.account = self.text(object, "account")
            self.order = self.object(object, "order")
            self.requestedAt = self.text(object, "requested_at")
            self.deadline = self.text(object, "deadline")
            self.orderCreatedAt = self.text(object, "order_created_at")
            self.correlationID = self.text(object, "correlation_id")
            self.metadata = self.object(object, "metadata")
        }

        /// A string field: absent and `null` are nil; any other type is noted as wrong.
        private mutating func text(_ object: [String: JSONValue], _ field: String) -> String? {
            switch object[field] {
            case nil, .null?: return nil
            case .string(let value)?: return value
            default:
                if self.wrongType == nil { self.wrongType = field }
                return nil
            }
        }

        private mutating func object(_ object: [String: JSONValue], _ field: String) -> [String: JSONValue]? {
            switch object[field] {
            case nil, .null?: return nil
            case .object(let value)?: return value
            default:
                if self.wrongType == nil { self.wrongType = field }
                return nil
            }
        }
    }

    /// One parse of the record's bytes (`JSONReader`), then the fields by name.
    public func decode(_ bytes: [UInt8]) -> Decoded {
        guard bytes.count <= self.maxRecordBytes else {
            return .undecodable(reason: "record of \(bytes.count) bytes exceeds the \(self.maxRecordBytes)-byte limit")
        }
        guard !bytes.isEmpty else { return .undecodable(reason: "empty record") }
        switch JSONReader.parse(bytes) {
        case .success(.object(let object)):
            let wire = Wire(object)
            if let field = wire.wrongType { return self.explainWrongType(object, field: field) }
            return self.validate(wire)
        case .success: return .undecodable(reason: "not a JSON object")
        case .failure(.notUTF8): return .undecodable(reason: "not UTF-8 text")
        case .failure(.notJSON): return .undecodable(reason: "not a JSON object")
        }
    }

    private func validate(_ wire: Wire) -> Decoded {
        func bounded(_ value: String?, _ field: String, max: Int) -> Result<String, CommandError> {
            guard let value else { return .failure(.undecodable("\(field) is required")) }
            guard !value.isEmpty, value.utf8.count <= max else {
                return .failure(.undecodable("\(field) must have 1 to \(max) bytes"))
            }
            if let problem = Self.controlCharacterProblem(value, field: field) {
                return .failure(.undecodable(problem))
            }
            return .success(value)
        }
        let identityParts = (
            bounded(wire.commandID, "command_id", max: Self.identityLimits[0].max),
            bounded(wire.idempotencyKey, "idempotency_key", max: Self.identityLimits[1].max),
            bounded(wire.provider, "provider", max: Self.identityLimits[2].max),
            bounded(wire.account, "account", max: Self.identityLimits[3].max)
        )
        let identity: CommandIdentity
        switch identityParts {
        case (.success(let commandID), .success(let key), .success(let provider), .success(let account)):
            identity = CommandIdentity(
                commandID: commandID,
                idempotencyKey: key,
                provider: provider,
                account: account,
                order: wire.order,
                requestedAt: wire.requestedAt.flatMap(Timestamp.parse),
                correlationID: wire.correlationID,
                metadata: wire.metadata
            )
        case (.failure(let error), _, _, _), (_, .failure(let error), _, _), (_, _, .failure(let error), _),
            (_, _, _, .failure(let error)):
            return .undecodable(reason: error.description)
        }

        func invalid(_ reason: String) -> Decoded { .invalid(identity, reason: reason) }
        guard let provider = ProviderID(rawValue: identity.provider) else {
            return invalid(
                "unknown provider \"\(identity.provider)\" (known: \(ProviderID.allCases.map(\.rawValue).joined(separator: ", ")))"
            )
        }
        guard let orderObject = wire.order else { return invalid("order is required") }
        let order: OrderReference
        switch OrderReference.parse(orderObject, provider: provider) {
        case .success(let parsed): order = parsed
        case .failure(let error): return invalid(error.description)
        }
        guard let requestedText = wire.requestedAt else { return invalid("requested_at is required") }
        guard let requestedAt = Timestamp.parse(requestedText) else {
            return invalid("requested_at must be an RFC 3339 timestamp")
        }
        var deadline: Date?
        if let text = wire.deadline {
            guard let parsed = Timestamp.parse(text) else { return invalid("deadline must be an RFC 3339 timestamp") }
            deadline = parsed
        }
        var orderCreatedAt: Date?
        if let text = wire.orderCreatedAt {
            guard let parsed = Timestamp.parse(text) else {
                return invalid("order_created_at must be an RFC 3339 timestamp")
            }
            orderCreatedAt = parsed
        }
        if let correlationID = wire.correlationID, correlationID.utf8.count > 256 {
            return invalid("correlation_id must have at most 256 bytes")
        }
        return .valid(
            CancelCommand(
                commandID: identity.commandID,
                idempotencyKey: identity.idempotencyKey,
                provider: provider,
                account: identity.account,
                order: order,
                requestedAt: requestedAt,
                deadline: deadline,
                orderCreatedAt: orderCreatedAt,
                correlationID: wire.correlationID,
                metadata: wire.metadata
            )
        )
    }

    /// The identity fields' longest values, in bytes (the command schema's).
    static let identityLimits: [(field: String, max: Int)] = [
        ("command_id", 128), ("idempotency_key", 256), ("provider", 64), ("account", 128),
    ]

    /// A field has the wrong JSON type: when the identity is still there, the command is
    /// answered `rejected` naming the field; otherwise the record is not a command.
    private func explainWrongType(_ object: [String: JSONValue], field fieldName: String) -> Decoded {
        func string(_ field: String) -> String? {
            if case .string(let value) = object[field], !value.isEmpty { return value }
            return nil
        }
        for (field, limit) in Self.identityLimits {
            if case .string(let value) = object[field], value.utf8.count > limit {
                return .undecodable(reason: "\(field) must have 1 to \(limit) bytes")
            }
        }
        guard let commandID = string("command_id"), let key = string("idempotency_key"),
            let provider = string("provider"), let account = string("account")
        else {
            return .undecodable(
                reason:
                    "\(fieldName) has the wrong type; command_id, idempotency_key, provider and account must be strings"
            )
        }
        for (field, value) in [
            ("command_id", commandID), ("idempotency_key", key), ("provider", provider), ("account", account),
        ] {
            if let problem = Self.controlCharacterProblem(value, field: field) { return .undecodable(reason: problem) }
        }
        var order: [String: JSONValue]?
        if case .object(let value) = object["order"] { order = value }
        var metadata: [String: JSONValue]?
        if case .object(let value) = object["metadata"] { metadata = value }
        let identity = CommandIdentity(
            commandID: commandID,
            idempotencyKey: key,
            provider: provider,
            account: account,
            order: order,
            requestedAt: string("requested_at").flatMap(Timestamp.parse),
            correlationID: string("correlation_id"),
            metadata: metadata
        )
        return .invalid(identity, reason: "\(fieldName) has the wrong type")
    }

    /// Why an identity field with a control character (U+0000–U+001F, U+007F) is unusable, or
    /// nil. Such a field cannot address an outcome: PostgreSQL text refuses NUL, so a key holding
    /// one would fail every ledger operation, and the others end up in headers, logs and keys.
    /// The reason names the field and the character's code point, never the character itself.
    static func controlCharacterProblem(_ value: String, field: String) -> String? {
        guard let scalar = value.unicodeScalars.first(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
            return nil
        }
        let codePoint = String(scalar.value, radix: 16, uppercase: true)
        return
            "\(field) must not contain control characters (found U+\(String(repeating: "0", count: max(0, 4 - codePoint.count)))\(codePoint))"
    }
}
