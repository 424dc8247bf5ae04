import CancelCore
import CancelWorkerTesting
import Foundation
import Providers
import Testing

/// Random status codes × random bodies × random headers, through every adapter: no crash, and
/// no terminal success without the documented success shape. Seeded, so a failure names the
/// seed and case that reproduce it.
@Suite("Provider answers, random")
struct ProviderAnswerPropertyTests {
    static let keys = [
        "code", "msg", "message", "status", "data", "order", "success", "order_status", "error", "details",
        "request_id",
    ]
    static let scalars: [String] = [
        "0", "\"0\"", "1", "9012", "29001", "429", "6001", "400001", "500", "-1", "1e300", "18446744073709551616",
        "3.5",
        "true", "false", "null", "\"success\"", "\"error\"", "\"CANCELLED\"", "\"cancelled\"", "\"REFUNDED\"",
        "\"PENDING\"",
        "\"Order cannot be cancelled\"", "\"already cancelled\"", "\"5 minutes\"", "\"\"",
        "\"\\u0000\\r\\nX-Injected: 1\"", "[]", "{}",
    ]
    static let statuses = [
        0, 100, 200, 201, 202, 204, 206, 301, 302, 304, 307, 308, 400, 401, 403, 404, 405, 408, 409, 410, 413, 422, 425,
        429, 500, 501, 502, 503, 504, 599, 600, 999, -1,
    ]
    static let retryAfters = [
        "1", "0", "-1", "inf", "-inf", "nan", "1e300", "1e-300", "99999999999999999999",
        "Fri, 31 Dec 9999 23:59:59 GMT", "Mon, 01 Jan 1990 00:00:00 GMT", "x", "", " 5 ", "5, 6",
    ]

    static func randomValue(_ depth: Int, _ random: inout SeededGenerator) -> String {
        if depth < 3, Int.random(in: 0..<4, using: &random) == 0 {
            return self.randomObject(depth + 1, &random)
        }
        return self.scalars.randomElement(using: &random)!
    }

    static func randomObject(_ depth: Int, _ random: inout SeededGenerator) -> String {
        let count = Int.random(in: 0...5, using: &random)
        let fields = (0..<count).map { _ in
            "\"\(self.keys.randomElement(using: &random)!)\":\(self.randomValue(depth, &random))"
        }
        return "{" + fields.joined(separator: ",") + "}"
    }

    /// A body in one provider's documented shape, its values drawn at random (so the generator
    /// reaches the success shapes, and every near miss around them).
    static func randomShaped(_ random: inout SeededGenerator) -> String {
        func pick(_ values: [String]) -> String { values.randomElement(using: &random)! }
        let code = pick(["0", "\"0\"", "1", "9012", "29001", "429", "400001", "true", "false", "null", "0.0", "-0"])
        let flag = pick(["true", "false", "1", "\"true\"", "null"])
        switch Int.random(in: 0..<5, using: &random) {
        case 0:
            return
                #"{"status":\#(pick(["\"success\"", "\"error\"", "\"ok\"", "true"])),"data":{"order":{"id":"x","status":\#(pick(["\"CANCELLED\"", "\"PENDING\"", "\"REFUNDED\"", "\"cancelled\"", "null", "7"]))}}}"#
        case 1:
            return
                #"{"code":\#(code),"data":{"success":\#(flag),"message":"Cancellation result recorded","order_hash":"h"}}"#
        case 2:
            return
                #"{"status":\#(flag),"message":"Order cancelled successfully.","data":{"id":"F1","order_status":\#(pick(["\"cancelled\"", "\"shipped\"", "\"CANCELLED\"", "null"]))}}"#
        case 3:
            return #"{"code":\#(code),"msg":\#(pick(["\"Success\"", "\"ok\"", "\"Position not found.\"", "null"]))}"#
        default:
            return
                #"{"status":"error","error":{"message":\#(pick(["\"CANCELLED\"", "\"Order cannot be cancelled\"", "null"]))}}"#
        }
    }

