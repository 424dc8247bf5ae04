public import CancelCore
public import Foundation

/// FastPOD — `POST /v1/orders/{id}/cancel`, `Authorization: Bearer`, `Accept: application/json`,
/// no body (seed 003). `{id}` is FastPOD's own order id.
///
/// What the document says, and what the worker makes of it: it documents three answers.
/// - "200 Success": `{"status": true, "message": "Order cancelled successfully.", "data": {…,
///   "order_status": "cancelled", "cancelled_at": …}}` → `cancelled`. A 200 with another
///   `order_status`, without `status: true`, or without that body → `unknown`.
/// - "422 Parameter Error" → `rejected`, whatever words its message contains (the body's shape
///   is not documented; the message is kept).
/// - "500 Server Error" → `unknown` (retried).
///
/// Not documented: a 404, whatever its body. FastPOD's framework and the gateways in front of it
/// answer an unknown route with a JSON 404 too (`{"message": "The route … could not be found."}`),
/// so "this order does not exist" and "a wrong base URL" cannot be told apart: `configuration`
/// (dead-lettered with a `failed` outcome, replayable once checked), never `not_found`, which
/// callers take as "nothing to cancel". Everything else follows the shared rules of
/// `undocumented` (401/403 → configuration, 429 → retry later, other 5xx → unknown, 3xx and
/// other 4xx → configuration): never terminal.
public struct FastPodAPI: ProviderAPI {
    public let id = ProviderID.fastpod

    public init() {}

    public func prepare(
        _ request: CancelRequest, credentials: ProviderCredentials, settings: ProviderSettings, now: Date
    ) -> PreparedCall {
        guard case .fastpod(let orderID) = request.order else {
            return .answer(
                ProviderCallResult(
                    classification: .rejected, answer: ProviderAnswer(), reason: "not a FastPOD order reference"))
        }
        return .send(
            ProviderHTTPRequest(
                method: "POST",
                path: "/v1/orders/\(pathSegment(orderID))/cancel",
                headers: [("Authorization", "Bearer \(credentials.key.reveal())"), ("Accept", "application/json")],
                body: nil
            ))
    }

    public func classify(_ response: ProviderHTTPResponse, for request: CancelRequest, now: Date) -> ProviderCallResult
    {
        let json = response.json
        let message = json?.string("message")
        let orderStatus = json?.object("data")?.string("order_status")
        func result(_ classification: CancelClassification, _ reason: String) -> ProviderCallResult {
            self.result(classification, response, message: message, orderStatus: orderStatus, reason: reason)
        }
        let said = ProviderText.clean(message ?? "no message")
        switch response.status {
        case 200 where json?.bool("status") == true && orderStatus != nil:
            if orderStatus == "cancelled" { return result(.cancelled, "FastPOD cancelled the order") }
            return result(
                .unknown, "FastPOD answered success, but the order is \(ProviderText.clean(orderStatus ?? ""))")
        case 422:
            return result(
                .rejected,
                "FastPOD refused the cancel (HTTP 422 Parameter Error): \(json == nil ? ProviderText.excerpt(response.body) : said)"
            )
        case 404:
            return result(
                .configuration,
                "FastPOD answered HTTP 404, which its document does not list: the order id is unknown to FastPOD, or the base URL is wrong: \(json == nil ? ProviderText.excerpt(response.body) : said)"
            )
        default:
            return self.undocumented(response, message: message, orderStatus: orderStatus)
        }
    }
}
