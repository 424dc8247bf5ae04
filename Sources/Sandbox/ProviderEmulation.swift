import CancelCore
import Crypto
import Foundation

/// The five providers' rules, as their documents describe them (and CONTRACTS.md where they
/// are silent). Each function gets a decoded request and answers like the provider would.
///
/// Every answer is marked: `documented` quotes the provider's document (`seeds/00N_….txt`, or
/// CONTRACTS.md where it cites the provider's own documentation); `assumption` says what no
/// document settles, so a test that passes against the sandbox proves nothing about that answer
/// on the real provider. Misbehaviour real providers show beyond these answers (HTML pages, empty
/// bodies, envelopes with the wrong status, …) is `SandboxFault`'s job.
struct ProviderEmulation: Sendable {
    let state: SandboxState

    func answer(_ call: SandboxCall, now: Date) -> (reply: SandboxReply, account: String?, orderID: String?) {
        switch call.provider {
        case .feee: self.feee(call, now: now)
        case .fungies: self.fungies(call, now: now)
        case .taker: self.taker(call, now: now)
        case .fastpod: self.fastpod(call, now: now)
        case .futures: self.futures(call, now: now)
        }
    }

    /// Who is calling, from the provider's own auth header (before any other check).
    func identify(_ call: SandboxCall) -> (account: String?, orderID: String?) {
        switch call.provider {
        case .feee:
            return (self.state.account(for: call.headers["key"], provider: .feee), call.json?["order_no"] as? String)
        case .fungies:
            return (self.state.account(for: call.headers["x-fngs-public-key"], provider: .fungies), call.pathID)
        case .taker:
            return (
                self.state.account(for: call.headers["x-api-key"], provider: .taker),
                call.json?["order_hash"] as? String
            )
        case .fastpod:
            let token = call.headers["authorization"].flatMap {
                $0.hasPrefix("Bearer ") ? String($0.dropFirst(7)) : nil
            }
            return (self.state.account(for: token, provider: .fastpod), call.pathID)
        case .futures:
            return (self.state.account(for: call.headers["api_key"], provider: .futures), Self.futuresID(call))
        }
    }

    private func requestID() -> String { UUID().uuidString.lowercased() }

    /// Counts a request of `account` that arrived at `now` toward its rate, and tells whether it
    /// is over the provider's limit. The emulation counts what it answers; the sandbox counts a
    /// request an injected fault answers before it gets here.
    func overLimit(_ provider: ProviderID, _ account: String, now: Date) -> Bool {
        let limit =
            provider == .futures
            ? self.state.configuration.futuresLimitPerSecond : self.state.configuration.otherLimitsPerSecond[provider]
        return self.state.arrive(provider: provider, account: account, now: now, limit: limit)
    }

    /// HTTP 429 with `Retry-After: 1` and the provider's own body.
    ///
    /// assumption: only the futures exchange documents a limit (and answers it with HTTP 200, code
    /// 29001); these 429s serve `otherLimitsPerSecond`, which is off unless a test sets it.
    private static func limited(_ body: String) -> SandboxReply {
        SandboxReply(
            status: 429, body: body, headers: [("Content-Type", "application/json"), ("Retry-After", "1")],
            result: "rate_limited")
    }

    // MARK: feee.io

