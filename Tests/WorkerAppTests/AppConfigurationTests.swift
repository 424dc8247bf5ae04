import CancelCore
import Foundation
import Ledger
import Logging
import Testing
import WorkerApp

@Suite("Configuration: file, environment, --set")
struct AppConfigurationTests {
    @Test("defaults match the option table")
    func defaults() async throws {
        let configuration = try await AppConfiguration.load(environment: [:])
        #expect(configuration.worker.kafka.bootstrapServers == ["127.0.0.1:9092"])
        #expect(configuration.worker.groupID == "cancel-worker")
        #expect(configuration.worker.topics == TopicNames.default)
        #expect(configuration.worker.maxInFlight == 10_000)
        #expect(configuration.worker.retry.tiers.map(\.name) == ["5s", "1m", "10m"])
        #expect(configuration.worker.rateLimits[.futures] == RateLimit(requestsPerSecond: 10))
        #expect(configuration.worker.rateLimits[.feee] == nil)
        #expect(configuration.httpPort == 9464)
        #expect(configuration.ledgerURL.reveal() == AppConfiguration.defaultLedgerURL(environment: [:]))
        for option in ConfigOption.all where !option.defaultValue.hasPrefix("<") && !option.defaultValue.isEmpty {
            #expect(option.environmentName.hasPrefix("CANCEL_WORKER_"))
        }
    }

