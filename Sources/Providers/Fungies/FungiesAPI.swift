public import CancelCore
public import Foundation

/// Fungies — `PATCH /v0/orders/{orderIdOrNumber}/cancel` with body `{}` and headers
/// `x-fngs-public-key`, `x-fngs-secret-key`, `Content-Type: application/json` (seed 001).
///
/// What the document says, and what the worker makes of it:
/// - Response (200): "status (string) required: … The allowed value is success, confirming that
///   the cancellation was applied", with `data.order.status` one of "PENDING, PAID, FAILED,
///   UNPAID, CANCELLED, REFUNDED, PARTIALLY_REFUNDED, EXPIRED". The order status is read from
///   `data.order.status` and nowhere else: `CANCELLED` → `cancelled`. Any other status in a
///   success answer contradicts "the cancellation was applied" and is `unknown` (no document
///   says what it means; retried, then dead-lettered with the answer).
/// - Response (400): `{"status": "error", "error": {"message": …}}` → `rejected`, whatever the
///   message says: an error envelope is never a success, and words in it ("Order cannot be
///   cancelled", "Validation failed") are not an order status.
///
/// From maintained clients (CONTRACTS.md), not the document: the error envelope may come with
/// HTTP 200 (→ `rejected`) or 422 (→ `rejected`); 404 with the envelope → `not_found`;
/// 401/403 → `configuration`; 429 → retry later (Retry-After); 5xx → `unknown`. Every other
/// answer (an HTML 404, a 3xx, an empty 200, another status with the envelope) follows the
/// shared rules of `undocumented` and is never terminal. What a second cancel of a cancelled
/// order returns is not documented: whatever it is, it is never read as `cancelled`.
public struct FungiesAPI: ProviderAPI {
    public let id = ProviderID.fungies

    public init() {}

    public func prepare(
        _ request: CancelRequest, credentials: ProviderCredentials, settings: ProviderSettings, now: Date
    ) -> PreparedCall {
        guard case .fungies(let reference) = request.order else {
            return .answer(
                ProviderCallResult(
                    classification: .rejected, answer: ProviderAnswer(), reason: "not a Fungies order reference"))
        }
        guard let secret = credentials.secret else {
            return .answer(
                ProviderCallResult(
                    classification: .configuration, answer: ProviderAnswer(),
                    reason: "Fungies needs the secret key for writes; none is configured for \(request.account)"))
        }
        return .send(
            ProviderHTTPRequest(
                method: "PATCH",
                path: "/v0/orders/\(pathSegment(reference))/cancel",
                headers: [
                    ("x-fngs-public-key", credentials.key.reveal()),
                    ("x-fngs-secret-key", secret.reveal()),
                    ("Content-Type", "application/json"),
                ],
                body: Array("{}".utf8)
            ))
    }

    public func classify(_ response: ProviderHTTPResponse, for request: CancelRequest, now: Date) -> ProviderCallResult
    {
        let json = response.json
        switch json?.string("status") {
        case "error":
            let message = json?.object("error")?.string("message")
            return self.classifyError(response, message: message)
        case "success" where response.status == 200:
            let orderStatus = json?.object("data")?.object("order")?.string("status")
            guard let orderStatus else { return self.undocumented(response) }
            if orderStatus == "CANCELLED" {
                return self.result(
                    .cancelled, response, orderStatus: orderStatus, reason: "Fungies cancelled the order")
            }
            return self.result(
                .unknown, response, orderStatus: orderStatus,
                reason:
                    "Fungies answered success, but the order is \(ProviderText.clean(orderStatus)), not CANCELLED; no document says what that means for a cancel"
            )
        default:
            return self.undocumented(response)
        }
    }

    /// The error envelope `{"status": "error", "error": {"message": …}}`: a refusal, by HTTP status.
    private func classifyError(_ response: ProviderHTTPResponse, message: String?) -> ProviderCallResult {
        let said = ProviderText.clean(message ?? "no message")
        switch response.status {
        case 200, 400, 422:
            return self.result(
                .rejected, response, message: message,
                reason: "Fungies refused the cancel (HTTP \(response.status)): \(said)")
        case 404:
            return self.result(
                .notFound, response, message: message, reason: "Fungies does not know the order: \(said)")
        default:
            return self.undocumented(response, message: message)
        }
    }
}
