import CancelCore
import Foundation

/// An answer the sandbox is about to give: status, body, headers, and a label for the log.
struct SandboxReply: Sendable {
    var status: Int
    var body: String
    var headers: [(String, String)] = [("Content-Type", "application/json")]
    /// `cancelled`, `already_cancelled`, `not_cancellable`, `not_found`, `too_early`,
    /// `auth_error`, `rate_limited`, `bad_request`, `fault:…`
    var result: String

    /// A JSON answer, ending in a newline (as curl users expect; no provider document says
    /// otherwise, and JSON parsers ignore the trailing whitespace).
    static func json(_ status: Int, _ body: String, _ result: String) -> SandboxReply {
        SandboxReply(status: status, body: body.hasSuffix("\n") ? body : body + "\n", result: result)
    }
}

/// One incoming provider request, decoded once.
struct SandboxCall: Sendable {
    var provider: ProviderID
    var method: String
    var path: String
    var query: String?
    /// Lower-cased names.
    var headers: [String: String]
    var body: [UInt8]
    /// The `{id}` path parameter, percent-decoded.
    var pathID: String?
    /// What the request got wrong against its provider's document (see `SandboxContract`).
    var contractViolations: [String] = []
    /// When the sandbox began to handle it, before the simulated network jitter.
    var receivedAt: Date? = nil

    var json: [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(self.body))) as? [String: Any]
    }
}

/// JSON text for a string value.
func quoted(_ text: String) -> String {
    let data =
        (try? JSONSerialization.data(withJSONObject: [text], options: [.withoutEscapingSlashes])) ?? Data("[\"\"]".utf8)
    let array = String(decoding: data, as: UTF8.self)
    return String(array.dropFirst().dropLast())
}
