public import CancelCore
public import Foundation

/// FastPOD — `POST /v1/orders/{id}/cancel`, `Authorization: Bearer`, `Accept: application/json`,
/// no body. `{id}` is FastPOD's own order id.
///
/// 200 `{"status": true, "data": {"order_status": "cancelled"}}` → cancelled. 422 ("Parameter
/// Error") → rejected, unless its message says the order is already cancelled (already
/// cancelled) or in production/shipped/rejected (not cancellable). 404 → not found, 401/403 →
/// configuration, 429 → retry later, 500 → unknown (retried).
public struct FastPodAPI: ProviderAPI {
    public let id = ProviderID.fastpod

    public init() {}

    public func prepare(_ request: CancelRequest, credentials: ProviderCredentials, settings: ProviderSettings, now: Date) -> PreparedCall {
        guard case .fastpod(let orderID) = request.order else {
            return .answer(ProviderCallResult(classification: .rejected, answer: ProviderAnswer(), reason: "not a FastPOD order reference"))
        }
        return .send(ProviderHTTPRequest(
            method: "POST",
            path: "/v1/orders/\(pathSegment(orderID))/cancel",
            headers: [("Authorization", "Bearer \(credentials.key.reveal())"), ("Accept", "application/json")],
            body: nil
        ))
    }

    public func classify(_ response: ProviderHTTPResponse, for request: CancelRequest, now: Date) -> ProviderCallResult {
        let json = response.json
        let message = json?.string("message")
        let orderStatus = json?.object("data")?.string("order_status")
        if let early = self.classifyStatus(response, message: message, orderStatus: orderStatus) { return early }
        func result(_ classification: CancelClassification, _ reason: String) -> ProviderCallResult {
            self.result(classification, response, message: message, orderStatus: orderStatus, reason: reason)
        }
        let text = message ?? response.text
        if response.status == 404 { return result(.notFound, "FastPOD: \(text)") }
        if response.status == 200, json?.bool("status") == true {
            if orderStatus == nil || orderStatus == "cancelled" { return result(.cancelled, "FastPOD cancelled the order") }
            return result(.unknown, "FastPOD answered success but the order is \(orderStatus!)")
        }
        if response.status == 422 || (response.status == 200 && json?.bool("status") == false) || response.status == 400 {
            if text.mentions("already cancel") { return result(.alreadyCancelled, "FastPOD: \(text)") }
            if text.mentions("production", "shipped", "rejected", "cannot be cancel", "can not be cancel") {
                return result(.notCancellable, "FastPOD: \(text)")
            }
            if text.mentions("not found", "does not exist") { return result(.notFound, "FastPOD: \(text)") }
            return result(.rejected, "FastPOD refused the request (HTTP \(response.status)): \(text)")
        }
        return self.unexpected(response)
    }
}
