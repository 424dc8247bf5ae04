public import CancelCore
public import Foundation

/// feee.io — `POST /open/v2/order/cancel` `{"order_no": …}` with header `key`.
///
/// HTTP 200 with `code: 0` is success; any other `code` is an error explained by `msg` (even
/// with HTTP 200). feee.io publishes no error codes, so after the HTTP status (401/403 →
/// configuration, 429 → retry later, 5xx → unknown) the `msg` decides: "5 minutes"/"too early"
/// → retry later, "completed" → not cancellable, "already cancel…" → already cancelled,
/// "not exist"/"not found" → not found, key/IP/permission → configuration, "frequent" → retry
/// later, anything else → rejected. Orders are cancellable only 5 minutes after creation: with
/// `order_created_at` in the command, an early cancel waits without calling.
public struct FeeeAPI: ProviderAPI {
    public static let documentedUserAgent = "Feee.io Client/1.0.0 (https://feee.io)"
    public static let path = "/open/v2/order/cancel"
    /// "only supports canceling orders that have not been completed after 5 minutes of creation"
    public static let minimumAge: TimeInterval = 300

    public let id = ProviderID.feee

    public init() {}

    public func prepare(_ request: CancelRequest, credentials: ProviderCredentials, settings: ProviderSettings, now: Date) -> PreparedCall {
        guard case .feee(let orderNo) = request.order else {
            return .answer(ProviderCallResult(classification: .rejected, answer: ProviderAnswer(), reason: "not a feee order reference"))
        }
        if let created = request.orderCreatedAt {
            let cancellableAt = created.addingTimeInterval(Self.minimumAge)
            if now < cancellableAt {
                let wait = cancellableAt.timeIntervalSince(now)
                return .answer(ProviderCallResult(
                    classification: .retryLater(after: .milliseconds(Int64((wait * 1000).rounded(.up))), scope: .account),
                    answer: ProviderAnswer(),
                    reason: "feee.io cancels orders only 5 minutes after creation; due at \(Timestamp.format(cancellableAt))"
                ))
            }
        }
        return .send(ProviderHTTPRequest(
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

    public func classify(_ response: ProviderHTTPResponse, for request: CancelRequest, now: Date) -> ProviderCallResult {
        let json = response.json
        let code = json?.text("code")
        let message = json?.string("msg")
        let data = json?.object("data")
        let orderStatus = data?.text("status")
        if let early = self.classifyStatus(response, code: code, message: message, orderStatus: orderStatus) { return early }
        guard let code else { return self.unexpected(response) }
        func result(_ classification: CancelClassification, _ reason: String) -> ProviderCallResult {
            self.result(classification, response, code: code, message: message, orderStatus: orderStatus, reason: reason)
        }
        if code == "0" {
            let refund = data?.text("refund_amount").map { ", refund \($0)" } ?? ""
            return result(.cancelled, "feee.io cancelled the order\(refund)")
        }
        let text = message ?? ""
        if text.mentions("5 minute", "five minute", "too early", "not yet", "300 second") {
            var after: Duration?
            if let created = request.orderCreatedAt {
                let wait = created.addingTimeInterval(Self.minimumAge).timeIntervalSince(now)
                after = .milliseconds(Int64((max(wait, 1) * 1000).rounded(.up)))
            }
            return result(.retryLater(after: after, scope: .account), "feee.io: too early to cancel: \(text)")
        }
        if text.mentions("already cancel", "already been cancel", "has been cancel", "canceled already", "cancelled already") {
            return result(.alreadyCancelled, "feee.io: \(text)")
        }
        if text.mentions("complete", "finished", "cannot be cancel", "can not be cancel", "not cancelable", "not cancellable") {
            return result(.notCancellable, "feee.io: \(text)")
        }
        if text.mentions("not exist", "not found", "no such order", "does not exist") {
            return result(.notFound, "feee.io: \(text)")
        }
        if text.mentions("key", "auth", "sign", "whitelist", "white list", " ip", "permission", "user-agent", "user agent") {
            return result(.configuration, "feee.io refused the request: \(text)")
        }
        if text.mentions("frequen", "too many", "rate limit", "try again later") {
            return result(.retryLater(after: response.retryAfter, scope: .account), "feee.io: \(text)")
        }
        return result(.rejected, "feee.io error \(code): \(text)")
    }
}
