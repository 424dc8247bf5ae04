import CancelCore
import CancelWorkerTesting
import Foundation
import Logging
import NIOCore
import NIOSSL
import Providers
import Sandbox
import Synchronization
import Testing

/// Every secret of the demo accounts, to assert none leaks.
let demoSecrets: [String] = SandboxConfiguration.demoAccounts.values.flatMap { accounts in
    accounts.values.flatMap { [$0.key.reveal()] + ($0.secret.map { [$0.reveal()] } ?? []) }
}

/// A sandbox on port 0 and a registry pointed at it with the demo credentials, logging into
/// `CapturedLogs` (searched for secrets).
func withSandboxAndProviders(
    configuration: SandboxConfiguration = SandboxConfiguration(),
    timeout: Duration = .seconds(5),
    credentials: [ProviderID: [String: ProviderCredentials]] = SandboxConfiguration.demoAccounts,
    http: HTTPClientSettings = HTTPClientSettings(),
    basePath: String = "",
    eventLoopGroup: (any EventLoopGroup)? = nil,
    tlsConfiguration: TLSConfiguration? = nil,
    _ body: @Sendable (ProviderSandbox, ProviderRegistry, CapturedLogs) async throws -> Void
) async throws {
    let logs = CapturedLogs()
    try await SandboxProviders.with(
        configuration, timeout: timeout, http: http, credentials: credentials, basePath: basePath,
        eventLoopGroup: eventLoopGroup, tlsConfiguration: tlsConfiguration, logger: logs.logger
    ) { fixture in
        try await body(fixture.sandbox, fixture.registry, logs)
    }
}

/// Per provider: how to name an order, the sandbox statuses of an already cancelled and a not
/// cancellable order, and what the adapter must make of the sandbox's answers for them. Where a
/// provider's document says nothing about such an answer, the adapter must not read it as a
/// success or a terminal refusal it cannot prove (see docs/providers.md).
struct ProviderCase: Sendable, CustomStringConvertible {
    var provider: ProviderID
    var alreadyCancelledStatus: String
    var alreadyCancelledExpected: CancelClassification
    var notCancellableStatus: String
    var notCancellableExpected: CancelClassification
    var notFoundExpected: CancelClassification

    var description: String { self.provider.rawValue }

    func order(_ id: String) -> OrderReference {
        switch self.provider {
        case .feee: .feee(orderNo: id)
        case .fungies: .fungies(orderIDOrNumber: id)
        case .taker:
            .taker(
                orderHash: id, takerAddress: "0xtaker", cancellationSuccess: true,
                message: "Order cancelled successfully")
        case .fastpod: .fastpod(id: id)
        case .futures: .futures(id: id)
        }
    }

    /// Order ids valid for every provider (the futures id is a Long).
    static func id(_ n: Int) -> String { String(33_308_749_002_645_000 + n) }

    func request(_ id: String, account: String = "demo-1") -> CancelRequest {
        CancelRequest(provider: self.provider, account: account, order: self.order(id), idempotencyKey: "key-\(id)")
    }

    static let all: [ProviderCase] = [
        // feee.io publishes no error codes: its refusals are retried (unknown), never guessed at.
        ProviderCase(
            provider: .feee, alreadyCancelledStatus: "cancelled", alreadyCancelledExpected: .unknown,
            notCancellableStatus: "completed",
            notCancellableExpected: .retryLater(after: FeeeAPI.unknownAgeWait, scope: .order),
            notFoundExpected: .unknown),
        // Fungies documents its error envelope with 400 (a refusal) and, per clients, 404 for an unknown order.
        ProviderCase(
            provider: .fungies, alreadyCancelledStatus: "CANCELLED", alreadyCancelledExpected: .rejected,
            notCancellableStatus: "PARTIALLY_REFUNDED", notCancellableExpected: .rejected, notFoundExpected: .notFound),
        // The taker API documents one error code (400001): the sandbox's 404xxx/409xxx are unknown.
        ProviderCase(
            provider: .taker, alreadyCancelledStatus: "cancelled", alreadyCancelledExpected: .unknown,
            notCancellableStatus: "trading", notCancellableExpected: .unknown, notFoundExpected: .unknown),
        // FastPOD documents 422 as a refusal, whatever its message; a 404 is not documented
        // (an unknown id and a wrong base URL look alike): configuration.
        ProviderCase(
            provider: .fastpod, alreadyCancelledStatus: "cancelled", alreadyCancelledExpected: .rejected,
            notCancellableStatus: "in_production", notCancellableExpected: .rejected,
            notFoundExpected: .configuration),
        // CoinW answers 9012 for any order that is not open (documented as the not-found answer).
        ProviderCase(
            provider: .futures, alreadyCancelledStatus: "cancelled", alreadyCancelledExpected: .notFound,
            notCancellableStatus: "filled", notCancellableExpected: .notFound, notFoundExpected: .notFound),
    ]
}
