import CancelCore
import Foundation
import Providers
import Testing
import WorkerApp

/// Issue 13: a setting that is parsed but never reaches what reads it (as `ledger.retention`
/// once did) is a setting that silently does nothing. Every fixed key of the reference, set to a
/// value other than its default, must change what its reader receives from `AppConfiguration.load`.
@Suite("Configuration: every fixed key reaches what reads it")
struct ConfigurationReachTests {
    /// Who receives a setting.
    enum Reader: String, Sendable {
        /// `CancelWorker`, through `AppConfiguration.worker`.
        case worker
        /// The provider adapters, through `WorkerApplication.providersConfiguration`.
        case providers
        /// `WorkerApplication.run` itself: the ledger it opens, the health and metrics server.
        case application
        /// Only `cancel-worker console`, through `AppConfiguration.console`.
        case console
        /// Only the CLI: the log handler it bootstraps before anything else runs.
        case cli
    }

    /// One key, a value other than its default, and what its reader receives, as text.
    struct Reach: Sendable, CustomTestStringConvertible {
        var key: String
        var value: String
        var reader: Reader
        /// What the reader receives once `key` is `value`.
        var expected: String
        var received: @Sendable (AppConfiguration) -> String

        init(
            _ key: String, _ value: String, _ reader: Reader, expected: String? = nil,
            _ received: @escaping @Sendable (AppConfiguration) -> String
        ) {
            self.key = key
            self.value = value
            self.reader = reader
            self.expected = expected ?? value
            self.received = received
        }

        var testDescription: String { "\(self.key) → \(self.reader.rawValue)" }
    }

    static func provider(_ configuration: AppConfiguration, _ id: ProviderID = .feee) -> ProviderSettings {
        WorkerApplication.providersConfiguration(configuration).settings[id]!
    }

    static func limit(_ id: ProviderID) -> @Sendable (AppConfiguration) -> String {
        { configuration in
            configuration.worker.rateLimits[id].map { "\(Int($0.requestsPerSecond))/s:\($0.burst)" } ?? "none"
        }
    }

