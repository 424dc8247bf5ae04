public import CancelCore
public import Foundation

/// Stove Protocol Taker API — `POST /api/v1/orders/cancel-result` with headers `X-API-Key`,
/// `Content-Type: application/json` and the taker's decision `{order_hash, taker_address,
/// cancellation_success, message}` (seed 002).
///
/// What the document says, and what the worker makes of it:
/// - Response example `{"code": 0, "data": {"success": true, "message": "Cancellation result
///   recorded", "order_hash": …}}`: the decision is recorded. "If cancellation succeeds
///   (cancellation_success=true), the order will be unlocked and updated to cancelled or expired
///   status" → `cancelled`; "If cancellation fails (cancellation_success=false), the order
///   remains locked, and Taker should continue to complete the trade" → `not_cancellable`.
/// - `code: 0` without `data.success: true` ("success | boolean | Whether API call succeeded")
///   means the result was not recorded → `unknown` (retried).
/// - The public error envelope (CONTRACTS.md) `{"code": <non-zero>, "message", "details"}` with
///   its one example, `400001` "Invalid parameter" → `rejected`.
///
/// Assumptions (no code table is published): codes starting 401/403 → `configuration`,
/// 429 → retry later. Any other code is `unknown` with the body excerpt: retried, then
/// dead-lettered, never a terminal refusal. Answers without the envelope (an HTML 404 of a
/// wrong base URL, a 3xx, an empty 200) follow the shared rules of `undocumented`.
public struct TakerAPI: ProviderAPI {
    public static let path = "/api/v1/orders/cancel-result"
    public let id = ProviderID.taker

    public init() {}

    public func prepare(
        _ request: CancelRequest, credentials: ProviderCredentials, settings: ProviderSettings, now: Date
    ) -> PreparedCall {
        guard case .taker(let orderHash, let takerAddress, let success, let message) = request.order else {
            return .answer(
                ProviderCallResult(
                    classification: .rejected, answer: ProviderAnswer(), reason: "not a taker order reference"))
        }
        return .send(
            ProviderHTTPRequest(
                method: "POST",
                path: Self.path,
                headers: [("X-API-Key", credentials.key.reveal()), ("Content-Type", "application/json")],
                body: compactJSON([
                    "order_hash": .string(orderHash), "taker_address": .string(takerAddress),
                    "cancellation_success": .bool(success), "message": .string(message),
                ])
            ))
    }

    public func classify(_ response: ProviderHTTPResponse, for request: CancelRequest, now: Date) -> ProviderCallResult
    {
        let json = response.json
        let data = json?.object("data")
        let message = json?.string("message") ?? data?.string("message")
        // Compared as sent (`" 0"` is not the documented integer 0); cleaned only to be shown.
        guard let exactCode = json?.text("code") else {
            return self.undocumented(response, message: message)
        }
        let code = ProviderText.clean(exactCode)
        func result(_ classification: CancelClassification, _ reason: String) -> ProviderCallResult {
            self.result(classification, response, code: code, message: message, reason: reason)
        }
        let said = ProviderText.clean(message ?? "no message")
        if exactCode == "0" {
            guard response.status == 200, data?.bool("success") == true else {
                return result(
                    .unknown, "the taker API did not record the result (code 0 without data.success true): \(said)")
            }
            if case .taker(_, _, false, _) = request.order {
                return result(.notCancellable, "recorded that the taker refused the cancellation; the trade continues")
            }
            return result(.cancelled, "the taker's cancellation was recorded; the order is unlocked")
        }
        if exactCode == "400001" { return result(.rejected, "the taker API refused the request (400001): \(said)") }
        switch exactCode.prefix(3) {
        case "401", "403": return result(.configuration, "the taker API refused the API key (\(code)): \(said)")
        case "429":
            return result(
                .retryLater(after: response.retryAfter, scope: .account),
                "the taker API is rate limiting (\(code)): \(said)")
        default: break
        }
        if [401, 403, 429].contains(response.status) || (300...399).contains(response.status) {
            return self.undocumented(response, code: code, message: message)
        }
        return result(
            .unknown,
            "the taker API answered code \(code), which no document explains (HTTP \(response.status)): \(said)")
    }
}
