import CancelCore
import Crypto
import Foundation

/// The five providers' rules, as their documents describe them (and CONTRACTS.md where they
/// are silent). Each function gets a decoded request and answers like the provider would.
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
            return (self.state.account(for: call.headers["x-api-key"], provider: .taker), call.json?["order_hash"] as? String)
        case .fastpod:
            let token = call.headers["authorization"].flatMap { $0.hasPrefix("Bearer ") ? String($0.dropFirst(7)) : nil }
            return (self.state.account(for: token, provider: .fastpod), call.pathID)
        case .futures:
            return (self.state.account(for: call.headers["api_key"], provider: .futures), Self.futuresID(call))
        }
    }

    private func requestID() -> String { UUID().uuidString.lowercased() }

    private func overLimit(_ provider: ProviderID, _ account: String, now: Date) -> Bool {
        let limit = provider == .futures ? self.state.configuration.futuresLimitPerSecond : self.state.configuration.otherLimitsPerSecond[provider]
        return self.state.arrive(provider: provider, account: account, now: now, limit: limit)
    }

    /// HTTP 429 with `Retry-After: 1` and the provider's own body.
    private static func limited(_ body: String) -> SandboxReply {
        SandboxReply(status: 429, body: body, headers: [("Content-Type", "application/json"), ("Retry-After", "1")], result: "rate_limited")
    }

    // MARK: feee.io

    private func feee(_ call: SandboxCall, now: Date) -> (SandboxReply, String?, String?) {
        let (account, orderNo) = self.identify(call)
        func body(_ code: Int, _ message: String, data: String = "null") -> String {
            #"{"code":\#(code),"msg":\#(quoted(message)),"request_id":"\#(self.requestID())","data":\#(data),"pagination":null}"#
        }
        guard let account else {
            return (.json(401, body(401, "invalid api key"), "auth_error"), nil, orderNo)
        }
        if self.overLimit(.feee, account, now: now) {
            return (Self.limited(body(429, "request too frequent, try again later")), account, orderNo)
        }
        guard let orderNo, !orderNo.isEmpty else {
            return (.json(200, body(400, "order_no is required"), "bad_request"), account, nil)
        }
        let reply = self.state.transition(.feee, orderNo) { order -> SandboxReply in
            guard var current = order else { return .json(200, body(40004, "order not exist"), "not_found") }
            switch current.status {
            case "cancelled":
                return .json(200, body(40012, "order has already been canceled"), "already_cancelled")
            case "completed":
                return .json(200, body(40011, "order has been completed and cannot be canceled"), "not_cancellable")
            default:
                if now.timeIntervalSince(current.createdAt) < 300 {
                    return .json(200, body(40010, "orders can only be canceled 5 minutes after creation"), "too_early")
                }
                current.status = "cancelled"
                order = current
                let created = Int64(current.createdAt.timeIntervalSince1970)
                let data = #"{"order_no":\#(quoted(orderNo)),"order_type":0,"resource_type":1,"create_time":\#(created),"pay_amount":3.92,"refund_amount":3.92,"refund_time":\#(Int64(now.timeIntervalSince1970)),"status":12,"business_status":4}"#
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
        guard let account, let credentials = self.state.credentials(provider: .fungies, account: account) else {
            return (error(401, "Invalid API key", "auth_error"), nil, reference)
        }
        guard let secret = call.headers["x-fngs-secret-key"] else {
            return (error(403, "Missing permission: write access requires the secret key", "auth_error"), account, reference)
        }
        guard secret == credentials.secret?.reveal() else {
            return (error(401, "Invalid API key", "auth_error"), account, reference)
        }
        if self.overLimit(.fungies, account, now: now) {
            return (Self.limited(#"{"status":"error","error":{"message":"Too many requests"}}"#), account, reference)
        }
        guard let reference, !reference.isEmpty else { return (error(400, "orderIdOrNumber is required", "bad_request"), account, nil) }
        let reply = self.state.transition(.fungies, reference) { order -> SandboxReply in
            guard var current = order else { return error(404, "Order not found", "not_found") }
            switch current.status {
            case "CANCELLED":
                return error(400, "Order is already cancelled", "already_cancelled")
            case "REFUNDED", "PARTIALLY_REFUNDED", "EXPIRED", "FAILED":
                return error(400, "Order with status \(current.status) cannot be cancelled", "not_cancellable")
            default:
                current.status = "CANCELLED"
                order = current
                let number = current.number ?? current.id
                let body = #"{"status":"success","data":{"order":{"object":"order","id":\#(quoted(current.id)),"number":\#(quoted(number)),"status":"CANCELLED","value":0,"tax":0,"fee":0,"totalItems":1,"country":null,"currency":null,"currencyDecimals":null,"createdAt":\#(Int64(current.createdAt.timeIntervalSince1970 * 1000)),"userId":"3c90c3cc-0d44-4b50-8888-8dd25736052a","user":null,"orderNumber":\#(quoted(number))}}}"#
                return .json(200, body, "cancelled")
            }
        }
        return (reply, account, reference)
    }

    // MARK: Taker API

    private func taker(_ call: SandboxCall, now: Date) -> (SandboxReply, String?, String?) {
        let (account, hash) = self.identify(call)
        func envelope(_ status: Int, _ code: Int, _ message: String, _ result: String, details: String = "null") -> SandboxReply {
            .json(status, #"{"code":\#(code),"message":\#(quoted(message)),"details":\#(details)}"#, result)
        }
        guard let account else { return (envelope(401, 401_001, "Invalid API key", "auth_error"), nil, hash) }
        if self.overLimit(.taker, account, now: now) {
            return (Self.limited(#"{"code":429001,"message":"Too many requests","details":null}"#), account, hash)
        }
        let json = call.json ?? [:]
        for field in ["order_hash", "taker_address", "message"] where !(json[field] is String) || (json[field] as? String)?.isEmpty == true {
            return (envelope(400, 400_001, "Invalid parameter", "bad_request", details: quoted("\(field) is required")), account, hash)
        }
        guard let success = json["cancellation_success"] as? Bool, let hash else {
            return (envelope(400, 400_001, "Invalid parameter", "bad_request", details: quoted("cancellation_success is required")), account, hash)
        }
        let reply = self.state.transition(.taker, hash) { order -> SandboxReply in
            guard var current = order else { return envelope(404, 404_001, "Order not found", "not_found") }
            switch current.status {
            case "cancelled": return envelope(409, 409_001, "Order already cancelled", "already_cancelled")
            case "trading", "filled": return envelope(409, 409_002, "Order is not awaiting a cancellation result", "not_cancellable")
            default:
                current.status = success ? "cancelled" : "trading"
                order = current
                let body = #"{"code":0,"data":{"success":true,"message":"Cancellation result recorded","order_hash":\#(quoted(hash))}}"#
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
        guard let account else { return (.json(401, #"{"message":"Unauthenticated."}"#, "auth_error"), nil, orderID) }
        if self.overLimit(.fastpod, account, now: now) {
            return (Self.limited(#"{"message":"Too Many Attempts."}"#), account, orderID)
        }
        guard let orderID, !orderID.isEmpty else { return (failure(422, "Parameter Error", "bad_request"), account, nil) }
        let reply = self.state.transition(.fastpod, orderID) { order -> SandboxReply in
            guard var current = order else { return failure(404, "Order not found.", "not_found") }
            switch current.status {
            case "cancelled": return failure(422, "Order is already cancelled.", "already_cancelled")
            case "in_production", "shipped": return failure(422, "Order in status \(current.status) cannot be cancelled.", "not_cancellable")
            case "rejected": return failure(422, "Order was rejected and cannot be cancelled.", "not_cancellable")
            default:
                current.status = "cancelled"
                order = current
                let stamp = Timestamp.format(now)
                let body = #"{"status":true,"message":"Order cancelled successfully.","data":{"id":\#(quoted(current.id)),"order_type":"standard","reference_id":"ref-\#(current.id)","order_status":"cancelled","test_order":false,"item_total":14.4,"shipping_total":24,"order_total":38.4,"payment_status":"unpaid","created_at":"\#(Timestamp.format(current.createdAt))","updated_at":"\#(stamp)","rejected_at":null,"rejected_status":null,"cancelled_at":"\#(stamp)","shipments":[]}}"#
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
        guard let account, let credentials = self.state.credentials(provider: .futures, account: account), let secret = credentials.secret else {
            return (code(6000, "Authentication failed", "auth_error"), nil, id)
        }
        guard let timestamp = call.headers["timestamp"], let millis = Double(timestamp),
            abs(now.timeIntervalSince1970 - millis / 1000) <= self.state.configuration.futuresTimestampWindow.timeInterval
        else {
            return (code(6001, "Invalid signature: timestamp missing or out of window", "auth_error"), account, id)
        }
        let expected = Self.sign(secret: secret.reveal(), timestamp: timestamp, path: call.path, query: call.query, body: call.body)
        guard call.headers["sign"] == expected else {
            return (code(6001, "Invalid signature", "auth_error"), account, id)
        }
        if self.overLimit(.futures, account, now: now) {
            return (code(29001, "API access frequently", "rate_limited"), account, id)
        }
        guard let id else { return (code(402, "param required: id", "bad_request"), account, nil) }
        guard Int64(id) != nil else { return (code(1, "invalid parameter: id", "bad_request"), account, id) }
        let reply = self.state.transition(.futures, id) { order -> SandboxReply in
            guard var current = order, current.status == "open" else {
                return code(9012, "Position not found.", order == nil ? "not_found" : "not_open_\(order!.status)")
            }
            current.status = "cancelled"
            order = current
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