    @Test("precedence: --set over environment over file")
    func precedence() async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("cw-\(UUID()).json")
        try Data(
            """
            {"kafka": {"bootstrap-servers": "file:1"}, "group-id": "from-file", "max-in-flight": 123,
             "retry": {"tiers": ["1s", "30s"]}, "rate-limits": {"fungies": "5/s:2"},
             "providers": {"futures": {"accounts": "trader-1", "credentials": {"trader-1": {"key": "k1", "secret": "s1"}}}}}
            """.utf8
        ).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let configuration = try await AppConfiguration.load(
            file: file.path,
            overrides: ["group-id": "from-set"],
            environment: ["CANCEL_WORKER_KAFKA_BOOTSTRAP_SERVERS": "env:1,env:2", "CANCEL_WORKER_GROUP_ID": "from-env"]
        )
        #expect(configuration.worker.kafka.bootstrapServers == ["env:1", "env:2"])
        #expect(configuration.worker.groupID == "from-set")
        #expect(configuration.worker.maxInFlight == 123)
        #expect(configuration.worker.retry.tiers.map(\.delay) == [.seconds(1), .seconds(30)])
        #expect(configuration.worker.rateLimits[.fungies] == RateLimit(requestsPerSecond: 5, burst: 2))
        #expect(configuration.providers[.futures]?.accounts["trader-1"] == ProviderCredentials(key: "k1", secret: "s1"))
    }

    @Test("the handover delay, the record size limit and per-partition concurrency are settable")
    func pacingAndIntakeOptions() async throws {
        let defaults = try await AppConfiguration.load(environment: [:])
        #expect(defaults.worker.handoverDelay == .seconds(1))
        #expect(defaults.worker.maxCommandBytes == 65_536)
        #expect(defaults.worker.partitionConcurrency == nil)
        let configuration = try await AppConfiguration.load(
            overrides: ["handover-delay": "2500ms", "partition-concurrency": "1"],
            environment: ["CANCEL_WORKER_MAX_COMMAND_BYTES": "8192"]
        )
        #expect(configuration.worker.handoverDelay == .milliseconds(2_500))
        #expect(configuration.worker.maxCommandBytes == 8_192)
        #expect(configuration.worker.partitionConcurrency == 1)
    }

    /// Review finding (CancelCore): the pacing keeps a limited user's calls 1 s + the jitter
    /// allowance (200 ms) apart, absorbing up to 200 ms between the guard and the socket; the
    /// send window let a request through up to 1 s after its guard, so two calls stalled
    /// unevenly could reach the futures exchange 11 in one second (its ban is 8 hours).
    @Test("review finding: a rate-limited provider's send window is no wider than the jitter allowance")
    func sendWindowWithinTheJitterAllowance() async throws {
        let configuration = try await AppConfiguration.load(environment: [:])
        let providers = WorkerApplication.providersConfiguration(configuration)
        #expect(configuration.worker.rateLimits[.futures] != nil && configuration.worker.rateLimits[.fastpod] == nil)
        #expect(providers.settings[.futures]?.sendWindow == configuration.worker.rateLimitJitterAllowance)
        #expect(
            providers.settings[.fastpod]?.sendWindow == nil,
            "no limit: the shared window (\(providers.http.sendWindow))")
        let wide = try await AppConfiguration.load(
            overrides: ["rate-limits.fastpod": "5/s", "rate-limit-jitter-allowance": "0s"], environment: [:])
        #expect(WorkerApplication.providersConfiguration(wide).settings[.fastpod]?.sendWindow == .milliseconds(50))
    }

    @Test("per-account credentials from the environment; the shared sandbox URL")
    func environmentCredentials() async throws {
        let configuration = try await AppConfiguration.load(environment: [
            "CANCEL_WORKER_PROVIDERS_FUTURES_ACCOUNTS": "trader-42,desk",
            "CANCEL_WORKER_PROVIDERS_FUTURES_CREDENTIALS_TRADER_42_KEY": "api-42",
            "CANCEL_WORKER_PROVIDERS_FUTURES_CREDENTIALS_TRADER_42_SECRET": "sign-42",
            "CANCEL_WORKER_PROVIDERS_FUTURES_CREDENTIALS_DESK_KEY": "api-desk",
            "CANCEL_WORKER_PROVIDERS_BASE_URL": "http://127.0.0.1:1234",
            "CANCEL_WORKER_PROVIDERS_FASTPOD_BASE_URL": "http://fastpod.local",
        ])
        let futures = try #require(configuration.providers[.futures])
        #expect(futures.accounts.keys.sorted() == ["desk", "trader-42"])
        #expect(futures.accounts["trader-42"]?.secret?.reveal() == "sign-42")
        #expect(futures.baseURL == "http://127.0.0.1:1234")
        #expect(configuration.providers[.fastpod]?.baseURL == "http://fastpod.local")
    }

    @Test(
        "invalid values name the key and the environment variable",
        arguments: [
            ("max-in-flight", "lots", "CANCEL_WORKER_MAX_IN_FLIGHT"),
            ("claim-lease", "forever", "CANCEL_WORKER_CLAIM_LEASE"),
            ("rate-limits.futures", "fast", "CANCEL_WORKER_RATE_LIMITS_FUTURES"),
            ("log.format", "xml", "CANCEL_WORKER_LOG_FORMAT"),
            ("retry.tiers", "5s,later", "CANCEL_WORKER_RETRY_TIERS"),
            ("handover-delay", "soon", "CANCEL_WORKER_HANDOVER_DELAY"),
            ("max-command-bytes", "12", "CANCEL_WORKER_MAX_COMMAND_BYTES"),
            // Regression: each of these was accepted, and trapped at the limiter's first use (the
            // call spacing beyond Int64 nanoseconds, or the burst's tolerance overflowing).
            ("rate-limits.futures", "1e-10/s", "CANCEL_WORKER_RATE_LIMITS_FUTURES"),
            ("rate-limits.feee", "inf/s", "CANCEL_WORKER_RATE_LIMITS_FEEE"),
            ("rate-limits.fungies", "10/s:9223372036854775807", "CANCEL_WORKER_RATE_LIMITS_FUNGIES"),
            ("rate-limit-jitter-allowance", "3650d", "CANCEL_WORKER_RATE_LIMIT_JITTER_ALLOWANCE"),
            // Review finding (configuration): each was accepted by `config`; the worker then
            // trapped on overflow, dead-lettered its own dead letters for ever, failed with a
            // librdkafka error naming no setting, spun a core, or lost commands.
            ("max-in-flight", "9223372036854775807", "CANCEL_WORKER_MAX_IN_FLIGHT"),
            (
                "http-client.max-connections-per-host", "5000000000000000000",
                "CANCEL_WORKER_HTTP_CLIENT_MAX_CONNECTIONS_PER_HOST"
            ),
            ("topics.dead-letters", "cancel.commands", "CANCEL_WORKER_TOPICS_DEAD_LETTERS"),
            ("topics.outcomes", "cancel outcomes", "CANCEL_WORKER_TOPICS_OUTCOMES"),
            ("session-timeout", "0s", "CANCEL_WORKER_SESSION_TIMEOUT"),
            ("session-timeout", "100000d", "CANCEL_WORKER_SESSION_TIMEOUT"),
            ("commit-interval", "0s", "CANCEL_WORKER_COMMIT_INTERVAL"),
            ("ledger.retention", "0s", "CANCEL_WORKER_LEDGER_RETENTION"),
            ("ledger.url", "sqlite:/etc/hostname/ledger.db", "CANCEL_WORKER_LEDGER_URL"),
            ("ledger.url", "sqlite:/tmp", "CANCEL_WORKER_LEDGER_URL"),
            ("retry.max-attempts", "9223372036854775807", "CANCEL_WORKER_RETRY_MAX_ATTEMPTS"),
            ("kafka.properties", "enable.auto.commit=true", "CANCEL_WORKER_KAFKA_PROPERTIES"),
            ("kafka.properties", "enable.idempotence=false,acks=0", "CANCEL_WORKER_KAFKA_PROPERTIES"),
            ("kafka.properties", "auto.offset.reset=latest", "CANCEL_WORKER_KAFKA_PROPERTIES"),
        ])
    func invalid(key: String, value: String, environmentName: String) async throws {
        do {
            _ = try await AppConfiguration.load(overrides: [key: value], environment: [:])
            Issue.record("\(key)=\(value) was accepted")
        } catch let error as AppConfiguration.Invalid {
            #expect(error.key == key)
            #expect(error.description.contains(environmentName))
        }
    }

    @Test("review finding: credentials for an account the accounts list does not name are refused, not dropped")
    func unlistedCredentials() async throws {
        let key = "CANCEL_WORKER_PROVIDERS_FASTPOD_CREDENTIALS_DEMO_1_KEY"
        do {
            _ = try await AppConfiguration.load(environment: [key: "api-1"])
            Issue.record("accepted, and the worker had no fastpod account")
        } catch let error as AppConfiguration.Invalid {
            #expect(error.key == "providers.fastpod.accounts")
            #expect(error.message.contains(key) && !error.description.contains("api-1"), "\(error)")
        }
        let listed = try await AppConfiguration.load(
            environment: [key: "api-1", "CANCEL_WORKER_PROVIDERS_FASTPOD_ACCOUNTS": "demo-1"])
        #expect(listed.providers[.fastpod]?.accounts["demo-1"]?.key.reveal() == "api-1")
    }

    @Test("review finding: a kafka.properties item that does not parse is not echoed (it may be part of a secret)")
    func propertiesNotEchoed() async throws {
        do {
            _ = try await AppConfiguration.load(
                overrides: ["kafka.properties": "sasl.password=hunter2,secretpart"], environment: [:])
            Issue.record("accepted")
        } catch let error as AppConfiguration.Invalid {
            #expect(error.key == "kafka.properties")
            #expect(!error.description.contains("secretpart") && !error.description.contains("hunter2"))
            #expect(error.message.contains("item 2"))
        }
        let fine = try await AppConfiguration.load(
            overrides: ["kafka.properties": "statistics.interval.ms=5000, partition.assignment.strategy=range"],
            environment: [:])
        #expect(fine.worker.kafka.additionalProperties["partition.assignment.strategy"] == "range")
    }

    @Test("a claim lease shorter than the longest provider timeout + 2 s is refused, naming both")
    func claimLeaseCoversTheCall() async throws {
        var timeouts: [String: String] = [:]
        for provider in ["feee", "fungies", "taker", "futures"] { timeouts["providers.\(provider).timeout"] = "5s" }
        timeouts["providers.fastpod.timeout"] = "9s"
        do {
            _ = try await AppConfiguration.load(
                overrides: timeouts.merging(["claim-lease": "10s"]) { $1 }, environment: [:])
            Issue.record("a 10 s lease for a 9 s call was accepted")
        } catch let error as AppConfiguration.Invalid {
            #expect(error.key == "claim-lease")
            #expect(error.message.contains("providers.fastpod.timeout"))
        }
        let fine = try await AppConfiguration.load(
            overrides: timeouts.merging(["claim-lease": "11s"]) { $1 }, environment: [:])
        #expect(fine.worker.claimLease == .seconds(11))
    }

    @Test("regression: ledger.retention reaches the worker")
    func retentionReachesTheWorker() async throws {
        let configuration = try await AppConfiguration.load(overrides: ["ledger.retention": "2d"], environment: [:])
        #expect(configuration.worker.ledgerRetention == .seconds(2 * 86_400))
        #expect(configuration.ledgerRetention == .seconds(2 * 86_400))
    }

    @Test("ledger.statement-timeout reaches the PostgreSQL ledger the worker opens; under 1s is refused")
    func statementTimeoutReachesTheLedger() async throws {
        let url = ["ledger.url": "postgres://worker@127.0.0.1:9/ledger"]
        let configuration = try await AppConfiguration.load(
            overrides: url.merging(["ledger.statement-timeout": "30s"]) { $1 }, environment: [:])
        let ledger = try #require(try configuration.makeLedger(logger: Logger(label: "test")).ledger as? PostgresLedger)
        #expect(ledger.statementTimeout == .seconds(30))
        let byDefault = try await AppConfiguration.load(overrides: url, environment: [:])
        #expect(
            (try byDefault.makeLedger(logger: Logger(label: "test")).ledger as? PostgresLedger)?.statementTimeout
                == .seconds(10))
        for short in ["500ms", "0s"] {
            do {
                _ = try await AppConfiguration.load(overrides: ["ledger.statement-timeout": short], environment: [:])
                Issue.record("ledger.statement-timeout=\(short) was accepted")
            } catch let error as AppConfiguration.Invalid {
                #expect(error.key == "ledger.statement-timeout")
                #expect(error.message.contains("at least 1s"))
            }
        }
    }

    @Test("pacing absorbs the jitter allowance: 10/s becomes 10 per 1.2 s")
    func jitterAllowance() async throws {
        let configuration = try await AppConfiguration.load(environment: [:])
        #expect(configuration.worker.rateLimitJitterAllowance == .milliseconds(200))
        let limit = try #require(configuration.worker.effectiveRateLimit(for: .futures))
        #expect(limit.emissionInterval == .milliseconds(120))
        let tighter = try await AppConfiguration.load(
            overrides: ["rate-limit-jitter-allowance": "500ms"], environment: [:])
        #expect(tighter.worker.effectiveRateLimit(for: .futures)?.emissionInterval == .milliseconds(150))
    }

    @Test("the send window is 1 s by default, settable, and refused outside 1ms...2s (the lease margin)")
    func sendWindow() async throws {
        #expect(try await AppConfiguration.load(environment: [:]).httpSendWindow == .seconds(1))
        let set = try await AppConfiguration.load(overrides: ["http-client.send-window": "250ms"], environment: [:])
        #expect(WorkerApplication.providersConfiguration(set).http.sendWindow == .milliseconds(250))
        for refused in ["0s", "3s"] {
            await #expect(throws: AppConfiguration.Invalid.self) {
                try await AppConfiguration.load(overrides: ["http-client.send-window": refused], environment: [:])
            }
        }
    }

    @Test("futures keys are per account; a listed account needs a key; secrets are redacted")
    func credentialsRules() async throws {
        await #expect(throws: AppConfiguration.Invalid.self) {
            try await AppConfiguration.load(overrides: ["providers.futures.default-key": "shared"], environment: [:])
        }
        await #expect(throws: AppConfiguration.Invalid.self) {
            try await AppConfiguration.load(overrides: ["providers.fastpod.accounts": "shop"], environment: [:])
        }
        let configuration = try await AppConfiguration.load(
            overrides: ["ledger.url": "postgres://cw:hunter2@db:5432/cw"], environment: [:])
        #expect(!configuration.redactedLedgerURL.contains("hunter2"))
        #expect(!"\(configuration.ledgerURL)".contains("hunter2"))
        #expect(!ConfigOption.markdownReference.isEmpty)
    }
}
