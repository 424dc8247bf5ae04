public import CancelCore
public import Foundation

/// One HTTP request, as a provider's document describes it.
public struct ProviderHTTPRequest: Sendable, Hashable {
    public var method: String
    /// The path after the base URL, already percent-encoded.
    public var path: String
    /// Header names exactly as documented (case and underscores kept).
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]?

    public init(method: String, path: String, headers: [(name: String, value: String)], body: [UInt8]?) {
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body
    }

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.method == rhs.method && lhs.path == rhs.path && lhs.body == rhs.body
            && lhs.headers.map { [$0.name, $0.value] } == rhs.headers.map { [$0.name, $0.value] }
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(self.method)
        hasher.combine(self.path)
        hasher.combine(self.body)
        for header in self.headers {
            hasher.combine(header.name)
            hasher.combine(header.value)
        }
    }
}

/// A provider's answer as received.
public struct ProviderHTTPResponse: Sendable, Hashable {
    public var status: Int
    /// Header names lower-cased.
    public var headers: [String: String]
    public var body: [UInt8]

    public init(status: Int, headers: [String: String] = [:], body: [UInt8]) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// `Retry-After` in seconds (or an HTTP date), if present.
    public var retryAfter: Duration? {
        guard let value = self.headers["retry-after"]?.trimmingCharacters(in: .whitespaces) else { return nil }
        if let seconds = Double(value), seconds >= 0 { return .milliseconds(Int64(seconds * 1000)) }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        if let date = formatter.date(from: value) { return .milliseconds(Int64(max(0, date.timeIntervalSinceNow) * 1000)) }
        return nil
    }

    /// The body as a JSON object, if it is one.
    public var json: JSONObject? { JSONObject(bytes: self.body) }

    /// The body as text (for reasons), shortened.
    public var text: String { String(decoding: self.body.prefix(300), as: UTF8.self) }
}

/// What an adapter decides before any network traffic.
public enum PreparedCall: Sendable, Hashable {
    /// Send this request.
    case send(ProviderHTTPRequest)
    /// No request: the answer is known already (e.g. feee's 5-minute rule).
    case answer(ProviderCallResult)
}

/// The pure part of a provider adapter: build the documented request, classify the answer.
/// No I/O, so every rule is tested without a network; `HTTPCancelProvider` does the transport.
public protocol ProviderAPI: Sendable {
    var id: ProviderID { get }

    /// The request for `request`, signed with `credentials`.
    func prepare(_ request: CancelRequest, credentials: ProviderCredentials, settings: ProviderSettings, now: Date) -> PreparedCall

    /// What the answer means for the worker.
    func classify(_ response: ProviderHTTPResponse, for request: CancelRequest, now: Date) -> ProviderCallResult
}

extension ProviderAPI {
    /// The classification every adapter applies to HTTP statuses its body does not explain.
    func classifyStatus(_ response: ProviderHTTPResponse, code: String? = nil, message: String? = nil, orderStatus: String? = nil) -> ProviderCallResult? {
        let answer = ProviderAnswer(httpStatus: response.status, code: code, message: message, orderStatus: orderStatus)
        let detail = message.map { ": \($0)" } ?? ""
        switch response.status {
        case 401, 403:
            return ProviderCallResult(classification: .configuration, answer: answer, reason: "\(self.id) refused the credentials (HTTP \(response.status))\(detail)")
        case 429:
            return ProviderCallResult(classification: .retryLater(after: response.retryAfter, scope: .account), answer: answer, reason: "\(self.id) rate limit (HTTP 429)\(detail)")
        case 500...599:
            return ProviderCallResult(classification: .unknown, answer: answer, reason: "\(self.id) server error (HTTP \(response.status))\(detail)")
        default:
            return nil
        }
    }

    func result(_ classification: CancelClassification, _ response: ProviderHTTPResponse, code: String? = nil, message: String? = nil, orderStatus: String? = nil, reason: String) -> ProviderCallResult {
        ProviderCallResult(
            classification: classification,
            answer: ProviderAnswer(httpStatus: response.status, code: code, message: message, orderStatus: orderStatus),
            reason: reason
        )
    }

    /// An answer that none of the documented shapes explains.
    func unexpected(_ response: ProviderHTTPResponse) -> ProviderCallResult {
        let classification: CancelClassification = (200...299).contains(response.status) || response.status >= 500 ? .unknown : .rejected
        return self.result(classification, response, reason: "unexpected \(self.id) answer (HTTP \(response.status)): \(response.text)")
    }
}

/// Percent-encodes one path segment (RFC 3986 unreserved characters stay).
func pathSegment(_ value: String) -> String {
    var allowed = CharacterSet.alphanumerics
    allowed.insert(charactersIn: "-._~")
    return value.addingPercentEncoding(withAllowedCharacters: allowed) ?? value
}

/// Compact JSON of a string-keyed object, keys sorted (what we send and sign).
func compactJSON(_ object: [String: JSONValue]) -> [UInt8] {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return Array((try? encoder.encode(object)) ?? Data("{}".utf8))
}
