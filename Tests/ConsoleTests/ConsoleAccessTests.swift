import CancelCore
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

@testable import Console
@testable import OperatorTools

@Suite("Console access: no page without the token, no replay without its CSRF token", .timeLimit(.minutes(2)))
struct ConsoleAccessTests {
    static let routes: [(HTTPRequest.Method, String)] = [
        (.get, "/"), (.get, "/flow"), (.get, "/flow?fragment=1"), (.get, "/dead-letters"),
        (.get, "/dead-letters/0@1"), (.get, "/replay"), (.get, "/replay/preview?provider=fastpod"),
        (.get, "/replay/jobs/console-1"), (.get, "/console.js"), (.get, "/console.css"), (.post, "/replay/start"),
        (.get, "/no-such-page"),
    ]

    @Test("every route answers 401 with a basic-auth challenge: no credentials, a wrong token, a wrong scheme")
    func unauthorized() async throws {
        let app = Application(router: try ConsoleFixture.server().router())
        try await app.test(.router) { client in
            let wrong: [HTTPFields] = [
                [:], [.authorization: "Bearer not-the-token-at-all"],
                [.authorization: ConsoleFixture.basic("alice", "wrong-password-123")],
                [.authorization: "Token \(ConsoleFixture.token.reveal())"],
                [.authorization: "Bearer \(ConsoleFixture.token.reveal())x"],
                [.authorization: "Basic not-base64!"],
            ]
            for (method, uri) in Self.routes {
                for headers in wrong {
                    try await client.execute(uri: uri, method: method, headers: headers) { response in
                        #expect(response.status == .unauthorized, "\(method) \(uri) with \(headers)")
                        #expect(response.headers[.wwwAuthenticate]?.hasPrefix("Basic realm=") == true)
                        #expect(!String(buffer: response.body).contains(ConsoleFixture.token.reveal()))
                    }
                }
            }
        }
    }

    @Test("the token opens every page: as a bearer token, or as the basic-auth password (the user names the operator)")
    func authorized() async throws {
        let app = Application(router: try ConsoleFixture.server().router())
        try await app.test(.router) { client in
            try await client.execute(
                uri: "/flow", method: .get, headers: [.authorization: "Bearer \(ConsoleFixture.token.reveal())"]
            ) { response in
                #expect(response.status == .ok)
                let body = String(buffer: response.body)
                #expect(body.contains("No reading yet") && body.contains(#"<span id="operator">bearer-token</span>"#))
                #expect(response.headers[.contentSecurityPolicy]?.contains("script-src 'self'") == true)
                #expect(!body.contains(ConsoleFixture.token.reveal()), "the token is never on a page")
            }
            try await client.execute(
                uri: "/replay?provider=fastpod&account=shop", method: .get,
                headers: [.authorization: ConsoleFixture.basic("alice", ConsoleFixture.token.reveal())]
            ) { response in
                #expect(response.status == .ok)
                let body = String(buffer: response.body)
                #expect(body.contains(#"<span id="operator">alice</span>"#))
                #expect(body.contains(#"<option value="fastpod" selected>"#) && body.contains(#"value="shop""#))
            }
            try await client.execute(
                uri: "/replay?provider=nope", method: .get,
                headers: [.authorization: "Bearer \(ConsoleFixture.token.reveal())"]
            ) { response in
                #expect(response.status == .badRequest)
                #expect(String(buffer: response.body).contains("unknown provider nope"))
            }
        }
    }

