import CancelCore
import Foundation

/// What each provider's document requires of a cancel request (headers and body), checked on
/// every request that reaches a provider route. A request that breaks the contract is answered
/// exactly as before (a missing `Accept` does not fail the call; a missing key is still an auth
/// error, as the emulation decides); each broken rule is counted in `SandboxStats.contractViolations`
/// and listed on the request's log record, so tests see what a lenient sandbox would forgive and a
/// real provider might not.
///
/// Violations read `<provider>: <rule>`, e.g. `fastpod: missing Accept: application/json`,
/// `futures: wrong Content-Type (expected application/json)`,
/// `taker: body field cancellation_success is not a JSON boolean`.
enum SandboxContract {
    /// The rules `call` breaks, in a stable order.
    static func violations(_ call: SandboxCall) -> [String] {
        var rules = Rules(call: call)
        switch call.provider {
        case .feee:
            // documented (seed 000, "Code demo"): --header 'key: <key>' --header 'User-Agent: Feee.io Client/1.0.0
            // (https://feee.io)' --header 'Content-Type: application/json'; body field order_no "Required: true".
            rules.header("key")
            rules.header("user-agent", display: "User-Agent")
            rules.jsonContentType()
            if let body = rules.jsonObjectBody() { rules.stringField("order_no", in: body) }
        case .fungies:
            // documented (seed 001): "x-fngs-public-key: <api-key>", "x-fngs-secret-key: <api-key>",
            // --header 'Content-Type: application/json' --data '{}'; "The request body ... is of type object."
            rules.header("x-fngs-public-key")
            rules.header("x-fngs-secret-key")
            rules.jsonContentType()
            _ = rules.jsonObjectBody()
        case .taker:
            // documented (seed 002): -H "X-API-Key: YOUR_API_KEY" -H "Content-Type: application/json";
            // order_hash, taker_address, message "string Yes"; cancellation_success "boolean Yes".
            rules.header("x-api-key", display: "X-API-Key")
            rules.jsonContentType()
            if let body = rules.jsonObjectBody() {
                rules.stringField("order_hash", in: body)
                rules.stringField("taker_address", in: body)
                rules.booleanField("cancellation_success", in: body)
                rules.stringField("message", in: body)
            }
        case .fastpod:
            // documented (seed 003): "Authorization: Bearer ********************"; "Header Params Accept string
            // required Example: application/json". No body is documented, so none is checked.
            rules.bearerAuthorization()
            rules.accept()
        case .futures:
            // documented (seed 004, and CONTRACTS.md for the scheme): headers api_key, timestamp, sign;
            // "id true Long Order ID". The JSON body the clients send goes with Content-Type: application/json.
            rules.header("api_key")
            rules.header("timestamp")
            rules.header("sign")
            if !call.body.isEmpty {
                rules.jsonContentType()
                _ = rules.jsonObjectBody()
            }
            if ProviderEmulation.futuresID(call) == nil { rules.broken("missing id") }
        }
        return rules.violations
    }

    private struct Rules {
        let call: SandboxCall
        var violations: [String] = []

        mutating func broken(_ rule: String) {
            self.violations.append("\(self.call.provider.rawValue): \(rule)")
        }

        private func value(_ name: String) -> String? {
            self.call.headers[name].flatMap { $0.trimmingCharacters(in: .whitespaces).isEmpty ? nil : $0 }
        }

        /// The header is present and not empty (`name` lower-cased).
        mutating func header(_ name: String, display: String? = nil) {
            if self.value(name) == nil { self.broken("missing \(display ?? name)") }
        }

        /// `Content-Type: application/json` (parameters such as `charset` allowed).
        mutating func jsonContentType() {
            guard let value = self.value("content-type") else {
                return self.broken("missing Content-Type: application/json")
            }
            if Self.mediaType(value) != "application/json" {
                self.broken("wrong Content-Type (expected application/json)")
            }
        }

        /// `Accept` lists `application/json` (a wildcard is not what the document asks for).
        mutating func accept() {
            guard let value = self.value("accept") else { return self.broken("missing Accept: application/json") }
            if !value.split(separator: ",").contains(where: { Self.mediaType(String($0)) == "application/json" }) {
                self.broken("wrong Accept (expected application/json)")
            }
        }

        /// `Authorization: Bearer <token>`.
        mutating func bearerAuthorization() {
            guard let value = self.value("authorization") else { return self.broken("missing Authorization: Bearer") }
            let parts = value.split(separator: " ", maxSplits: 1)
            if parts.count != 2 || parts[0].lowercased() != "bearer"
                || parts[1].trimmingCharacters(in: .whitespaces).isEmpty
            {
                self.broken("wrong Authorization (expected Bearer <token>)")
            }
        }

        /// The body as a JSON object (nil, after noting why, when it is missing or something else).
        mutating func jsonObjectBody() -> [String: JSONValue]? {
            guard !self.call.body.isEmpty else {
                self.broken("missing body (a JSON object)")
                return nil
            }
            guard case .object(let object) = try? JSONDecoder().decode(JSONValue.self, from: Data(self.call.body))
            else {
                self.broken("body is not a JSON object")
                return nil
            }
            return object
        }

        mutating func stringField(_ name: String, in body: [String: JSONValue]) {
            switch body[name] {
            case nil, .null?: self.broken("missing body field \(name)")
            case .string(let text)? where text.isEmpty: self.broken("body field \(name) is empty")
            case .string?: break
            default: self.broken("body field \(name) is not a string")
            }
        }

        mutating func booleanField(_ name: String, in body: [String: JSONValue]) {
            switch body[name] {
            case nil, .null?: self.broken("missing body field \(name)")
            case .bool?: break
            default: self.broken("body field \(name) is not a JSON boolean")
            }
        }

        /// `application/json; charset=utf-8` → `application/json`.
        private static func mediaType(_ value: String) -> String {
            String(value.split(separator: ";", maxSplits: 1).first ?? "").trimmingCharacters(in: .whitespaces)
                .lowercased()
        }
    }
}
