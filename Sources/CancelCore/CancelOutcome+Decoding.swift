import Foundation

extension CancelOutcome {
    /// Why bytes are not a `cancel-outcome.v1` record.
    public struct DecodingFailure: Error, Sendable, Hashable, CustomStringConvertible {
        public let description: String
    }

    /// An outcome record's value, read with `JSONReader` (one pass, no `Data`, no boxing): every
    /// client's listener decodes every outcome on the topic, and `JSONDecoder` spent ~12 µs on
    /// one (issue 14). It accepts and refuses what the `Codable` conformance does: required
    /// fields present and of their type, optional ones absent, `null` or of their type, a known
    /// status, RFC 3339 timestamps, integral numbers (`OutcomeDecodingDifferentialTests` holds it
    /// against `decodeFoundation`); stricter only for integers beyond ±2^53. Unknown fields are
    /// ignored.
    public static func decode(_ bytes: [UInt8]) throws(DecodingFailure) -> CancelOutcome {
        guard case .success(.object(let object)) = JSONReader.parse(bytes) else {
            throw DecodingFailure(description: "not a JSON object")
        }
        let fields = Fields(object)
        let status = try fields.required("status", fields.text)
        guard let knownStatus = OutcomeStatus(rawValue: status) else {
            throw DecodingFailure(description: "status: unknown value \"\(status)\"")
        }
        var outcome = CancelOutcome(
            outcomeID: try fields.required("outcome_id", fields.text),
            identity: CommandIdentity(
                commandID: try fields.required("command_id", fields.text),
                idempotencyKey: try fields.required("idempotency_key", fields.text),
                provider: try fields.required("provider", fields.text),
                account: try fields.required("account", fields.text),
                order: try fields.optional("order", fields.object),
                requestedAt: try fields.optional("requested_at", fields.date),
                correlationID: try fields.optional("correlation_id", fields.text),
                metadata: try fields.optional("metadata", fields.object)),
            status: knownStatus,
            reason: try fields.required("reason", fields.text),
            errorClass: try fields.optional("error_class", fields.text),
            providerResponse: try fields.optional("provider_response", fields.answer),
            attempts: try fields.required("attempts", fields.integer),
            completedAt: try fields.required("completed_at", fields.date),
            workerID: try fields.required("worker_id", fields.text))
        outcome.schema = try fields.required("schema", fields.text)
        outcome.uncertainAttempts = try fields.optional("uncertain_attempts", fields.integer)
        return outcome
    }

    /// `decode` through `JSONDecoder` and the `Codable` conformance (the reference the fast path
    /// is tested against).
    package static func decodeFoundation(_ bytes: [UInt8]) throws -> CancelOutcome {
        try CancelOutcome.decoder.decode(CancelOutcome.self, from: Data(bytes))
    }

    /// An object's members, read by name and type.
    private struct Fields {
        let object: [String: JSONValue]

        init(_ object: [String: JSONValue]) { self.object = object }

        /// A member that must be present and not `null`.
        func required<T>(
            _ key: String, _ read: (JSONValue, String) throws(DecodingFailure) -> T
        )
            throws(DecodingFailure) -> T
        {
            switch self.object[key] {
            case nil: throw DecodingFailure(description: "\(key) is required")
            case .null?: throw DecodingFailure(description: "\(key) must not be null")
            case let value?: return try read(value, key)
            }
        }

        /// A member that may be absent or `null`.
        func optional<T>(
            _ key: String, _ read: (JSONValue, String) throws(DecodingFailure) -> T
        )
            throws(DecodingFailure) -> T?
        {
            switch self.object[key] {
            case nil, .null?: return nil
            case let value?: return try read(value, key)
            }
        }

        func text(_ value: JSONValue, _ key: String) throws(DecodingFailure) -> String {
            guard case .string(let text) = value else { throw Self.wrongType(key, "a string") }
            return text
        }

        func object(_ value: JSONValue, _ key: String) throws(DecodingFailure) -> [String: JSONValue] {
            guard case .object(let object) = value else { throw Self.wrongType(key, "an object") }
            return object
        }

        /// A JSON number with an integral value, as `JSONDecoder` reads one into an `Int`, up to
        /// ±2^53: the reader keeps numbers as `Double`s, exact only that far, so larger ones are
        /// refused where `JSONDecoder` read their digits (no worker writes counts that large).
        func integer(_ value: JSONValue, _ key: String) throws(DecodingFailure) -> Int {
            guard case .number(let number) = value, number.rounded(.towardZero) == number,
                abs(number) <= 9_007_199_254_740_992
            else { throw Self.wrongType(key, "an integer of at most 2^53") }
            return Int(number)
        }

        func date(_ value: JSONValue, _ key: String) throws(DecodingFailure) -> Date {
            guard let date = Timestamp.parse(try self.text(value, key)) else {
                throw DecodingFailure(description: "\(key) is not an RFC 3339 timestamp")
            }
            return date
        }

        func answer(_ value: JSONValue, _ key: String) throws(DecodingFailure) -> ProviderAnswer {
            let members = Fields(try self.object(value, key))
            return ProviderAnswer(
                httpStatus: try members.optional("http_status", members.integer),
                code: try members.optional("code", members.text),
                message: try members.optional("message", members.text),
                orderStatus: try members.optional("order_status", members.text))
        }

        static func wrongType(_ key: String, _ expected: String) -> DecodingFailure {
            DecodingFailure(description: "\(key) must be \(expected)")
        }
    }
}
