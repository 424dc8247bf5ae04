import Foundation
import Testing

@Suite("cancel-worker sandbox as a child process", .timeLimit(.minutes(2)))
struct SandboxCommandTests {
    /// curl, as an operator would use it: status code and body.
    func curl(_ arguments: [String]) async throws -> (status: Int, body: String) {
        let (_, output) = try await runProgram(which("curl")!, ["-s", "-w", "\n%{http_code}"] + arguments)
        let lines = output.split(separator: "\n", omittingEmptySubsequences: false)
        return (Int(lines.last ?? "") ?? -1, lines.dropLast().joined(separator: "\n"))
    }

    @Test(
        "prints its URL first; each provider path answers right and wrong credentials as documented; SIGTERM exits 0",
        .enabled(if: which("curl") != nil, "needs curl"))
    func sandbox() async throws {
        let child = try ChildProcess(["sandbox", "--port", "0"])
        let url = try await child.firstLine()
        #expect(url.hasPrefix("http://127.0.0.1:"))
        #expect(
            try await curl([
                "-X", "POST", "\(url)/_sandbox/orders", "-d",
                #"{"orders":[{"provider":"feee","id":"A1"},{"provider":"fungies","id":"B1"},{"provider":"taker","id":"0xC1"},{"provider":"fastpod","id":"D1"}]}"#,
            ]).status == 200)

        let feee = try await curl([
            "-X", "POST", "\(url)/open/v2/order/cancel", "-H", "key: feee-key-1", "-H",
            "User-Agent: Feee.io Client/1.0.0 (https://feee.io)", "-H", "Content-Type: application/json", "-d",
            #"{"order_no":"A1"}"#,
        ])
        #expect(feee.status == 200 && feee.body.contains(#""code":0"#))
        #expect(
            try await curl([
                "-X", "POST", "\(url)/open/v2/order/cancel", "-H", "key: wrong", "-d", #"{"order_no":"A1"}"#,
            ])
            .status == 401)

        let fungies = try await curl([
            "-X", "PATCH", "\(url)/v0/orders/B1/cancel", "-H", "x-fngs-public-key: pub_demo_1", "-H",
            "x-fngs-secret-key: sec_demo_1", "-H", "Content-Type: application/json", "-d", "{}",
        ])
        #expect(fungies.status == 200 && fungies.body.contains(#""status":"CANCELLED""#))
        #expect(
            try await curl([
                "-X", "PATCH", "\(url)/v0/orders/B1/cancel", "-H", "x-fngs-public-key: pub_demo_1", "-H",
                "x-fngs-secret-key: nope", "-d", "{}",
            ]).status == 401)

        let taker = try await curl([
            "-X", "POST", "\(url)/api/v1/orders/cancel-result", "-H", "X-API-Key: taker-key-1", "-H",
            "Content-Type: application/json", "-d",
            #"{"order_hash":"0xC1","taker_address":"0xT","cancellation_success":true,"message":"ok"}"#,
        ])
        #expect(taker.status == 200 && taker.body.contains("Cancellation result recorded"))
        #expect(
            try await curl(["-X", "POST", "\(url)/api/v1/orders/cancel-result", "-H", "X-API-Key: nope", "-d", "{}"])
                .status
                == 401)

        let fastpod = try await curl([
            "-X", "POST", "\(url)/v1/orders/D1/cancel", "-H", "Authorization: Bearer fastpod-key-1", "-H",
            "Accept: application/json",
        ])
        #expect(fastpod.status == 200 && fastpod.body.contains("Order cancelled successfully."))
        #expect(
            try await curl(["-X", "POST", "\(url)/v1/orders/D1/cancel", "-H", "Authorization: Bearer nope"]).status
                == 401)

        let futures = try await curl([
            "-X", "DELETE", "\(url)/v1/perpum/order", "-H", "api_key: nope", "-H", "timestamp: 0", "-H", "sign: x",
            "-d", #"{"id":"1"}"#,
        ])
        #expect(futures.body.contains(#""code":6000"#))

        let stats = try await curl(["\(url)/_sandbox/stats"])
        #expect(stats.body.contains(#""total":9"#), "\(stats.body)")
        // Answers end with a newline, so a terminal prompt does not glue onto them (issue 17 §10).
        #expect(
            feee.body.hasSuffix("}\n") && fastpod.body.hasSuffix("}\n") && stats.body.hasSuffix("}\n"), "\(feee.body)")
        #expect(try await child.stop(signal: SIGTERM) == 0)
        #expect(child.lines == [url])
    }
}