    private func feee(_ call: SandboxCall, now: Date) -> (SandboxReply, String?, String?) {
        let (account, orderNo) = self.identify(call)
        func body(_ code: Int, _ message: String, data: String = "null") -> String {
            #"{"code":\#(code),"msg":\#(quoted(message)),"request_id":"\#(self.requestID())","data":\#(data),"pagination":null}"#
        }
        // documented (seed 000, "Responses"): "code | integer | true", "msg | string | true", "request_id | string |
        // true", "data | BuyOrderDetail | false"; the example ends with "pagination": null.
        guard let account else {
            // assumption: no document says how a wrong `key` is answered (HTTP 401, code 401, this msg).
            return (.json(401, body(401, "invalid api key"), "auth_error"), nil, orderNo)
        }
        if self.overLimit(.feee, account, now: now) {
            // assumption: feee documents no rate limit; its answer to one is invented.
            return (Self.limited(body(429, "request too frequent, try again later")), account, orderNo)
        }
        guard let orderNo, !orderNo.isEmpty else {
            // documented (seed 000): "order_no | body | string | true"; assumption: HTTP 200, code 400, this msg.
            return (.json(200, body(400, "order_no is required"), "bad_request"), account, nil)
        }
        let reply = self.state.transition(.feee, orderNo) { order -> SandboxReply in
            // assumption: no document lists feee's error codes; 40004 "order not exist" is invented.
            guard var current = order else { return .json(200, body(40004, "order not exist"), "not_found") }
            switch current.status {
            case "cancelled":
                // assumption: no document says what a second cancel returns (40012 is invented).
                return .json(200, body(40012, "order has already been canceled"), "already_cancelled")
            case "completed":
                // documented (seed 000, TIP): "only supports canceling orders that have not been completed";
                // assumption: code 40011, and that feee.io answers with the TIP's own sentence (one
                // refusal for both halves of the rule, as its single documented rule suggests).
                return .json(
                    200,
                    body(
                        40011,
                        "This method only supports canceling orders that have not been completed after 5 minutes of creation."
                    ), "not_cancellable")
            default:
                if now.timeIntervalSince(current.createdAt) < 300 {
                    // documented (seed 000, TIP): "only supports canceling orders that have not been completed after
                    // 5 minutes of creation"; assumption: code 40010, its msg, and HTTP 200.
                    return .json(200, body(40010, "orders can only be canceled 5 minutes after creation"), "too_early")
                }
                // documented (seed 000, "Response example"): "code": 0, "msg": "ok", "data": {"order_no": …,
                // "pay_amount": 3.92, "refund_amount": 3.92, "refund_time": 1724319451, "status": 12,
                // "business_status": 4}; assumption: that status 12 / business_status 4 mean "cancelled"
                // (the example is the cancel's own answer, so the sandbox sends them).
                current.status = "cancelled"
                order = current
                let created = Int64(current.createdAt.timeIntervalSince1970)
                let data =
                    #"{"order_no":\#(quoted(orderNo)),"order_type":0,"resource_type":1,"create_time":\#(created),"pay_amount":3.92,"refund_amount":3.92,"refund_time":\#(Int64(now.timeIntervalSince1970)),"status":12,"business_status":4}"#
                return .json(200, body(0, "ok", data: data), "cancelled")
            }
        }
        return (reply, account, orderNo)
    }

    // MARK: Fungies

