public import CancelCore
public import Foundation

/// feee.io — `POST /open/v2/order/cancel` `{"order_no": …}` with headers `key`, `User-Agent`,
/// `Content-Type: application/json` (seed 000, "Code demo").
///
/// What the document says, and what the worker makes of it:
/// - "code | integer | true", "msg | string | true", and the example `{"code": 0, "msg": "ok",
///   …, "data": {…, "status": 12, "business_status": 4}}` → `code: 0` is the cancel: `cancelled`.
/// - "This method only supports canceling orders that have not been completed after 5 minutes
///   of creation." With `order_created_at` in the command, a cancel before creation + 5 min is
///   not sent: the order waits alone (`ThrottleScope.order`) until it is due. An answer that
///   cites the rule for an order known to be older than 5 minutes (and a minute's grace for
///   the two clocks, `clockGrace`) means it was completed: `not_cancellable`.
///
/// Assumptions (feee.io publishes no error codes or messages): the wording of its refusals.
/// Only answers that lead to a safe class are read from `msg`: the 5-minute rule (wait),
/// key/whitelist/permission (configuration), "too frequent" (retry later). Every other non-zero
/// `code` is `unknown`, with `code` and `msg` kept: retried, then dead-lettered — never a
/// terminal outcome the document does not give. HTTP statuses other than 200 follow the shared
/// rules of `undocumented` (401/403 → configuration, 429 → retry later, 5xx → unknown).
public struct FeeeAPI: ProviderAPI {
    public static let documentedUserAgent = "Feee.io Client/1.0.0 (https://feee.io)"
    public static let path = "/open/v2/order/cancel"
    /// "only supports canceling orders that have not been completed after 5 minutes of creation"
    public static let minimumAge: TimeInterval = 300
    /// How long an order whose creation time the command does not carry waits after an answer
    /// that cites the 5-minute rule (it is cancellable within 5 minutes at the latest).
    public static let unknownAgeWait: Duration = .seconds(60)
    /// How long after creation + 5 minutes an answer citing the rule still reads as "too early"
    /// (feee.io's clock or `create_time` behind the command's `order_created_at`), not as a
    /// completed order. Assumption: clocks within a minute of each other.
    public static let clockGrace: Duration = .seconds(60)
    /// The retry of an order refused under the rule at or after its due time, within the grace.
    public static let graceRetry: Duration = .seconds(15)

    public let id = ProviderID.feee

    public init() {}

    /// When feee.io first accepts a cancel of this order (nil: now, or unknown).
    public static func cancellableAt(_ request: CancelRequest) -> Date? {
        request.orderCreatedAt.map { $0.addingTimeInterval(Self.minimumAge) }
    }

    public func notBefore(_ request: CancelRequest) -> Date? { Self.cancellableAt(request) }

    public func prepare(
        _ request: CancelRequest, credentials: ProviderCredentials, settings: ProviderSettings, now: Date
    ) -> PreparedCall {
        guard case .feee(let orderNo) = request.order else {
            return .answer(
                ProviderCallResult(
                    classification: .rejected, answer: ProviderAnswer(), reason: "not a feee order reference"))
        }
        if let cancellableAt = Self.cancellableAt(request), now < cancellableAt {
            return .answer(
                ProviderCallResult(
                    classification: .retryLater(
                        after: RetryAfter.duration(seconds: cancellableAt.timeIntervalSince(now)), scope: .order),
                    answer: ProviderAnswer(),
                    reason:
                        "feee.io cancels orders only 5 minutes after creation; due at \(Timestamp.format(cancellableAt))"
                ))
        }
        return .send(
            ProviderHTTPRequest(
                method: "POST",
                path: Self.path,
                headers: [
                    ("key", credentials.key.reveal()),
                    ("User-Agent", settings.userAgent ?? Self.documentedUserAgent),
                    ("Content-Type", "application/json"),
                ],
                body: compactJSON(["order_no": .string(orderNo)])
            ))
    }

    public func classify(_ response: ProviderHTTPResponse, for request: CancelRequest, now: Date) -> ProviderCallResult
    {
        let json = response.json
        // Compared as sent (`" 0"` is not the documented integer 0); cleaned only to be shown.
        let exactCode = json?.text("code")
        let code = exactCode.map(ProviderText.clean)
        let message = json?.string("msg")
        let orderStatus = json?.object("data")?.text("status")
        // Documented: HTTP 200 with the {code, msg, …} envelope. Anything else: the shared rules.
        guard response.status == 200, let code, message != nil || exactCode == "0" else {
            return self.undocumented(response, code: code, message: message, orderStatus: orderStatus)
        }
        func result(_ classification: CancelClassification, _ reason: String) -> ProviderCallResult {
            self.result(
                classification, response, code: code, message: message, orderStatus: orderStatus, reason: reason)
        }
        if exactCode == "0" {
            let refund = json?.object("data")?.text("refund_amount").map { ", refund \(ProviderText.clean($0))" } ?? ""
            return result(.cancelled, "feee.io cancelled the order\(refund)")
        }
        let text = ProviderText.clean(message ?? "")
        // Configuration and rate limiting first: their wording may mention a wait too ("api key
        // not yet activated", "too many requests, try again in 5 minutes").
        if text.mentions(
            "api key", "apikey", "auth", "whitelist", "white list", " ip ", "ip address", "permission", "user-agent",
            "user agent", "forbidden")
        {
            return result(.configuration, "feee.io refused the request (code \(code)): \(text)")
        }
        if text.mentions("frequen", "too many", "rate limit") {
            return result(
                .retryLater(after: response.retryAfter, scope: .account),
                "feee.io is rate limiting (code \(code)): \(text)")
        }
        // Assumption: the wording. The rule itself is documented (see the type's comment).
        if text.mentions("5 minute", "five minute", "5 min", "300 second", "too early", "not yet") {
            guard let cancellableAt = Self.cancellableAt(request) else {
                return result(
                    .retryLater(after: Self.unknownAgeWait, scope: .order),
                    "feee.io: \(text) (the command has no order_created_at; this order waits alone)")
            }
            // feee.io's clock, or its create_time, may be a little behind the command's
            // order_created_at: within the grace the refusal is "too early" still.
            if now >= cancellableAt.addingTimeInterval(Self.clockGrace.timeInterval) {
                return result(
                    .notCancellable,
                    "feee.io refused an order older than 5 minutes, which its document says is a completed order: \(text)"
                )
            }
            let wait = now < cancellableAt ? cancellableAt.timeIntervalSince(now) : Self.graceRetry.timeInterval
            return result(
                .retryLater(after: RetryAfter.duration(seconds: max(wait, 1)), scope: .order),
                "feee.io: \(text); due at \(Timestamp.format(cancellableAt))")
        }
        return result(
            .unknown,
            "feee.io error code \(code): \(text) (feee.io publishes no error codes; retried, then dead-lettered)")
    }
}