    static func randomBody(_ random: inout SeededGenerator) -> [UInt8] {
        switch Int.random(in: 0..<12, using: &random) {
        case 10, 11: return Array(self.randomShaped(&random).utf8)
        case 0: return []
        case 1: return Array("<html><head><title>\(Int.random(in: 0...999, using: &random))</title></head></html>".utf8)
        case 2:
            return (0..<Int.random(in: 1...256, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
        case 3:
            let object = Array(self.randomObject(0, &random).utf8)
            return Array(object.prefix(Int.random(in: 0...object.count, using: &random)))  // truncated
        default: return Array(self.randomObject(0, &random).utf8)
        }
    }

    /// The documented success shape of each provider, read independently of the adapters.
    static func isDocumentedSuccess(_ provider: ProviderID, status: Int, body: [UInt8]) -> Bool {
        guard status == 200, let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else {
            return false
        }
        func isZero(_ value: Any?) -> Bool {
            if let number = value as? NSNumber {
                return !"\(type(of: number))".contains("Boolean") && number.doubleValue == 0
            }
            if let text = value as? String { return text == "0" }
            return false
        }
        /// The JSON literal `true` (JSONSerialization's boolean NSNumber), not `1` or `"true"`.
        func isTrue(_ value: Any?) -> Bool {
            guard let number = value as? NSNumber, "\(type(of: number))".contains("Boolean") else { return false }
            return number.boolValue
        }
        let data = object["data"] as? [String: Any]
        switch provider {
        case .feee, .futures:
            return isZero(object["code"])
        case .fungies:
            return object["status"] as? String == "success"
                && (data?["order"] as? [String: Any])?["status"] as? String == "CANCELLED"
        case .taker:
            return isZero(object["code"]) && isTrue(data?["success"])
        case .fastpod:
            return isTrue(object["status"]) && data?["order_status"] as? String == "cancelled"
        }
    }

    @Test("no crash, and no success without the documented success shape", arguments: ProviderID.allCases)
    func randomAnswers(provider: ProviderID) async {
        let seed = UInt64(0xC0FFEE) &+ UInt64(ProviderID.allCases.firstIndex(of: provider)!)
        var random = SeededGenerator(seed: seed)
        let api = ProviderAnswerTableTests.api(provider)
        let now = ProviderAnswerTableTests.now
        var successes = 0
        var ticker = CooperativeTicker()
        for index in 0..<20_000 {
            await ticker.tick()
            let status =
                Int.random(in: 0..<3, using: &random) == 0
                ? Int.random(in: -5...1_000, using: &random) : Self.statuses.randomElement(using: &random)!
            var headers: [String: String] = [:]
            if Bool.random(using: &random) { headers["retry-after"] = Self.retryAfters.randomElement(using: &random)! }
            if Bool.random(using: &random) {
                headers["content-type"] = ["application/json", "text/html", "text/plain"].randomElement(using: &random)!
            }
            if Int.random(in: 0..<4, using: &random) == 0 { headers["location"] = "https://elsewhere.example/\(index)" }
            let body = Self.randomBody(&random)
            let created: Date? =
                Bool.random(using: &random)
                ? now.addingTimeInterval(Double.random(in: -1e6...1e6, using: &random)) : nil
            let result = api.classify(
                ProviderHTTPResponse(status: status, headers: headers, body: body),
                for: ProviderAnswerTableTests.request(provider, createdAt: created), now: now)
            let success = result.classification == .cancelled || result.classification == .alreadyCancelled
            if success {
                successes += 1
                #expect(
                    Self.isDocumentedSuccess(provider, status: status, body: body),
                    "seed \(seed) case \(index): HTTP \(status) \(String(decoding: body, as: UTF8.self)) → \(result.classification)"
                )
            }
            if status < 200 || status > 299, result.classification.terminalStatus != nil,
                result.classification != .rejected, result.classification != .notFound
            {
                Issue.record("seed \(seed) case \(index): HTTP \(status) ended \(result.classification)")
            }
            if case .retryLater(let after?, _) = result.classification {
                #expect(after >= .zero && after <= RetryAfter.ceiling)
            }
            #expect(!result.reason.contains("\n"), "seed \(seed) case \(index): a line break in the reason")
        }
        #expect(successes > 0, "the generator reaches the success shape too")
    }
}
