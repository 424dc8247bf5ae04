public import CancelCore
public import Foundation

/// Fungies — `PATCH /v0/orders/{orderIdOrNumber}/cancel` with body `{}` and headers
/// `x-fngs-public-key`, `x-fngs-secret-key` (the secret key is required for writes).
///
/// The body's `status` decides, whatever the HTTP status (error bodies may arrive with 200).
/// After a successful call the order's status means: `CANCELLED` → cancelled;
/// `REFUNDED`, `EXPIRED`, `FAILED` → already cancelled (the order already ended without being
/// fulfilled: nothing is left to cancel, which upstream treats as success);
/// `PARTIALLY_REFUNDED` → not cancellable (part of it stands); `PENDING`, `PAID`, `UNPAID` →
/// unknown (the cancel did not take; retried). Errors: 401/403 → configuration, 404 → not found,
/// 429 → retry later (Retry-After), 5xx → unknown, 400/422 → rejected unless the message says the
/// order is already cancelled or names a final status.
public struct FungiesAPI: ProviderAPI {
    public let id = ProviderID.fungies

    public init() {}

    public func prepare(_ request: CancelRequest, credentials: ProviderCredentials, settings: ProviderSettings, now: Date) -> PreparedCall {
        guard case .fungies(let reference) = request.order else {
            return .answer(ProviderCallResult(classification: .rejected, answer: ProviderAnswer(), reason: "not a Fungies order reference"))
        }
        guard let secret = credentials.secret else {
            return .answer(ProviderCallResult(classification: .configuration, answer: ProviderAnswer(), reason: "Fungies needs the secret key for writes; none is configured for \(request.account)"))
        }
        return .send(ProviderHTTPRequest(
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

    /// What an order status reported by Fungies means for a cancel.
    static func classification(ofOrderStatus status: String) -> CancelClassification? {
        switch status.uppercased() {
        case "CANCELLED": .cancelled
        case "REFUNDED", "EXPIRED", "FAILED": .alreadyCancelled
        case "PARTIALLY_REFUNDED": .notCancellable
        case "PENDING", "PAID", "UNPAID": .unknown
        default: nil
        }
    }

    public func classify(_ response: ProviderHTTPResponse, for request: CancelRequest, now: Date) -> ProviderCallResult {
        guard let json = response.json, let status = json.string("status") else {
            return self.classifyStatus(response, message: response.text.isEmpty ? nil : response.text) ?? self.unexpected(response)
        }
        if status == "error" {
            let message = json.object("error")?.string("message") ?? "unspecified error"
            if let early = self.classifyStatus(response, message: message) { return early }
            func result(_ classification: CancelClassification, _ reason: String) -> ProviderCallResult {
                self.result(classification, response, message: message, reason: reason)
            }
            if response.status == 404 || message.mentions("not found", "does not exist", "no order") {
                return result(.notFound, "Fungies: \(message)")
            }
            if message.mentions("already cancel") {
                return result(.alreadyCancelled, "Fungies: \(message)")
            }
            for word in ["PARTIALLY_REFUNDED", "REFUNDED", "EXPIRED", "FAILED", "CANCELLED"] where message.uppercased().contains(word) {
                if let classification = Self.classification(ofOrderStatus: word), classification != .unknown {
                    return self.result(classification, response, message: message, orderStatus: word, reason: "Fungies: \(message)")
                }
            }
            return result(.rejected, "Fungies refused the cancel (HTTP \(response.status)): \(message)")
        }
        let order = json.object("data")?.object("order")
        let orderStatus = order?.string("status")
        if let early = self.classifyStatus(response, orderStatus: orderStatus) { return early }
        guard status == "success", let orderStatus, let classification = Self.classification(ofOrderStatus: orderStatus) else {
            return self.unexpected(response)
        }
        let reason = switch classification {
        case .cancelled: "Fungies cancelled the order"
        case .alreadyCancelled: "the order had already ended at Fungies (\(orderStatus))"
        case .notCancellable: "the order is \(orderStatus) at Fungies and cannot be cancelled"
        default: "the order is still \(orderStatus) at Fungies after the cancel call"
        }
        return self.result(classification, response, orderStatus: orderStatus, reason: reason)
    }
}
