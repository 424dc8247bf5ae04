public import CancelCore
import Configuration
public import Foundation
import Kafka
public import Logging
import SystemPackage
public import Worker

/// Everything `cancel-worker run` reads, from (highest precedence first) `--set key=value`,
/// environment variables (`CANCEL_WORKER_…`), a JSON file (`--config`), and the defaults of
/// `ConfigOption.all`.
public struct AppConfiguration: Sendable {
    public var worker: WorkerConfiguration
    /// Where the ledger lives (may contain a password: never printed as is).
    public var ledgerURL: Secret
    public var ledgerRetention: Duration
    public var httpHost: String
    public var httpPort: Int
    public var logLevel: Logger.Level
    public var logFormat: LogFormat
    /// Per provider: endpoint, timeout, credentials.
    public var providers: [ProviderID: ProviderEndpoint]
    /// The shared HTTP client: connect and read timeouts, connections per host.
    public var httpConnectTimeout: Duration
    public var httpReadTimeout: Duration
    public var httpMaxConnectionsPerHost: Int
    /// The longest wait a provider's `Retry-After` can impose.
    public var providersMaxRetryAfter: Duration = .seconds(600)

    /// How log lines are written.
    public enum LogFormat: String, Sendable, Hashable, CaseIterable {
        case json, text, auto
    }

    /// What the configuration says about one provider.
    public struct ProviderEndpoint: Sendable, Hashable {
        public var baseURL: String?
        /// Upper bound of one call.
        public var timeout: Duration = .seconds(15)
        public var userAgent: String?
        public var accounts: [String: ProviderCredentials] = [:]
        public var defaultCredentials: ProviderCredentials?

        public init() {}
    }

    /// A setting that could not be used, with its key and environment variable.
    public struct Invalid: Error, CustomStringConvertible {
        public var key: String
        public var message: String

        public var description: String {
            "configuration \(self.key) (\(ConfigOption.environmentName(for: self.key))): \(self.message)"
        }
    }

    /// Reads and validates the configuration.
    public static func load(
        file: String? = nil,
        overrides: [String: String] = [:],
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) async throws -> AppConfiguration {
        var providers: [any ConfigProvider] = [
            InMemoryProvider(values: Dictionary(uniqueKeysWithValues: overrides.map { (AbsoluteConfigKey(ConfigKey($0.key)), ConfigValue(.string($0.value), isSecret: false)) })),
            KeyMappingProvider(upstream: EnvironmentVariablesProvider(environmentVariables: environment)) { key in
                key.prepending(["cancel-worker"])
            },
        ]
        if let file {
            guard FileManager.default.fileExists(atPath: file) else {
                throw Invalid(key: "--config", message: "no such file: \(file)")
            }
            providers.append(try await FileProvider<JSONSnapshot>(filePath: FilePath(file)))
        }
        return try Parser(reader: ConfigReader(providers: providers)).configuration()
    }

    /// The ledger URL with any password replaced, for logs.
    public var redactedLedgerURL: String {
        let url = self.ledgerURL.reveal()
        guard var components = URLComponents(string: url), components.password != nil else { return url }
        components.password = "REDACTED"
        return components.string ?? "[REDACTED]"
    }
}

/// Reads options as text whatever their JSON type, and parses them.
private struct Parser {
    let reader: ConfigReader

    func text(_ key: String) -> String? {
        let configKey = ConfigKey(key)
        if let value = self.reader.string(forKey: configKey, isSecret: true) { return value }
        if let value = self.reader.int(forKey: configKey) { return String(value) }
        if let value = self.reader.double(forKey: configKey) { return String(value) }
        if let value = self.reader.bool(forKey: configKey) { return String(value) }
        if let value = self.reader.stringArray(forKey: configKey, isSecret: true) { return value.joined(separator: ",") }
        return nil
    }

    func value(_ key: String) -> String? {
        guard let text = self.text(key)?.trimmingCharacters(in: .whitespaces), !text.isEmpty else { return nil }
        return text
    }

    func string(_ key: String, default fallback: String) -> String { self.value(key) ?? fallback }

    func int(_ key: String, default fallback: Int, range: ClosedRange<Int> = 1...Int.max) throws -> Int {
        guard let text = self.value(key) else { return fallback }
        guard let number = Int(text), range.contains(number) else {
            throw AppConfiguration.Invalid(key: key, message: "expected an integer in \(range.lowerBound)...\(range.upperBound), got \"\(text)\"")
        }
        return number
    }

