public import CancelCore
public import Foundation

/// CoinW perpetual futures — `DELETE /v1/perpum/order` with the order `id`, signed: headers
/// `api_key`, `timestamp` (epoch ms) and `sign`; the parameters travel as a compact JSON body
/// (`Content-Type: application/json`), which is what is signed. Keys are per user (seed 004 and
/// CONTRACTS.md).
///
/// The timestamp and signature are made in `finalize`, right before the bytes go out (after the
/// call waited for a connection permit), over the exact path sent: a base URL with a path
/// prefix (`https://gw.example/coinw`) signs `/coinw/v1/perpum/order`. A timestamp made earlier
/// goes stale while the call queues, and the exchange answers 6001.
///
/// Answers arrive as HTTP 200 with a `code`:
/// - documented (seed 004): `{'code': 0, 'msg': 'Success'}` → `cancelled`; "If the specified
///   order ID does not exist … {'code': 9012, 'msg': 'Position not found.'}" → `not_found`
///   (the exchange gives this one answer for any order that is not open: unknown, already
///   cancelled or filled); "10 requests/s per user ID and IP. In addition … a global rate limit"
///   → `29001` "API access frequently" and body `code: 429` → retry later (≥ 1 s). When several
///   accounts get it at once it is the global limit: `HTTPCancelProvider` then pauses the
///   whole provider.
/// - from the exchange's general documentation (CONTRACTS.md): 6000/6001/6003 →
///   `configuration` (key, signature, permission; 6003 uses `message`); 1/402 → `rejected`
///   (parameters); 500 in the body (usually a wrong URL) → `configuration`.
/// - any other code → `unknown` with the answer kept (retried, then dead-lettered). HTTP 429 →
///   retry later; other HTTP statuses and bodies without a code follow `undocumented`.
public struct FuturesAPI: ProviderAPI {
    public static let path = "/v1/perpum/order"
    public let id = ProviderID.futures
    /// The shortest wait after a rate-limit answer.
    public static let minimumBackoff: Duration = .seconds(1)

    public init() {}

    public func prepare(
        _ request: CancelRequest, credentials: ProviderCredentials, settings: ProviderSettings, now: Date
    ) -> PreparedCall {
        guard case .futures(let orderID) = request.order else {
            return .answer(
                ProviderCallResult(
                    classification: .rejected, answer: ProviderAnswer(), reason: "not a futures order reference"))
        }
        guard credentials.secret != nil else {
            return .answer(
                ProviderCallResult(
                    classification: .configuration, answer: ProviderAnswer(),
                    reason: "no signing secret configured for futures account \(request.account)"))
        }
        return .send(
            ProviderHTTPRequest(
                method: "DELETE",
                path: Self.path,
                headers: [("api_key", credentials.key.reveal()), ("Content-Type", "application/json")],
                body: compactJSON(["id": .string(orderID)])
            ))
    }

    /// Adds `timestamp` (now, epoch ms) and `sign` over `pathSent` and the body.
    public func finalize(
        _ call: ProviderHTTPRequest, pathSent: String, credentials: ProviderCredentials, now: Date
    ) -> ProviderHTTPRequest {
        guard let secret = credentials.secret else { return call }
        let timestamp = String(Int64((now.timeIntervalSince1970 * 1000).rounded(.down)))
        let signature = FuturesSigner.sign(
            secret: secret.reveal(), timestamp: timestamp, method: call.method, path: pathSent, body: call.body ?? [])
        var signed = call
        signed.headers =
            [("api_key", credentials.key.reveal()), ("timestamp", timestamp), ("sign", signature)]
            + call.headers.filter { !["api_key", "timestamp", "sign"].contains($0.name) }
        return signed
    }

    public func classify(_ response: ProviderHTTPResponse, for request: CancelRequest, now: Date) -> ProviderCallResult
    {
        let json = response.json
        // Compared as sent (`" 0"` is not the documented integer 0); cleaned only to be shown.
        let exactCode = json?.text("code")
        let code = exactCode.map(ProviderText.clean)
        let message = json?.string("msg") ?? json?.string("message")
        let said = ProviderText.clean(message ?? "no message")
        let backoff = max(response.retryAfter ?? Self.minimumBackoff, Self.minimumBackoff)
        if response.status == 429 {
            return self.result(
                .retryLater(after: backoff, scope: .account), response, code: code, message: message,
                reason: "the futures exchange is rate limiting (HTTP 429): \(said)")
        }
        guard response.status == 200, let code, let exactCode else {
            return self.undocumented(response, code: code, message: message)
        }
        func result(_ classification: CancelClassification, _ reason: String) -> ProviderCallResult {
            self.result(classification, response, code: code, message: message, reason: reason)
        }
        switch exactCode {
        case "0": return result(.cancelled, "the exchange cancelled the order")
        case "9012":
            return result(
                .notFound, "no open order with this id (\(said)); it may have been filled or cancelled already")
        case "29001", "429":
            return result(
                .retryLater(after: backoff, scope: .account), "the exchange is rate limiting (\(code)): \(said)")
        case "6000", "6001", "6003":
            return result(.configuration, "the exchange refused the credentials or signature (\(code)): \(said)")
        case "1", "402": return result(.rejected, "the exchange refused the parameters (\(code)): \(said)")
        case "500": return result(.configuration, "the exchange answered code 500 (usually a wrong URL): \(said)")
        default:
            return result(
                .unknown, "the exchange answered code \(code), which no document explains: \(said)")
        }
    }
}
