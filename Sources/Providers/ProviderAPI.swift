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

    /// `Retry-After` as a wait from now, parsed defensively: delay-seconds or an HTTP date
    /// (RFC 9110 §10.2.3). Values that are not a non-negative number or a date (`NaN`, `-5`,
    /// garbage) read as absent; huge ones (`inf`, `1e300`, a date in year 9999) are clamped to
    /// `RetryAfter.ceiling`. Never traps, whatever the provider sends. The adapter
    /// applies the configured `ProviderSettings.maxRetryAfter` on top.
    public var retryAfter: Duration? {
        self.headers["retry-after"].flatMap { RetryAfter.parse($0, now: Date()) }
    }

    /// The body as a JSON object, if it is one.
    public var json: JSONObject? { JSONObject(bytes: self.body) }

    /// The body as text (for reasons): at most 300 bytes, control characters as spaces.
    public var text: String { ProviderText.excerpt(self.body) }

    /// Whether the body is an HTML page (a web server's or proxy's answer, not the provider API's).
    public var isHTML: Bool {
        if self.headers["content-type"]?.lowercased().contains("text/html") == true { return true }
        let start = self.body.prefix(64).drop { $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }
        return start.first == UInt8(ascii: "<")
    }
}

/// Parsing of the `Retry-After` header.
public enum RetryAfter {
    /// The longest wait the parser returns (one day): a bound that keeps every later
    /// computation (milliseconds in an `Int64`, instants on a clock) far from overflow.
    public static let ceiling: Duration = .seconds(86_400)

    /// The wait `value` asks for, measured from `now`; nil when it is not a usable value.
    public static func parse(_ value: String, now: Date) -> Duration? {
        let trimmed = value.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty, trimmed.count <= 64 else { return nil }
        if let seconds = Double(trimmed) {
            return self.duration(seconds: seconds)
        }
        for format in ["EEE, dd MMM yyyy HH:mm:ss zzz", "EEEE, dd-MMM-yy HH:mm:ss zzz", "EEE MMM d HH:mm:ss yyyy"] {
            let formatter = DateFormatter()
            formatter.locale = Locale(identifier: "en_US_POSIX")
            formatter.timeZone = TimeZone(identifier: "GMT")
            formatter.dateFormat = format
            if let date = formatter.date(from: trimmed) {
                return self.duration(seconds: max(0, date.timeIntervalSince(now)))
            }
        }
        return nil
    }

    /// A finite, non-negative number of seconds as a `Duration`, clamped to `ceiling`.
    static func duration(seconds: Double) -> Duration? {
        guard seconds.isFinite || seconds == .infinity, seconds >= 0 else { return nil }
        let limit = Double(self.ceiling.components.seconds)
        guard seconds < limit else { return self.ceiling }
        return .milliseconds(Int64((seconds * 1000).rounded(.up)))
    }
}

/// Provider text as it may appear in reasons, outcomes and dead letters.
public enum ProviderText {
    /// At most this many characters of a provider's message are kept.
    public static let maxMessageLength = 300

    /// `bytes` as text for an operator: the title of an HTML page, else the first bytes with
    /// control characters (line breaks included, so nothing looks like a header) as spaces.
    public static func excerpt(_ bytes: [UInt8]) -> String {
        let text = String(decoding: bytes.prefix(4_096), as: UTF8.self)
        if let open = text.range(of: "<title>", options: .caseInsensitive),
            let close = text.range(of: "</title>", options: .caseInsensitive, range: open.upperBound..<text.endIndex)
        {
            return "an HTML page titled \"\(self.clean(String(text[open.upperBound..<close.lowerBound])))\""
        }
        return self.clean(String(decoding: bytes.prefix(self.maxMessageLength), as: UTF8.self))
    }

    /// Control characters as spaces, runs of spaces as one, at most `maxMessageLength` characters.
    public static func clean(_ text: String) -> String {
        if Self.isClean(text.utf8) { return text }
        var result = ""
        result.reserveCapacity(min(text.utf8.count, self.maxMessageLength))
        var lastWasSpace = false
        // Characters never outnumber scalars: the result's character count (a walk over the
        // whole string) is needed only once it holds `maxMessageLength` scalars.
        var scalars = 0
        for scalar in text.unicodeScalars {
            if Self.isSpace(scalar) {
                if !lastWasSpace && !result.isEmpty {
                    result.unicodeScalars.append(" ")
                    scalars += 1
                }
                lastWasSpace = true
            } else {
                result.unicodeScalars.append(scalar)
                scalars += 1
                lastWasSpace = false
            }
            if scalars >= self.maxMessageLength && result.count >= self.maxMessageLength { return result + "…" }
        }
        return lastWasSpace && result.hasSuffix(" ") ? String(result.dropLast()) : result
    }

    /// Printable ASCII, single spaces between words, short enough: what providers send almost
    /// always, returned as it is without a copy.
    private static func isClean(_ bytes: String.UTF8View) -> Bool {
        guard bytes.count <= self.maxMessageLength else { return false }
        var previous: UInt8 = 0x20
        for byte in bytes {
            guard byte > 0x20 && byte < 0x7F || byte == 0x20 && previous != 0x20 else { return false }
            previous = byte
        }
        return previous != 0x20 || bytes.isEmpty
    }

    /// A control character or white space. ASCII is decided without Unicode's property tables
    /// (issue 14: they were most of the cost of cleaning a provider's message).
    private static func isSpace(_ scalar: Unicode.Scalar) -> Bool {
        if scalar.isASCII { return scalar.value < 0x21 || scalar.value == 0x7F }
        return scalar.properties.generalCategory == .control || scalar.properties.isWhitespace
    }
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
    func prepare(
        _ request: CancelRequest, credentials: ProviderCredentials, settings: ProviderSettings, now: Date
    ) -> PreparedCall

