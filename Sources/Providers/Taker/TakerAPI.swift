public import CancelCore
public import Foundation

/// Stove Protocol Taker API — `POST /api/v1/orders/cancel-result` with header `X-API-Key` and
/// the taker's decision `{order_hash, taker_address, cancellation_success, message}`.
///
/// `{"code": 0, "data": {"success": true}}` records the decision: with
/// `cancellation_success: true` the order is unlocked (cancelled), so the outcome is
/// `cancelled`; with `false` it stays locked and the taker completes the trade: `not_cancellable`.
/// Error envelopes `{code, message, details}` carry HTTP-like six-digit codes: 400xxx →
/// rejected (e.g. 400001 "Invalid parameter"), 401xxx/403xxx → configuration, 404xxx → not found,
/// 409xxx → already cancelled when the message says so, else not cancellable (the request is no
/// longer pending), 429xxx → retry later, 5xxxxx → unknown.
public struct TakerAPI: ProviderAPI {
    public static let path = "/api/v1/orders/cancel-result"
    public let id = ProviderID.taker

    public init() {}

    public func prepare(_ request: CancelRequest, credentials: ProviderCredentials, settings: ProviderSettings, now: Date) -> PreparedCall {
        guard case .taker(let orderHash, let takerAddress, let success, let message) = request.order else {
            return .answer(ProviderCallResult(classification: .rejected, answer: ProviderAnswer(), reason: "not a taker order reference"))
        }
        return .send(ProviderHTTPRequest(
            method: "POST",
            path: Self.path,
            headers: [("X-API-Key", credentials.key.reveal()), ("Content-Type", "application/json")],
            body: compactJSON([
                "order_hash": .string(orderHash), "taker_address": .string(takerAddress),
                "cancellation_success": .bool(success), "message": .string(message),
            ])
        ))
    }

    public func classify(_ response: ProviderHTTPResponse, for request: CancelRequest, now: Date) -> ProviderCallResult {
        let json = response.json
        let code = json?.text("code")
        let data = json?.object("data")
        let message = json?.string("message") ?? data?.string("message")
        if let early = self.classifyStatus(response, code: code, message: message) { return early }
        guard let code else { return self.unexpected(response) }
        func result(_ classification: CancelClassification, _ reason: String) -> ProviderCallResult {
            self.result(classification, response, code: code, message: message, reason: reason)
        }
        let reported: Bool
        if case .taker(_, _, let success, _) = request.order { reported = success } else { reported = true }
        if code == "0" {
            if data?.bool("success") == true {
                return reported
                    ? result(.cancelled, "the taker's cancellation was recorded; the order is unlocked")
                    : result(.notCancellable, "recorded that the taker refused the cancellation; the trade continues")
            }
            let text = message ?? ""
            if text.mentions("already") { return result(.alreadyCancelled, "taker API: \(text)") }
            if text.mentions("not found", "does not exist") { return result(.notFound, "taker API: \(text)") }
            return result(.notCancellable, "taker API did not record the result: \(text)")
        }
        let text = message ?? "error \(code)"
        switch code.prefix(3) {
        case "400", "422": return result(.rejected, "taker API refused the request: \(text)")
        case "401", "403": return result(.configuration, "taker API refused the API key: \(text)")
        case "404": return result(.notFound, "taker API: \(text)")
        case "409": return text.mentions("already cancel") ? result(.alreadyCancelled, "taker API: \(text)") : result(.notCancellable, "taker API: \(text)")
        case "429": return result(.retryLater(after: response.retryAfter, scope: .account), "taker API rate limit: \(text)")
        case "500", "502", "503", "504": return result(.unknown, "taker API server error: \(text)")
        default: return result(.rejected, "taker API error \(code): \(text)")
        }
    }
}