    func duration(_ key: String, default fallback: Duration) throws -> Duration {
        guard let text = self.value(key) else { return fallback }
        guard let duration = Duration(humanReadable: text) else {
            throw AppConfiguration.Invalid(key: key, message: "expected a duration like 250ms, 5s, 1m, got \"\(text)\"")
        }
        return duration
    }

    func list(_ key: String) -> [String] {
        (self.value(key) ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    func rateLimit(_ key: String, default fallback: String) throws -> RateLimit? {
        let text = self.value(key) ?? fallback
        guard !text.isEmpty, text != "none" else { return nil }
        let parts = text.split(separator: ":")
        let rateText = parts[0].hasSuffix("/s") ? parts[0].dropLast(2) : parts[0]
        guard let rate = Double(rateText), rate > 0, parts.count <= 2 else {
            throw AppConfiguration.Invalid(key: key, message: "expected a rate like 10/s or 10/s:3 (burst 3), got \"\(text)\"")
        }
        var burst = 1
        if parts.count == 2 {
            guard let value = Int(parts[1]), value >= 1 else {
                throw AppConfiguration.Invalid(key: key, message: "burst must be a positive integer, got \"\(parts[1])\"")
            }
            burst = value
        }
        return RateLimit(requestsPerSecond: rate, burst: burst)
    }

    func configuration() throws -> AppConfiguration {
        let bootstrap = self.string("kafka.bootstrap-servers", default: "127.0.0.1:9092")
        var kafka = KafkaClientOptions(bootstrapServers: bootstrap)
        kafka.security = KafkaSecurity(
            protocol: self.string("kafka.security-protocol", default: "plaintext"),
            saslMechanism: self.value("kafka.sasl-mechanism"),
            saslUsername: self.value("kafka.sasl-username"),
            saslPassword: self.value("kafka.sasl-password"),
            sslCALocation: self.value("kafka.ssl-ca-location")
        )
        for pair in self.list("kafka.properties") {
            let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else {
                throw AppConfiguration.Invalid(key: "kafka.properties", message: "expected name=value, got \"\(pair)\"")
            }
            kafka.additionalProperties[parts[0]] = parts[1]
        }

        var worker = WorkerConfiguration(kafka: kafka)
        worker.groupID = self.string("group-id", default: worker.groupID)
        worker.groupInstanceID = self.value("group-instance-id")
        worker.workerID = self.string("worker-id", default: worker.workerID)
        let commands = self.string("topics.commands", default: TopicNames.default.commands)
        worker.topics = TopicNames(
            commands: commands,
            outcomes: self.string("topics.outcomes", default: TopicNames.default.outcomes),
            deadLetters: self.string("topics.dead-letters", default: TopicNames.default.deadLetters),
            retryPrefix: self.value("topics.retry-prefix")
        )
        worker.maxInFlight = try self.int("max-in-flight", default: worker.maxInFlight)
        if self.value("partition-concurrency") != nil {
            worker.partitionConcurrency = try self.int("partition-concurrency", default: 1)
        }
        worker.maxCommandBytes = try self.int("max-command-bytes", default: worker.maxCommandBytes, range: 1_024...10_000_000)
        worker.consumerBufferCapacity = try self.int("consumer-buffer", default: worker.consumerBufferCapacity, range: 2...1_000_000)
        worker.sessionTimeout = try self.duration("session-timeout", default: worker.sessionTimeout)
        worker.claimLease = try self.duration("claim-lease", default: worker.claimLease)
        worker.drainTimeout = try self.duration("drain-timeout", default: worker.drainTimeout)
        worker.stallTimeout = try self.duration("stall-timeout", default: worker.stallTimeout)
        worker.commitInterval = try self.duration("commit-interval", default: worker.commitInterval)
        worker.handoverDelay = try self.duration("handover-delay", default: worker.handoverDelay)

        var retry = RetryPolicy()
        if self.value("retry.tiers") != nil {
            retry.tiers = try self.list("retry.tiers").map { text in
                guard let tier = RetryTier(text) else {
                    throw AppConfiguration.Invalid(key: "retry.tiers", message: "\"\(text)\" is not a duration")
                }
                return tier
            }
        }
        retry.maxAttempts = try self.int("retry.max-attempts", default: retry.maxAttempts)
        retry.inProcessAttempts = try self.int("retry.in-process-attempts", default: retry.inProcessAttempts)
        retry.baseBackoff = try self.duration("retry.base-backoff", default: retry.baseBackoff)
        retry.maxInProcessBackoff = try self.duration("retry.max-in-process-backoff", default: retry.maxInProcessBackoff)
        worker.retry = retry

        var limits: [ProviderID: RateLimit] = [:]
        for provider in ProviderID.allCases {
            let key = "rate-limits.\(provider.rawValue)"
            let fallback = ConfigOption.all.first { $0.key == key }?.defaultValue ?? ""
            limits[provider] = try self.rateLimit(key, default: fallback)
        }
        worker.rateLimits = limits
        worker.rateLimitJitterAllowance = try self.duration("rate-limit-jitter-allowance", default: worker.rateLimitJitterAllowance)

        let levelText = self.string("log.level", default: "info")
        guard let level = Logger.Level(rawValue: levelText) else {
            throw AppConfiguration.Invalid(key: "log.level", message: "unknown level \"\(levelText)\"")
        }
        let formatText = self.string("log.format", default: "auto")
        guard let format = AppConfiguration.LogFormat(rawValue: formatText) else {
            throw AppConfiguration.Invalid(key: "log.format", message: "expected json, text or auto, got \"\(formatText)\"")
        }

        var providers: [ProviderID: AppConfiguration.ProviderEndpoint] = [:]
        let sharedBaseURL = self.value("providers.base-url")
        for provider in ProviderID.allCases {
            let prefix = "providers.\(provider.rawValue)"
            var endpoint = AppConfiguration.ProviderEndpoint()
            endpoint.baseURL = self.value("\(prefix).base-url") ?? sharedBaseURL
            endpoint.timeout = try self.duration("\(prefix).timeout", default: endpoint.timeout)
            endpoint.userAgent = self.value("\(prefix).user-agent")
            for account in self.list("\(prefix).accounts") {
                guard let key = self.value("\(prefix).credentials.\(account).key") else {
                    throw AppConfiguration.Invalid(key: "\(prefix).credentials.\(account).key", message: "account \(account) is listed but has no key")
                }
                endpoint.accounts[account] = ProviderCredentials(key: key, secret: self.value("\(prefix).credentials.\(account).secret"))
            }
            if let key = self.value("\(prefix).default-key") {
                guard provider != .futures else {
                    throw AppConfiguration.Invalid(key: "\(prefix).default-key", message: "futures keys belong to each user: list them per account")
                }
                endpoint.defaultCredentials = ProviderCredentials(key: key, secret: self.value("\(prefix).default-secret"))
            }
            providers[provider] = endpoint
        }

        // A claim must outlive the call made under it: the send-time guard renews the lease right
        // before a call leaves, so the call's own timeout is what the lease must cover (plus a
        // margin for the ledger write and clocks).
        if let (provider, endpoint) = providers.max(by: { $0.value.timeout < $1.value.timeout }),
            worker.claimLease < endpoint.timeout + .seconds(2)
        {
            throw AppConfiguration.Invalid(
                key: "claim-lease",
                message: "\(worker.claimLease) is shorter than the longest provider timeout (providers.\(provider.rawValue).timeout = \(endpoint.timeout)) + 2s: a claim must outlive the call made under it"
            )
        }
        let maxRetryAfter = try self.duration("providers.max-retry-after", default: .seconds(600))
        guard maxRetryAfter >= .seconds(1) else {
            throw AppConfiguration.Invalid(key: "providers.max-retry-after", message: "must be at least 1s")
        }
        worker.ledgerRetention = try self.duration("ledger.retention", default: worker.ledgerRetention)
        var configuration = AppConfiguration(
            worker: worker,
            ledgerURL: Secret(self.string("ledger.url", default: "sqlite:cancel-worker-ledger.db")),
            ledgerRetention: worker.ledgerRetention,
            httpHost: self.string("http.host", default: "0.0.0.0"),
            httpPort: try self.int("http.port", default: 9464, range: 0...65_535),
            logLevel: level,
            logFormat: format,
            providers: providers,
            httpConnectTimeout: try self.duration("http-client.connect-timeout", default: .seconds(2)),
            httpReadTimeout: try self.duration("http-client.read-timeout", default: .seconds(10)),
            httpMaxConnectionsPerHost: try self.int("http-client.max-connections-per-host", default: 64)
        )
        configuration.providersMaxRetryAfter = maxRetryAfter
        return configuration
    }
}