    /// Every fixed key of `ConfigOption.all`, `ledger.retention` first.
    static let table: [Reach] = [
        Reach("ledger.retention", "2d", .worker) { $0.worker.ledgerRetention.settingText },
        Reach("kafka.bootstrap-servers", "k1:9092,k2:9092", .worker) {
            $0.worker.kafka.bootstrapServers.joined(separator: ",")
        },
        Reach("kafka.security-protocol", "ssl", .worker) { $0.worker.kafka.security.protocol },
        Reach("kafka.sasl-mechanism", "PLAIN", .worker) { $0.worker.kafka.security.saslMechanism ?? "" },
        Reach("kafka.sasl-username", "operator", .worker) { $0.worker.kafka.security.saslUsername ?? "" },
        Reach("kafka.sasl-password", "s3cret", .worker) { $0.worker.kafka.security.saslPassword ?? "" },
        Reach("kafka.ssl-ca-location", "/etc/ssl/ca.pem", .worker) { $0.worker.kafka.security.sslCALocation ?? "" },
        Reach("kafka.properties", "fetch.min.bytes=50", .worker) {
            $0.worker.kafka.additionalProperties.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
        },
        Reach("kafka.fetch-wait", "100ms", .worker) { $0.worker.fetchWaitMax.settingText },
        Reach("kafka.retry-fetch-wait", "2s", .worker) { $0.worker.retryFetchWaitMax?.settingText ?? "" },
        Reach("group-id", "cancel-worker-blue", .worker) { $0.worker.groupID },
        Reach("group-instance-id", "pod-3", .worker) { $0.worker.groupInstanceID ?? "" },
        Reach("worker-id", "replica-7", .worker) { $0.worker.workerID },
        Reach("topics.commands", "orders.cancel", .worker) { $0.worker.topics.commands },
        Reach("topics.outcomes", "orders.cancelled", .worker) { $0.worker.topics.outcomes },
        Reach("topics.dead-letters", "orders.cancel.dlq", .worker) { $0.worker.topics.deadLetters },
        Reach("topics.retry-prefix", "orders.retry", .worker, expected: "orders.retry.5s") {
            $0.worker.retryTopics.first ?? ""
        },
        Reach("max-in-flight", "500", .worker) { String($0.worker.maxInFlight) },
        Reach("partition-concurrency", "4", .worker) { $0.worker.partitionConcurrency.map(String.init) ?? "" },
        Reach("max-command-bytes", "2048", .worker) { String($0.worker.maxCommandBytes) },
        Reach("consumer-buffer", "300", .worker) { String($0.worker.consumerBufferCapacity) },
        Reach("session-timeout", "45s", .worker) { $0.worker.sessionTimeout.settingText },
        Reach("claim-lease", "2m", .worker) { $0.worker.claimLease.settingText },
        Reach("drain-timeout", "40s", .worker) { $0.worker.drainTimeout.settingText },
        Reach("stall-timeout", "0s", .worker) { $0.worker.stallTimeout.settingText },
        Reach("stranded-partition-timeout", "2m", .worker) { $0.worker.strandTimeout.settingText },
        Reach("commit-interval", "1s", .worker) { $0.worker.commitInterval.settingText },
        Reach("retry.tiers", "30s,5m", .worker) { $0.worker.retry.tiers.map(\.name).joined(separator: ",") },
        Reach("retry.max-attempts", "4", .worker) { String($0.worker.retry.maxAttempts) },
        Reach("retry.in-process-attempts", "1", .worker) { String($0.worker.retry.inProcessAttempts) },
        Reach("retry.base-backoff", "50ms", .worker) { $0.worker.retry.baseBackoff.settingText },
        Reach("retry.max-in-process-backoff", "2s", .worker) { $0.worker.retry.maxInProcessBackoff.settingText },
        Reach("rate-limits.feee", "5/s:2", .worker, expected: "5/s:2", Self.limit(.feee)),
        Reach("rate-limits.fungies", "3/s", .worker, expected: "3/s:1", Self.limit(.fungies)),
        Reach("rate-limits.taker", "7/s", .worker, expected: "7/s:1", Self.limit(.taker)),
        Reach("rate-limits.fastpod", "2/s", .worker, expected: "2/s:1", Self.limit(.fastpod)),
        Reach("rate-limits.futures", "none", .worker, Self.limit(.futures)),
        Reach("handover-delay", "3s", .worker) { $0.worker.handoverDelay.settingText },
        Reach("rate-limit-jitter-allowance", "50ms", .worker) { $0.worker.rateLimitJitterAllowance.settingText },
        Reach("ledger.url", "memory:", .application) { $0.ledgerURL.reveal() },
        Reach("ledger.statement-timeout", "30s", .application) { $0.ledgerStatementTimeout.settingText },
        Reach("http.host", "127.0.0.1", .application) { $0.httpHost },
        Reach("http.port", "9470", .application) { String($0.httpPort) },
        Reach("log.level", "debug", .cli) { $0.logLevel.rawValue },
        Reach("log.format", "json", .cli) { $0.logFormat.rawValue },
        Reach("providers.base-url", "http://127.0.0.1:8080", .providers) { Self.provider($0).baseURL },
        Reach("providers.max-retry-after", "1m", .providers) { Self.provider($0).maxRetryAfter.settingText },
        Reach("http-client.connect-timeout", "1s", .providers) {
            WorkerApplication.providersConfiguration($0).http.connectTimeout.settingText
        },
        Reach("http-client.read-timeout", "30s", .providers) {
            WorkerApplication.providersConfiguration($0).http.readTimeout.settingText
        },
        Reach("http-client.max-connections-per-host", "16", .providers) {
            String(WorkerApplication.providersConfiguration($0).http.maxConnectionsPerHost)
        },
        Reach("http-client.send-window", "250ms", .providers) {
            WorkerApplication.providersConfiguration($0).http.sendWindow.settingText
        },
        Reach("console.host", "0.0.0.0", .console) { $0.console.host },
        Reach("console.port", "9999", .console) { String($0.console.port) },
        Reach("console.token", "a-token-of-sixteen-characters", .console) { $0.console.token?.reveal() ?? "" },
        Reach("console.workers", "w1:9464,w2:9464", .console) { $0.console.workersText },
        Reach("console.scrape-interval", "10s", .console) { $0.console.scrapeInterval.settingText },
        Reach("console.replay-rate", "2.5", .console) { String($0.console.replayRate) },
        Reach("console.max-replays", "5", .console) { String($0.console.maxReplays) },
    ]

    @Test("the table covers every fixed key of the reference, ledger.retention first")
    func coversTheReference() {
        #expect(Self.table.map(\.key).sorted() == ConfigOption.all.map(\.key).sorted())
        #expect(Self.table.first?.key == "ledger.retention")
    }

    @Test("a key set with --set changes what its reader receives", arguments: Self.table)
    func reachesItsReader(_ reach: Reach) async throws {
        let environment = ["HOME": "/home/op"]
        let defaults = try await AppConfiguration.load(environment: environment)
        #expect(reach.received(defaults) != reach.expected, "\(reach.value) is not the default of \(reach.key)")
        let set = try await AppConfiguration.load(overrides: [reach.key: reach.value], environment: environment)
        #expect(reach.received(set) == reach.expected, "\(reach.key)=\(reach.value) reaches the \(reach.reader)")
    }
}