    @Test("a replay POST without the preview's CSRF token is refused with 403, and nothing is queued")
    func csrf() async throws {
        let server = try ConsoleFixture.server()
        let preview = ReplayJobs.Preview(
            id: "p1", csrf: "c".padding(toLength: 64, withPad: "d", startingAt: 0), operatorName: "alice",
            query: DeadLetterQuery(provider: "fastpod"), filter: DeadLetterFilter(provider: "fastpod"),
            fromBeginning: false, limit: nil, report: ReplayReport(replayID: "dry", dryRun: true), createdAt: Date())
        server.jobs.remember(preview)
        let app = Application(router: server.router())
        try await app.test(.router) { client in
            let auth: HTTPFields = [
                .authorization: "Bearer \(ConsoleFixture.token.reveal())",
                .contentType: "application/x-www-form-urlencoded",
            ]
            for body in ["preview=p1&count=0", "preview=p1&csrf=&count=0", "preview=p1&csrf=forged&count=0", ""] {
                try await client.execute(
                    uri: "/replay/start", method: .post, headers: auth, body: ByteBuffer(string: body)
                ) { response in
                    #expect(response.status == .forbidden, "\(body)")
                    #expect(String(buffer: response.body).contains("CSRF token"))
                }
                // A refused attempt uses the preview up: the real token no longer works either.
                server.jobs.remember(preview)
            }
            #expect(server.jobs.jobs.isEmpty, "nothing was queued")
        }
    }

    @Test("confirming needs the count the preview showed; a used preview cannot start a second replay")
    func confirmation() throws {
        let jobs = try ConsoleFixture.server().jobs
        var report = ReplayReport(replayID: "dry", dryRun: true)
        report.replayed = (0..<3).map {
            ReplayReport.Item(
                position: "0@\($0)", key: "k\($0)", provider: "fastpod", account: "shop",
                errorClass: "retries_exhausted",
                decision: .replay)
        }
        let preview = ReplayJobs.Preview(
            id: "p2", csrf: String(repeating: "a", count: 64), operatorName: "alice", query: DeadLetterQuery(),
            filter: DeadLetterFilter(), fromBeginning: false, limit: nil, report: report, createdAt: Date())
        jobs.remember(preview)
        #expect("the count shown is needed") {
            try jobs.confirm(previewID: "p2", csrf: preview.csrf, count: "2", operatorName: "alice")
        } throws: { ($0 as? ConsoleProblem)?.status == .unprocessableContent }
        #expect(jobs.jobs.isEmpty)
        jobs.remember(preview)
        let job = try jobs.confirm(previewID: "p2", csrf: preview.csrf, count: " 3 ", operatorName: "alice")
        #expect(job.previewed == 3 && job.operatorName == "alice" && job.id.hasPrefix("console-"))
        #expect(jobs.jobs.map(\.id) == [job.id])
        #expect("a used preview cannot start another replay") {
            try jobs.confirm(previewID: "p2", csrf: preview.csrf, count: "3", operatorName: "alice")
        } throws: { ($0 as? ConsoleProblem)?.status == .forbidden }
        // An expired preview cannot be confirmed.
        var old = preview
        old.id = "p3"
        old.createdAt = Date().addingTimeInterval(-3600)
        jobs.remember(old, now: old.createdAt)
        #expect(throws: ConsoleProblem.self) {
            try jobs.confirm(previewID: "p3", csrf: old.csrf, count: "3", operatorName: "alice")
        }
    }

    @Test("tokens compare in full; user names are cleaned before they reach the audit")
    func parsing() {
        let token = ConsoleFixture.token
        #expect(ConsoleAccess.operatorName(authorization: "bearer \(token.reveal())", token: token) == "bearer-token")
        #expect(
            ConsoleAccess.operatorName(
                authorization: ConsoleFixture.basic("ops<script>\n", token.reveal()), token: token) == "opsscript")
        #expect(
            ConsoleAccess.operatorName(authorization: ConsoleFixture.basic("", token.reveal()), token: token)
                == "basic-auth")
        #expect(ConsoleAccess.operatorName(authorization: "Bearer ", token: Secret("")) == nil, "no token: no access")
        #expect(ConsoleAccess.operatorName(authorization: "Bearer \(token.reveal().dropLast())", token: token) == nil)
    }
}
