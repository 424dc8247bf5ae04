public import CancelCore
public import Foundation

/// CoinW perpetual futures — `DELETE /v1/perpum/order` with the order `id`, signed: headers
/// `api_key`, `timestamp` (epoch ms) and `sign`; the parameters travel as a compact JSON body
/// (`Content-Type: application/json`), which is what is signed. Keys are per user.
///
/// Answers arrive as HTTP 200 with a `code`: 0 → cancelled; 9012 "Position not found." → not
/// found (the exchange gives this one answer for an order that does not exist as an open order:
/// unknown, already cancelled or filled); 29001 "API access frequently" → retry later (≥ 1 s);
/// 6000/6001/6003 → configuration (bad key, signature, permission; 6003 uses `message`);
/// 1/402 → rejected; 500 in the body (usually a wrong URL) → configuration. HTTP 5xx, timeouts
/// and resets → unknown.
public struct FuturesAPI: ProviderAPI {
    public static let path = "/v1/perpum/order"
    public let id = ProviderID.futures

    public init() {}

    public func prepare(_ request: CancelRequest, credentials: ProviderCredentials, settings: ProviderSettings, now: Date) -> PreparedCall {
        guard case .futures(let orderID) = request.order else {
            return .answer(ProviderCallResult(classification: .rejected, answer: ProviderAnswer(), reason: "not a futures order reference"))
        }
        guard let secret = credentials.secret else {
            return .answer(ProviderCallResult(classification: .configuration, answer: ProviderAnswer(), reason: "no signing secret configured for futures account \(request.account)"))
        }
        let body = compactJSON(["id": .string(orderID)])
        let timestamp = String(Int64((now.timeIntervalSince1970 * 1000).rounded(.down)))
        let signature = FuturesSigner.sign(secret: secret.reveal(), timestamp: timestamp, method: "DELETE", path: Self.path, body: body)
        return .send(ProviderHTTPRequest(
            method: "DELETE",
            path: Self.path,
            headers: [
                ("api_key", credentials.key.reveal()),
                ("timestamp", timestamp),
                ("sign", signature),
                ("Content-Type", "application/json"),
            ],
            body: body
        ))
    }

    public func classify(_ response: ProviderHTTPResponse, for request: CancelRequest, now: Date) -> ProviderCallResult {
        let json = response.json
        let code = json?.text("code")
        let message = json?.string("msg") ?? json?.string("message")
        if response.status == 429 {
            return self.result(.retryLater(after: max(response.retryAfter ?? .seconds(1), .seconds(1)), scope: .account), response, code: code, message: message, reason: "the futures exchange is rate limiting (HTTP 429)")
        }
        if let early = self.classifyStatus(response, code: code, message: message) { return early }
        guard let code else { return self.unexpected(response) }
        func result(_ classification: CancelClassification, _ reason: String) -> ProviderCallResult {
            self.result(classification, response, code: code, message: message, reason: reason)
        }
        let text = message ?? ""
        switch code {
        case "0": return result(.cancelled, "the exchange cancelled the order")
        case "9012": return result(.notFound, "no open order with this id (\(text)); it may have been filled or cancelled already")
        case "29001": return result(.retryLater(after: .seconds(1), scope: .account), "the exchange is rate limiting: \(text)")
        case "6000", "6001", "6003": return result(.configuration, "the exchange refused the credentials or signature (\(code)): \(text)")
        case "1", "402": return result(.rejected, "the exchange refused the parameters (\(code)): \(text)")
        case "500": return result(.configuration, "the exchange answered code 500 (usually a wrong URL): \(text)")
        default: return result(.rejected, "the exchange answered code \(code): \(text)")
        }
    }
}