    /// What the answer means for the worker.
    func classify(_ response: ProviderHTTPResponse, for request: CancelRequest, now: Date) -> ProviderCallResult

    /// The last step before the bytes go out, after the call got its connection permit: e.g. a
    /// timestamp and a signature over `pathSent`, the exact path on the wire (a path prefix of
    /// the base URL included). The default returns `call` unchanged.
    func finalize(
        _ call: ProviderHTTPRequest, pathSent: String, credentials: ProviderCredentials, now: Date
    ) -> ProviderHTTPRequest

    /// See `CancelProvider.notBefore`. The default: nil.
    func notBefore(_ request: CancelRequest) -> Date?
}

extension ProviderAPI {
    public func finalize(
        _ call: ProviderHTTPRequest, pathSent: String, credentials: ProviderCredentials, now: Date
    ) -> ProviderHTTPRequest {
        call
    }

    public func notBefore(_ request: CancelRequest) -> Date? { nil }

    func result(
        _ classification: CancelClassification, _ response: ProviderHTTPResponse, code: String? = nil,
        message: String? = nil,
        orderStatus: String? = nil, reason: String
    ) -> ProviderCallResult {
        ProviderCallResult(
            classification: classification,
            answer: ProviderAnswer(
                httpStatus: response.status, code: code.map(ProviderText.clean),
                message: message.map(ProviderText.clean),
                orderStatus: orderStatus.map(ProviderText.clean)
            ),
            reason: reason
        )
    }

    /// An answer outside the provider's document. Nothing here is terminal, because nothing
    /// here says what happened to the order:
    /// - 401/403 → `configuration` (credentials or permissions; fix and replay);
    /// - 429 → `retryLater` for the account (Retry-After honoured); 408, 425 → `unknown` (retry);
    /// - 5xx → `unknown` (retry), or `retryLater` for the whole provider when it says when;
    /// - 3xx → `configuration`: redirects are never followed (a cancel must not be sent to an
    ///   address nobody configured); the base URL is probably wrong;
    /// - any other 4xx (an HTML 404 or 405 of a wrong base URL or method) → `configuration`;
    /// - 2xx without the documented body (empty, HTML, other JSON) → `unknown`: the provider took
    ///   the call, but its answer does not say whether the order is cancelled;
    /// - anything else → `unknown`.
    func undocumented(
        _ response: ProviderHTTPResponse, code: String? = nil, message: String? = nil, orderStatus: String? = nil
    ) -> ProviderCallResult {
        let status = response.status
        let said =
            message.map { ProviderText.clean($0) }
            ?? (response.body.isEmpty ? "an empty body" : ProviderText.excerpt(response.body))
        let classification: CancelClassification
        let reason: String
        switch status {
        case 401, 403:
            classification = .configuration
            reason = "\(self.id) refused the credentials or permissions (HTTP \(status)): \(said)"
        case 429:
            classification = .retryLater(after: response.retryAfter, scope: .account)
            reason = "\(self.id) is rate limiting this account (HTTP 429): \(said)"
        case 408, 425:
            classification = .unknown
            reason = "\(self.id) asked for the call again (HTTP \(status)): \(said)"
        case 500...599:
            if let after = response.retryAfter {
                classification = .retryLater(after: after, scope: .provider)
                reason = "\(self.id) is unavailable (HTTP \(status)) and asked to retry later: \(said)"
            } else {
                classification = .unknown
                reason = "\(self.id) server error (HTTP \(status)); the cancel may or may not have happened: \(said)"
            }
        case 300...399:
            classification = .configuration
            let location = response.headers["location"].map { " to \(ProviderText.clean($0))" } ?? ""
            reason =
                "\(self.id) redirected the call\(location) (HTTP \(status)); redirects are not followed: check base-url"
        case 400...499:
            classification = .configuration
            reason =
                "\(self.id) answered HTTP \(status) outside its documented answers (wrong base-url or method?): \(said)"
        case 200...299:
            classification = .unknown
            reason =
                "\(self.id) answered HTTP \(status) without its documented body; the cancel may or may not have happened: \(said)"
        default:
            classification = .unknown
            reason = "\(self.id) answered HTTP \(status), which no document explains: \(said)"
        }
        return self.result(
            classification, response, code: code, message: message, orderStatus: orderStatus, reason: reason)
    }
}

/// Percent-encodes one path segment: every UTF-8 byte outside RFC 3986's unreserved set
/// (ASCII letters, digits, `-._~`) becomes `%XX`. Byte by byte, without Foundation's
/// `CharacterSet` (~0.5 % of the worker's CPU per call; issue 14), whose `alphanumerics` would
/// also have let non-ASCII letters through unencoded.
func pathSegment(_ value: String) -> String {
    let hex = pathSegmentHexDigits
    var encoded: [UInt8] = []
    encoded.reserveCapacity(value.utf8.count)
    for byte in value.utf8 {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
            UInt8(ascii: "~"):
            encoded.append(byte)
        default:
            encoded += [UInt8(ascii: "%"), hex[Int(byte >> 4)], hex[Int(byte & 0x0F)]]
        }
    }
    return String(decoding: encoded, as: UTF8.self)
}

/// `%XX` digits, upper case as RFC 3986 recommends; made once, not per request.
private let pathSegmentHexDigits: [UInt8] = Array("0123456789ABCDEF".utf8)

/// Compact JSON of a string-keyed object, keys sorted (what we send and sign): `JSONWriter`,
/// byte for byte what `JSONEncoder` with `[.sortedKeys, .withoutEscapingSlashes]` writes.
func compactJSON(_ object: [String: JSONValue]) -> [UInt8] {
    var writer = JSONWriter(capacity: 128)
    writer.write(object)
    return writer.bytes
}
