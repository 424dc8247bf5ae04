import CancelCore
import Foundation
import Logging
import Providers
import Sandbox
import Testing

@Suite("Every adapter against the sandbox", .timeLimit(.minutes(2)))
struct ProviderContractTests {
    @Test(
        "success, and what each sandbox answer for a cancelled, stuck or missing order means — with the documented request shape",
        arguments: ProviderCase.all)
    func answers(case providerCase: ProviderCase) async throws {
        try await withSandboxAndProviders { sandbox, registry, logs in
            let provider = try #require(registry.provider(providerCase.provider))
            let (open, done, stuck, missing) = (
                ProviderCase.id(1), ProviderCase.id(2), ProviderCase.id(3), ProviderCase.id(4)
            )
            sandbox.seed([
                SandboxOrder(provider: providerCase.provider, id: open),
                SandboxOrder(provider: providerCase.provider, id: done, status: providerCase.alreadyCancelledStatus),
                SandboxOrder(provider: providerCase.provider, id: stuck, status: providerCase.notCancellableStatus),
            ])

            let success = await provider.cancel(providerCase.request(open))
            #expect(success.classification == .cancelled, "\(success.reason)")
            #expect(success.answer.httpStatus == 200)
            #expect(
                sandbox.order(providerCase.provider, open)?.status != SandboxOrder.openStatus(providerCase.provider),
                "the order changed state")
            let again = await provider.cancel(providerCase.request(open))
            #expect(again.classification == providerCase.alreadyCancelledExpected, "a second cancel: \(again.reason)")

            let already = await provider.cancel(providerCase.request(done))
            #expect(already.classification == providerCase.alreadyCancelledExpected, "\(already.reason)")
            let notCancellable = await provider.cancel(providerCase.request(stuck))
            #expect(notCancellable.classification == providerCase.notCancellableExpected, "\(notCancellable.reason)")
            let notFound = await provider.cancel(providerCase.request(missing))
            #expect(notFound.classification == providerCase.notFoundExpected, "\(notFound.reason)")

            // The request exactly as documented.
            let record = try #require(sandbox.requests(provider: providerCase.provider, orderID: open).first)
            #expect(record.account == "demo-1", "the credentials were recognised")
            // Framed by its length, never chunked (RFC 9110 §8.6: a POST states its length, 0
            // included). Regression: FastPOD's bodyless POST went out `Transfer-Encoding:
            // chunked` once the adapters had their own connections; AsyncHTTPClient had sent
            // `Content-Length: 0`, and a server that refuses chunked requests answers 411.
            #expect(record.headers["transfer-encoding"] == nil, "\(record.headers)")
            #expect(record.headers["content-length"] == String(record.body.utf8.count), "\(record.headers)")
            switch providerCase.provider {
            case .feee:
                #expect(record.method == "POST" && record.path == "/open/v2/order/cancel")
                #expect(record.headers["key"] == "[REDACTED]")
                #expect(record.headers["user-agent"] == "Feee.io Client/1.0.0 (https://feee.io)")
                #expect(record.headers["content-type"] == "application/json")
                #expect(record.body == #"{"order_no":"\#(open)"}"#)
            case .fungies:
                #expect(record.method == "PATCH" && record.path == "/v0/orders/\(open)/cancel")
                #expect(
                    record.headers["x-fngs-public-key"] == "[REDACTED]"
                        && record.headers["x-fngs-secret-key"] == "[REDACTED]")
                #expect(record.headers["content-type"] == "application/json")
                #expect(record.body == "{}")
            case .taker:
                #expect(record.method == "POST" && record.path == "/api/v1/orders/cancel-result")
                #expect(
                    record.headers["x-api-key"] == "[REDACTED]" && record.headers["content-type"] == "application/json")
                let body = try JSONSerialization.jsonObject(with: Data(record.body.utf8)) as? [String: Any]
                #expect(body?["order_hash"] as? String == open)
                #expect(body?["taker_address"] as? String == "0xtaker")
                #expect(body?["cancellation_success"] as? Bool == true)
                #expect(body?["message"] as? String == "Order cancelled successfully")
            case .fastpod:
                #expect(record.method == "POST" && record.path == "/v1/orders/\(open)/cancel")
                #expect(
                    record.headers["authorization"] == "[REDACTED]" && record.headers["accept"] == "application/json")
                #expect(record.body.isEmpty)
            case .futures:
                #expect(record.method == "DELETE" && record.path == "/v1/perpum/order")
                #expect(record.headers["api_key"] == "[REDACTED]" && record.headers["sign"] == "[REDACTED]")
                #expect(record.headers["timestamp"].flatMap(Int64.init) != nil)
                #expect(record.headers["content-type"] == "application/json")
                #expect(record.body == #"{"id":"\#(open)"}"#, "the id travels as text, never as a float")
            }
            #expect(
                sandbox.stats().contractViolations.isEmpty,
                "every request as documented: \(sandbox.stats().contractViolations)")
            for result in [success, again, already, notCancellable, notFound] {
                for secret in demoSecrets { #expect(!result.reason.contains(secret)) }
            }
            for secret in demoSecrets { #expect(!logs.all.contains(secret), "a secret reached the logs") }
        }
    }

    @Test(
        "an order id with reserved and non-ASCII characters reaches its path as one percent-encoded segment",
        arguments: ProviderCase.all.filter { [.fastpod, .fungies].contains($0.provider) })
    func pathSegmentEncoding(case providerCase: ProviderCase) async throws {
        try await withSandboxAndProviders { sandbox, registry, _ in
            let provider = try #require(registry.provider(providerCase.provider))
            let id = "ord/é 1?x#~"
            sandbox.seed([SandboxOrder(provider: providerCase.provider, id: id)])
            let result = await provider.cancel(providerCase.request(id))
            #expect(result.classification == .cancelled, "\(result.reason)")
            let record = try #require(sandbox.requests(provider: providerCase.provider, orderID: id).first)
            let encoded = "ord%2F%C3%A9%201%3Fx%23~"
            let expected =
                providerCase.provider == .fastpod ? "/v1/orders/\(encoded)/cancel" : "/v0/orders/\(encoded)/cancel"
            #expect(record.path == expected)
            #expect(sandbox.stats().contractViolations.isEmpty, "\(sandbox.stats().contractViolations)")
        }
    }

    /// The taker reports a decision on a cancellation request that expires (`expires_at`); what the
    /// API answers to a late report is undocumented (the sandbox's 409003 is an assumption): the
    /// worker must not take it for a recorded cancellation.
    @Test("review finding: the taker's result reported after its request expired is unknown, never cancelled")
    func takerReportAfterExpiry() async throws {
        try await withSandboxAndProviders { sandbox, registry, _ in
            let taker = try #require(ProviderCase.all.first { $0.provider == .taker })
            let provider = try #require(registry.provider(.taker))
            let (late, prompt) = (ProviderCase.id(5), ProviderCase.id(6))
            sandbox.seed([
                SandboxOrder(provider: .taker, id: late, expiresAt: Date(timeIntervalSinceNow: -1)),
                SandboxOrder(provider: .taker, id: prompt, expiresAt: Date(timeIntervalSinceNow: 60)),
            ])
            let refused = await provider.cancel(taker.request(late))
            #expect(refused.classification == .unknown, "\(refused.reason)")
            #expect(refused.answer.httpStatus == 409 && refused.answer.code == "409003", "\(refused.answer)")
            #expect(sandbox.order(.taker, late)?.status == "locked", "the late report changed nothing")
            #expect(await provider.cancel(taker.request(prompt)).classification == .cancelled)
        }
    }

    @Test("bad credentials are a configuration error, without the key in any message", arguments: ProviderCase.all)
    func badCredentials(case providerCase: ProviderCase) async throws {
        let wrong = ProviderCredentials(
            key: "wrong-key-\(providerCase.provider)", secret: "wrong-secret-\(providerCase.provider)")
        var credentials = SandboxConfiguration.demoAccounts
        credentials[providerCase.provider]?["demo-1"] = wrong
        try await withSandboxAndProviders(credentials: credentials) { sandbox, registry, logs in
            let provider = try #require(registry.provider(providerCase.provider))
            sandbox.seed([SandboxOrder(provider: providerCase.provider, id: ProviderCase.id(7))])
            let result = await provider.cancel(providerCase.request(ProviderCase.id(7)))
            #expect(result.classification == .configuration, "\(result.reason)")
            #expect(
                sandbox.order(providerCase.provider, ProviderCase.id(7))?.status
                    == SandboxOrder.openStatus(providerCase.provider))
            for secret in [wrong.key.reveal(), wrong.secret!.reveal()] {
                #expect(!result.reason.contains(secret))
                #expect(!logs.all.contains(secret))
                #expect(!"\(result)".contains(secret))
            }
        }
    }

    @Test(
        "rate limited: the futures exchange's 10/s per user, and 429 + Retry-After elsewhere",
        arguments: ProviderCase.all)
    func rateLimited(case providerCase: ProviderCase) async throws {
        var configuration = SandboxConfiguration()
        configuration.openByDefault = true
        if providerCase.provider != .futures { configuration.otherLimitsPerSecond[providerCase.provider] = 3 }
        try await withSandboxAndProviders(configuration: configuration) { sandbox, registry, _ in
            let provider = try #require(registry.provider(providerCase.provider))
            let burst = providerCase.provider == .futures ? 14 : 6
            let results = await withTaskGroup(of: ProviderCallResult.self) { group in
                for index in 0..<burst {
                    group.addTask { await provider.cancel(providerCase.request(ProviderCase.id(100 + index))) }
                }
                return await group.reduce(into: []) { $0.append($1) }
            }
            let limited = results.filter {
                if case .retryLater(let after, .account) = $0.classification { return after ?? .zero >= .seconds(1) }
                return false
            }
            #expect(!limited.isEmpty, "some calls are told to wait: \(results.map(\.classification))")
            #expect(results.filter { $0.classification == .cancelled }.count == burst - limited.count)
            let user = "\(providerCase.provider.rawValue):demo-1"
            #expect(sandbox.stats().rateLimitViolations[user] == limited.count)
            #expect(sandbox.stats().maxRatePerUser[user] == burst)
        }
    }

    @Test("calls on the wire per provider stay within max-connections-per-host; the rest wait their turn")
    func concurrentCallsBounded() async throws {
        var configuration = SandboxConfiguration()
        configuration.openByDefault = true
        configuration.latency[.fastpod] = .fixed(milliseconds: 100)
        for (limit, expectBounded) in [(3, true), (64, false)] {
            var http = HTTPClientSettings()
            http.maxConnectionsPerHost = limit
            try await withSandboxAndProviders(configuration: configuration, http: http) { sandbox, registry, _ in
                let provider = try #require(registry.provider(.fastpod))
                let fastpod = try #require(ProviderCase.all.first { $0.provider == .fastpod })
                let results = await withTaskGroup(of: CancelClassification.self) { group in
                    for index in 0..<12 {
                        group.addTask {
                            await provider.cancel(fastpod.request(ProviderCase.id(300 + index))).classification
                        }
                    }
                    return await group.reduce(into: []) { $0.append($1) }
                }
                #expect(results == Array(repeating: .cancelled, count: 12))
                let peak = sandbox.stats().maxConcurrentRequests["fastpod"] ?? 0
                if expectBounded {
                    #expect((2...3).contains(peak), "at most 3 calls at once, and the 3 are used: \(peak)")
                } else {
                    #expect(peak > 3, "without the bound the 12 calls overlap: \(peak)")
                }
            }
        }
    }

    @Test("a call cancelled while its provider is silent ends at once: unknown, the cancel may have happened")
    func cancelledInFlight() async throws {
        try await withSandboxAndProviders(timeout: .seconds(30)) { sandbox, registry, _ in
            let fastpod = try #require(ProviderCase.all.first { $0.provider == .fastpod })
            let provider = try #require(registry.provider(.fastpod))
            let id = ProviderCase.id(250)
            sandbox.seed([SandboxOrder(provider: .fastpod, id: id)])
            sandbox.addFault(SandboxFault(.timeout(seconds: 8), provider: .fastpod, orderPattern: id))
            let started = ContinuousClock.now
            let call = Task { await provider.cancel(fastpod.request(id)) }
            // Once the request is on the wire (the sandbox answers only at the end), the caller
            // gives up.
            try await Task.sleep(for: .seconds(1))
            call.cancel()
            let result = await call.value
            #expect(ContinuousClock.now - started < .seconds(6), "not the 8 s silence, nor the 30 s timeout")
            #expect(result.classification == .unknown, "\(result.reason)")
            #expect(result.reason.contains("call cancelled"), "\(result.reason)")
        }
    }

    @Test("5xx, a timeout and a dropped connection are unknown (retryable)", arguments: ProviderCase.all)
    func transportFailures(case providerCase: ProviderCase) async throws {
        // A provider timeout well above a loaded machine's answer time, well below the silence.
        try await withSandboxAndProviders(timeout: .seconds(2)) { sandbox, registry, logs in
            let provider = try #require(registry.provider(providerCase.provider))
            sandbox.seed((200..<203).map { SandboxOrder(provider: providerCase.provider, id: ProviderCase.id($0)) })
            sandbox.addFault(
                SandboxFault(
                    .status(code: 503, retryAfterSeconds: nil), provider: providerCase.provider,
                    orderPattern: ProviderCase.id(200)))
            sandbox.addFault(
                SandboxFault(.timeout(seconds: 6), provider: providerCase.provider, orderPattern: ProviderCase.id(201))
            )
            sandbox.addFault(SandboxFault(.reset, provider: providerCase.provider, orderPattern: ProviderCase.id(202)))

            let serverError = await provider.cancel(providerCase.request(ProviderCase.id(200)))
            #expect(serverError.classification == .unknown, "\(serverError.reason)")
            #expect(serverError.answer.httpStatus == 503)
            let started = ContinuousClock.now
            let timedOut = await provider.cancel(providerCase.request(ProviderCase.id(201)))
            #expect(timedOut.classification == .unknown, "\(timedOut.reason)")
            #expect(ContinuousClock.now - started < .seconds(5), "the provider timeout applies, not the 6 s silence")
            let dropped = await provider.cancel(providerCase.request(ProviderCase.id(202)))
            #expect(dropped.classification == .unknown, "\(dropped.reason)")
            #expect(
                sandbox.order(providerCase.provider, ProviderCase.id(202))?.status
                    == SandboxOrder.openStatus(providerCase.provider))
            for secret in demoSecrets { #expect(!logs.all.contains(secret)) }
        }
    }

    @Test("regression: a futures call that waited for a connection permit is signed when it leaves, not when it queued")
    func futuresSignedAtSendTime() async throws {
        var configuration = SandboxConfiguration()
        configuration.openByDefault = true
        configuration.futuresTimestampWindow = .milliseconds(1_000)
        var http = HTTPClientSettings()
        http.maxConnectionsPerHost = 1
        try await withSandboxAndProviders(configuration: configuration, http: http) { sandbox, registry, _ in
            let provider = try #require(registry.provider(.futures))
            let futures = try #require(ProviderCase.all.first { $0.provider == .futures })
            sandbox.addFault(
                SandboxFault(
                    .latency(.fixed(milliseconds: 3_000)), provider: .futures, orderPattern: ProviderCase.id(400)))
            async let slow = provider.cancel(futures.request(ProviderCase.id(400)))
            try await Task.sleep(for: .milliseconds(200))
            let queued = await provider.cancel(futures.request(ProviderCase.id(401)))
            #expect(
                queued.classification == .cancelled,
                "signed 2.8 s before it left, it would be refused (6001): \(queued.reason)")
            #expect(await slow.classification == .cancelled)
        }
    }

    @Test(
        "regression: a wrong base URL (the server's own 404) is configuration, never a terminal answer",
        arguments: ProviderCase.all)
    func wrongBaseURL(case providerCase: ProviderCase) async throws {
        try await withSandboxAndProviders(basePath: "/not-the-api") { sandbox, registry, _ in
            let provider = try #require(registry.provider(providerCase.provider))
            let result = await provider.cancel(providerCase.request(ProviderCase.id(500)))
            #expect(result.classification == .configuration, "\(result.reason)")
            #expect(result.answer.httpStatus == 404)
        }
    }

    @Test("regression: Retry-After far beyond the configured maximum waits the maximum", arguments: ProviderCase.all)
    func retryAfterIsCapped(case providerCase: ProviderCase) async throws {
        try await withSandboxAndProviders { sandbox, registry, _ in
            let provider = try #require(registry.provider(providerCase.provider))
            sandbox.seed([SandboxOrder(provider: providerCase.provider, id: ProviderCase.id(600))])
            sandbox.addFault(
                SandboxFault(.status(code: 429, retryAfterSeconds: 1_000_000_000), provider: providerCase.provider))
            let result = await provider.cancel(providerCase.request(ProviderCase.id(600)))
            #expect(result.classification == .retryLater(after: .seconds(600), scope: .account), "\(result.reason)")
            #expect(result.reason.contains("configured maximum"))
        }
    }

    @Test("29001 for several accounts at once is the exchange's global limit: the whole provider waits")
    func globalLimitPausesTheProvider() async throws {
        var configuration = SandboxConfiguration()
        configuration.openByDefault = true
        try await withSandboxAndProviders(configuration: configuration) { sandbox, registry, _ in
            let provider = try #require(registry.provider(.futures))
            let futures = try #require(ProviderCase.all.first { $0.provider == .futures })
            let results = await withTaskGroup(of: ProviderCallResult.self) { group in
                for (number, account) in ["demo-1", "demo-2", "demo-3"].enumerated() {
                    for index in 0..<12 {
                        group.addTask {
                            await provider.cancel(
                                futures.request(ProviderCase.id(700 + number * 20 + index), account: account))
                        }
                    }
                }
                return await group.reduce(into: []) { $0.append($1) }
            }
            let scopes = results.compactMap { result -> ThrottleScope? in
                if case .retryLater(_, let scope) = result.classification { return scope }
                return nil
            }
            #expect(scopes.contains(.account), "the first ones are the account's")
            #expect(scopes.contains(.provider), "then the provider's: \(scopes)")
        }
    }

    @Test(
        "what real networks send, over the wire: never a terminal outcome the document does not give",
        arguments: ProviderCase.all)
    func networkMisbehaviour(case providerCase: ProviderCase) async throws {
        let faults: [(SandboxFault.Kind, CancelClassification)] = [
            (.html(status: 200), .unknown),
            (.empty(status: 200), .unknown),
            (
                .raw(
                    status: 200, contentType: "application/json",
                    body: #"{"status":"error","error":{"message":"Order cannot be cancelled"}}"#),
                providerCase.provider == .fungies ? .rejected : .unknown
            ),
            (.redirect(status: 302, location: "https://elsewhere.example/"), .configuration),
            (.html(status: 404), .configuration),
            (.html(status: 405), .configuration),
            (.oversized(bytes: 2 << 20), .unknown),
            (.truncated(fraction: 0.5), .unknown),
            (.retryAfter(status: 429, value: "inf"), .retryLater(after: .seconds(600), scope: .account)),
            (
                .retryAfter(status: 429, value: "Fri, 31 Dec 9999 23:59:59 GMT"),
                .retryLater(after: .seconds(600), scope: .account)
            ),
            (.retryAfter(status: 503, value: "1e300"), .retryLater(after: .seconds(600), scope: .provider)),
            (.slowBody(seconds: 0.5), .cancelled),
        ]
        try await withSandboxAndProviders(timeout: .seconds(3)) { sandbox, registry, logs in
            let provider = try #require(registry.provider(providerCase.provider))
            for (index, (fault, expected)) in faults.enumerated() {
                let id = ProviderCase.id(800 + index)
                sandbox.seed([SandboxOrder(provider: providerCase.provider, id: id)])
                sandbox.addFault(SandboxFault(fault, provider: providerCase.provider, orderPattern: id))
                // Unpaced calls: the futures exchange counts the faulted ones toward its 10/s too.
                if providerCase.provider == .futures { try await Task.sleep(for: .milliseconds(120)) }
                let result = await provider.cancel(providerCase.request(id))
                #expect(result.classification == expected, "\(fault): \(result.reason)")
                #expect(!result.reason.contains("\n"))
                if case .oversized = fault {
                    #expect(result.reason.contains("answered more than 1048576 bytes"), "\(result.reason)")
                }
            }
            for secret in demoSecrets { #expect(!logs.all.contains(secret)) }
        }
    }
}