    private func fungies(_ call: SandboxCall, now: Date) -> (SandboxReply, String?, String?) {
        let (account, reference) = self.identify(call)
        func error(_ status: Int, _ message: String, _ result: String) -> SandboxReply {
            .json(status, #"{"status":"error","error":{"message":\#(quoted(message))}}"#, result)
        }
        // documented (seed 001, "Response (400) - Error"): "status (string) required: … error", "error.message
        // (string) required"; example {"status": "error", "error": {"message": "Sample error message"}}.
        // assumption: the same envelope for every other status below; error.message texts are invented.
        guard let account, let credentials = self.state.credentials(provider: .fungies, account: account) else {
            // documented (CONTRACTS.md, Fungies' docs): "401 missing/invalid key"; seed 001 only says "This endpoint
            // requires an API key for authentication".
            return (error(401, "Invalid API key", "auth_error"), nil, reference)
        }
        guard let secret = call.headers["x-fngs-secret-key"] else {
            // documented (seed 001): "Write access is required to use this endpoint."; (CONTRACTS.md, Fungies'
            // docs): "403 missing permission".
            return (
                error(403, "Missing permission: write access requires the secret key", "auth_error"), account, reference
            )
        }
        guard secret == credentials.secret?.reveal() else {
            // documented (CONTRACTS.md, Fungies' docs): "401 missing/invalid key".
            return (error(401, "Invalid API key", "auth_error"), account, reference)
        }
        if self.overLimit(.fungies, account, now: now) {
            // assumption: CONTRACTS.md has "429 with Retry-After" from client libraries only, not the document.
            return (Self.limited(#"{"status":"error","error":{"message":"Too many requests"}}"#), account, reference)
        }
        // documented (seed 001): "orderIdOrNumber (string) required"; "Response (400) - Error".
        guard let reference, !reference.isEmpty else {
            return (error(400, "orderIdOrNumber is required", "bad_request"), account, nil)
        }
        let reply = self.state.transition(.fungies, reference) { order -> SandboxReply in
            // assumption: CONTRACTS.md has 404 from client libraries only; the document lists 200 and 400.
            guard var current = order else { return error(404, "Order not found", "not_found") }
            switch current.status {
            case "CANCELLED":
                // assumption: "What a second cancel of a cancelled order returns is unconfirmed" (CONTRACTS.md).
                return error(400, "Order is already cancelled", "already_cancelled")
            case "REFUNDED", "PARTIALLY_REFUNDED", "EXPIRED", "FAILED":
                // assumption: no document says which statuses cannot be cancelled, nor the answer (400 here).
                // Real Fungies may send this envelope with HTTP 200 ("clients", CONTRACTS.md): see SandboxFault.raw.
                return error(400, "Order with status \(current.status) cannot be cancelled", "not_cancellable")
            default:
                // documented (seed 001, "Response (200) - Success"): "status (string) required … success",
                // "data.order (object) required" with id, number, status ("CANCELLED"), createdAt, userId,
                // orderNumber, and the example's object/value/tax/fee/totalItems/country/currency/user.
                current.status = "CANCELLED"
                order = current
                let number = current.number ?? current.id
                let body =
                    #"{"status":"success","data":{"order":{"object":"order","id":\#(quoted(current.id)),"number":\#(quoted(number)),"status":"CANCELLED","value":0,"tax":0,"fee":0,"totalItems":1,"country":null,"currency":null,"currencyDecimals":null,"createdAt":\#(Int64(current.createdAt.timeIntervalSince1970 * 1000)),"userId":"3c90c3cc-0d44-4b50-8888-8dd25736052a","user":null,"orderNumber":\#(quoted(number))}}}"#
                return .json(200, body, "cancelled")
            }
        }
        return (reply, account, reference)
    }

    // MARK: Taker API

    private func taker(_ call: SandboxCall, now: Date) -> (SandboxReply, String?, String?) {
        let (account, hash) = self.identify(call)
        func envelope(
            _ status: Int, _ code: Int, _ message: String, _ result: String, details: String = "null"
        ) -> SandboxReply {
            .json(status, #"{"code":\#(code),"message":\#(quoted(message)),"details":\#(details)}"#, result)
        }
        // assumption: 401 with code 401001 for a wrong X-API-Key; seed 002 only says "API Key credential
        // authentication".
        guard let account else { return (envelope(401, 401_001, "Invalid API key", "auth_error"), nil, hash) }
        if self.overLimit(.taker, account, now: now) {
            // assumption: no document gives the taker API a rate limit or its answer.
            return (Self.limited(#"{"code":429001,"message":"Too many requests","details":null}"#), account, hash)
        }
        let json = call.json ?? [:]
        // documented (seed 002): order_hash, taker_address, message "string Yes"; (CONTRACTS.md, Stove's docs):
        // error envelope {"code": <non-zero>, "message", "details"}, e.g. 400001 "Invalid parameter".
        // assumption: HTTP 400 with it, and these details texts.
        for field in ["order_hash", "taker_address", "message"]
        where !(json[field] is String) || (json[field] as? String)?.isEmpty == true {
            return (
                envelope(400, 400_001, "Invalid parameter", "bad_request", details: quoted("\(field) is required")),
                account, hash
            )
        }
        // documented (seed 002): "cancellation_success boolean Yes"; answered like the fields above.
        guard let success = json["cancellation_success"] as? Bool, let hash else {
            return (
                envelope(
                    400, 400_001, "Invalid parameter", "bad_request",
                    details: quoted("cancellation_success is required")), account, hash
            )
        }
        let reply = self.state.transition(.taker, hash) { order -> SandboxReply in
            // assumption: 404 / 404001 for an unknown hash; no document lists it.
            guard var current = order else { return envelope(404, 404_001, "Order not found", "not_found") }
            switch current.status {
            // assumption: no document says what a second result for the same order returns (409001 is invented).
            case "cancelled": return envelope(409, 409_001, "Order already cancelled", "already_cancelled")
            // assumption: nor what a result for an order that is not locked returns (409002 is invented).
            case "trading", "filled":
                return envelope(409, 409_002, "Order is not awaiting a cancellation result", "not_cancellable")
            // documented (seed 002): "Recommend responding promptly after receiving cancellation request to
            // avoid timeout"; (CONTRACTS.md) the request carries `metadata.expires_at`. assumption: a result
            // after it is refused, 409 / 409003 (invented), and the order stays as it was.
            case _ where current.expiresAt.map { now > $0 } == true:
                return envelope(409, 409_003, "Cancellation request expired", "request_expired")
            default:
                // documented (seed 002): "If cancellation succeeds (cancellation_success=true), the order will be
                // unlocked and updated to cancelled or expired status"; "If cancellation fails
                // (cancellation_success=false), the order remains locked, and Taker should continue to complete the
                // trade" (the sandbox calls that state "trading"). Answer, documented ("Response Example"):
                // {"code": 0, "data": {"success": true, "message": "Cancellation result recorded", "order_hash": …}}.
                current.status = success ? "cancelled" : "trading"
                order = current
                let body =
                    #"{"code":0,"data":{"success":true,"message":"Cancellation result recorded","order_hash":\#(quoted(hash))}}"#
                return .json(200, body, success ? "cancelled" : "refused_recorded")
            }
        }
        return (reply, account, hash)
    }

    // MARK: FastPOD

    private func fastpod(_ call: SandboxCall, now: Date) -> (SandboxReply, String?, String?) {
        let (account, orderID) = self.identify(call)
        func failure(_ status: Int, _ message: String, _ result: String) -> SandboxReply {
            .json(status, #"{"status":false,"message":\#(quoted(message))}"#, result)
        }
        // assumption: "401 bad token (unconfirmed)" (CONTRACTS.md); the body is Laravel's default.
        guard let account else { return (.json(401, #"{"message":"Unauthenticated."}"#, "auth_error"), nil, orderID) }
        if self.overLimit(.fastpod, account, now: now) {
            // assumption: no document gives FastPOD a rate limit; the body is Laravel's throttle message.
            return (Self.limited(#"{"message":"Too Many Attempts."}"#), account, orderID)
        }
        // documented (seed 003): "🟠422Parameter Error"; assumption: the body shape ("body shape unconfirmed",
        // CONTRACTS.md) {"status": false, "message": …}.
        guard let orderID, !orderID.isEmpty else {
            return (failure(422, "Parameter Error", "bad_request"), account, nil)
        }
        let reply = self.state.transition(.fastpod, orderID) { order -> SandboxReply in
            // assumption: 404 for an unknown id; the document lists only 200, 422 and 500.
            guard var current = order else { return failure(404, "Order not found.", "not_found") }
            switch current.status {
            // assumption: no document says what a second cancel returns (422 and this message are invented).
            case "cancelled": return failure(422, "Order is already cancelled.", "already_cancelled")
            // assumption: "in production or shipped cannot be cancelled (unconfirmed)" (CONTRACTS.md); 422 invented.
            case "in_production", "shipped":
                return failure(422, "Order in status \(current.status) cannot be cancelled.", "not_cancellable")
            // assumption: nor for a rejected order.
            case "rejected": return failure(422, "Order was rejected and cannot be cancelled.", "not_cancellable")
            default:
                // documented (seed 003, 200 "Example"): {"status": true, "message": "Order cancelled successfully.",
                // "data": {"id", "reference_id", "order_status": "cancelled", …, "cancelled_at", "shipments": []}}.
                current.status = "cancelled"
                order = current
                let stamp = Timestamp.format(now)
                let body =
                    #"{"status":true,"message":"Order cancelled successfully.","data":{"id":\#(quoted(current.id)),"order_type":"standard","reference_id":"ref-\#(current.id)","order_status":"cancelled","test_order":false,"item_total":14.4,"shipping_total":24,"order_total":38.4,"payment_status":"unpaid","created_at":"\#(Timestamp.format(current.createdAt))","updated_at":"\#(stamp)","rejected_at":null,"rejected_status":null,"cancelled_at":"\#(stamp)","shipments":[]}}"#
                return .json(200, body, "cancelled")
            }
        }
        return (reply, account, orderID)
    }

    // MARK: CoinW futures

    static func futuresID(_ call: SandboxCall) -> String? {
        if let json = call.json {
            if let id = json["id"] as? String { return id }
            if let id = json["id"] as? NSNumber { return id.stringValue }
        }
        for item in (call.query ?? "").split(separator: "&") where item.hasPrefix("id=") {
            return String(item.dropFirst(3)).removingPercentEncoding
        }
        return nil
    }

    private func futures(_ call: SandboxCall, now: Date) -> (SandboxReply, String?, String?) {
        let (account, id) = self.identify(call)
        func code(_ value: Int, _ message: String, _ result: String, key: String = "msg") -> SandboxReply {
            .json(200, #"{"code":\#(value),"\#(key)":\#(quoted(message))}"#, result)
        }
        // documented (CONTRACTS.md, CoinW's docs): "Answers arrive as HTTP 200 with a `code`".
        guard let account, let credentials = self.state.credentials(provider: .futures, account: account),
            let secret = credentials.secret
        else {
            // documented (CONTRACTS.md, CoinW's docs): "`6000` authentication"; assumption: the msg text.
            return (code(6000, "Authentication failed", "auth_error"), nil, id)
        }
        guard let timestamp = call.headers["timestamp"], let millis = Double(timestamp),
            abs(now.timeIntervalSince1970 - millis / 1000)
                <= self.state.configuration.futuresTimestampWindow.timeInterval
        else {
            // assumption: a stale or missing timestamp answered as 6001 (CONTRACTS.md: "`6001` invalid signature");
            // the window (`futuresTimestampWindow`) is invented too.
            return (code(6001, "Invalid signature: timestamp missing or out of window", "auth_error"), account, id)
        }
        // `call.path` is the path the request arrived on (with `pathPrefix`, if any): what CoinW signs.
        let expected = Self.sign(
            secret: secret.reveal(), timestamp: timestamp, path: call.path, query: call.query, body: call.body)
        guard call.headers["sign"] == expected else {
            // documented (CONTRACTS.md, CoinW's docs): "`6001` invalid signature".
            return (code(6001, "Invalid signature", "auth_error"), account, id)
        }
        if self.overLimit(.futures, account, now: now) {
            // documented (seed 004): "The frequency limit for this interface is 10 requests/s per user ID and IP";
            // (CONTRACTS.md, CoinW's docs): "`29001` "API access frequently"". assumption: the global limit is
            // not emulated.
            return (code(29001, "API access frequently", "rate_limited"), account, id)
        }
        // documented (CONTRACTS.md, CoinW's docs): "`402` param required"; assumption: the msg text.
        guard let id else { return (code(402, "param required: id", "bad_request"), account, nil) }
        // documented (seed 004): "id true Long Order ID"; (CONTRACTS.md) "`1` invalid parameter"; assumption: msg.
        guard Int64(id) != nil else { return (code(1, "invalid parameter: id", "bad_request"), account, id) }
        let reply = self.state.transition(.futures, id) { order -> SandboxReply in
            guard var current = order, current.status == "open" else {
                // documented (seed 004): "If the specified order ID does not exist, the following response will be
                // returned: {'code': 9012, 'msg': 'Position not found.'}". assumption: the same for an order that
                // is filled or already cancelled (the document only says such orders cannot be cancelled).
                return code(9012, "Position not found.", order == nil ? "not_found" : "not_open_\(order!.status)")
            }
            current.status = "cancelled"
            order = current
            // documented (seed 004, "Response Example"): "{'code': 0, 'msg': 'Success'}".
            return code(0, "Success", "cancelled")
        }
        return (reply, account, id)
    }

    static func sign(secret: String, timestamp: String, path: String, query: String?, body: [UInt8]) -> String {
        var message = Array((timestamp + "DELETE" + path).utf8)
        if let query, !query.isEmpty { message += Array(("?" + query).utf8) }
        message += body
        let mac = HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: Array(secret.utf8)))
        return Data(mac).base64EncodedString()
    }
}
