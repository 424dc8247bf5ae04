public import CancelCore
import Configuration
public import Foundation
import Kafka
import Ledger
public import Logging
import Providers
import SystemPackage
public import Worker

/// Everything `cancel-worker run` reads, from (highest precedence first) `--set key=value`,
/// environment variables (`CANCEL_WORKER_…`), a JSON file (`--config`), and the defaults.
///
/// Each default exists once, as a typed value: here, in `WorkerConfiguration`, `RetryPolicy`,
/// `ConsoleConfiguration` or the providers' settings. The parser starts from `defaults`, and
/// `ConfigOption.all` (the reference) prints the same values.
public struct AppConfiguration: Sendable {
    public var worker: WorkerConfiguration
    /// Where the ledger lives (may contain a password: never printed as is).
    public var ledgerURL: Secret
    /// Ledger entries older than this are purged: the worker's own setting, read by replays too.
    public var ledgerRetention: Duration {
        get { self.worker.ledgerRetention }
        set { self.worker.ledgerRetention = newValue }
    }
    public var httpHost = "0.0.0.0"
    public var httpPort = 9464
    public var logLevel: Logger.Level = .info
    public var logFormat: LogFormat = .auto
    /// Per provider: endpoint, timeout, credentials.
    public var providers: [ProviderID: ProviderEndpoint] = [:]
    /// The shared HTTP client: connect and read timeouts, connections per host.
    public var httpConnectTimeout = HTTPClientSettings().connectTimeout
    public var httpReadTimeout = HTTPClientSettings().readTimeout
    public var httpMaxConnectionsPerHost = HTTPClientSettings().maxConnectionsPerHost
    /// The longest wait a provider's `Retry-After` can impose.
    public var providersMaxRetryAfter = ProviderEndpoint.providerDefaults.maxRetryAfter
    /// What `cancel-worker console` serves and reads.
    public var console = ConsoleConfiguration()

    /// Every other setting at its default.
    public init(worker: WorkerConfiguration, ledgerURL: Secret) {
        self.worker = worker
        self.ledgerURL = ledgerURL
    }

    /// The configuration nothing overrides: what the parser starts from and the reference documents.
    public static func defaults(environment: [String: String] = ProcessInfo.processInfo.environment) -> Self {
        AppConfiguration(
            worker: WorkerConfiguration(bootstrapServers: "127.0.0.1:9092"),
            ledgerURL: Secret(Self.defaultLedgerURL(environment: environment)))
    }

    /// How log lines are written.
    public enum LogFormat: String, Sendable, Hashable, CaseIterable {
        case json, text, auto
    }

    /// What the configuration says about one provider.
    public struct ProviderEndpoint: Sendable, Hashable {
        public var baseURL: String?
        /// Upper bound of one call.
        public var timeout = ProviderEndpoint.providerDefaults.timeout
        public var userAgent: String?
        public var accounts: [String: ProviderCredentials] = [:]
        public var defaultCredentials: ProviderCredentials?

        public init() {}

        /// What every provider's settings start from (timeout, longest `Retry-After`).
        static let providerDefaults = ProviderSettings(baseURL: "")
    }

    /// A setting that could not be used. `key` is the setting's key (or the variable or file at
    /// fault); the description names where it came from: key and variable, file, or variable.
    public struct Invalid: Error, CustomStringConvertible {
        public var key: String
        public var message: String
        /// What the message is about, as printed: `max-in-flight (CANCEL_WORKER_MAX_IN_FLIGHT)`,
        /// `file /etc/cw.json (--config)`, `environment variable CANCEL_WORKER_X`.
        public var subject: String

        public init(key: String, message: String) {
            self.init(key: key, subject: "\(key) (\(ConfigOption.environmentName(for: key)))", message: message)
        }

        init(key: String, subject: String, message: String) {
            self.key = key
            self.subject = subject
            self.message = message
        }

        public var description: String {
            "configuration \(self.subject): \(self.message)"
        }
    }

    /// Reads and validates the configuration: the one check `run`, `config` and every tool use.
    /// Unknown keys (`--set`, the file) and unknown `CANCEL_WORKER_*` variables are refused with
    /// the closest known name; the file (`file`, else `CANCEL_WORKER_CONFIG`) must exist and be a
    /// JSON object; every value is parsed and cross-checked, and Kafka client properties are
    /// given to librdkafka once, so whatever this accepts `run` starts with.
    public static func load(
        file: String? = nil,
        overrides: [String: String] = [:],
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) async throws -> AppConfiguration {
        for key in overrides.keys.sorted() where !ConfigOption.isKnownKey(key) {
            throw Invalid(
                key: key, subject: "--set \(key)",
                message: "no such setting\(ConfigOption.hint(ConfigOption.suggestion(forKey: key)))"
            )
        }
        if let name = ConfigOption.unknownEnvironmentNames(in: environment).first {
            throw Invalid(
                key: name, subject: "environment variable \(name)",
                message: "no setting reads it\(ConfigOption.hint(ConfigOption.suggestion(forEnvironmentName: name)))"
            )
        }
        var providers: [any ConfigProvider] = [
            InMemoryProvider(
                values: Dictionary(
                    uniqueKeysWithValues: overrides.map {
                        (AbsoluteConfigKey(ConfigKey($0.key)), ConfigValue(.string($0.value), isSecret: false))
                    })),
            KeyMappingProvider(upstream: EnvironmentVariablesProvider(environmentVariables: environment)) { key in
                key.prepending(["cancel-worker"])
            },
        ]
        if let path = file ?? environment["CANCEL_WORKER_CONFIG"] {
            let via = file != nil ? "--config" : "CANCEL_WORKER_CONFIG"
            try ConfigurationFile.check(path: path, via: via)
            do {
                providers.append(try await FileProvider<JSONSnapshot>(filePath: FilePath(path)))
            } catch {
                throw Invalid(key: via, subject: "file \(path) (\(via))", message: "cannot be read: \(error)")
            }
        }
        let parser = Parser(reader: ConfigReader(providers: providers), environment: environment)
        var configuration = try parser.configuration()
        configuration.effectiveSettings = parser.effective
        try configuration.checkKafkaProperties()
        return configuration
    }

    /// Every setting as it takes effect (defaults included, durations with their unit, secrets
    /// redacted), by key: what `cancel-worker config` prints.
    public internal(set) var effectiveSettings: [String: String] = [:]

    /// Where the ledger lives unless `ledger.url` says otherwise: `$XDG_STATE_HOME/cancel-worker/ledger.db`
    /// (`~/.local/state` when that is unset or relative), so every directory sees the same ledger.
    public static func defaultLedgerURL(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        let state: String
        if let xdg = environment["XDG_STATE_HOME"], xdg.hasPrefix("/") {
            state = xdg
        } else {
            let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
            state = home + "/.local/state"
        }
        return "sqlite:\(state)/cancel-worker/ledger.db"
    }

    /// The file of a SQLite ledger (nil for memory and PostgreSQL ledgers).
    public var sqliteLedgerPath: String? {
        let url = self.ledgerURL.reveal()
        guard url.hasPrefix("sqlite:"), url != "sqlite::memory:" else { return nil }
        var path = String(url.dropFirst("sqlite:".count))
        if path.hasPrefix("//") { path = String(path.dropFirst(2)) }
        return path
    }

    /// librdkafka's verdict on the client properties (security protocol, SASL, TLS files, raw
    /// properties), asked once by creating and dropping a client that sends nothing.
    func checkKafkaProperties() throws {
        let kafka = self.worker.kafka
        guard kafka.security != .plaintext || !kafka.additionalProperties.isEmpty else { return }
        do {
            _ = try KafkaAdminClient(
                options: kafka, logger: Logger(label: "config-check") { _ in SwiftLogNoOpLogHandler() })
        } catch {
            let property = error.message.split(separator: " ").dropFirst().first.map { String($0.dropLast()) } ?? ""
            let key = Self.kafkaKeys[property] ?? "kafka.properties"
            throw Invalid(key: key, message: "librdkafka refuses it: \(error.message)")
        }
    }

    private static let kafkaKeys = [
        "security.protocol": "kafka.security-protocol", "sasl.mechanism": "kafka.sasl-mechanism",
        "sasl.username": "kafka.sasl-username", "sasl.password": "kafka.sasl-password",
        "ssl.ca.location": "kafka.ssl-ca-location",
    ]

    /// The ledger URL with any password replaced, for logs.
    public var redactedLedgerURL: String {
        let url = self.ledgerURL.reveal()
        guard var components = URLComponents(string: url), components.password != nil else { return url }
        components.password = "REDACTED"
        return components.string ?? "[REDACTED]"
    }
}

/// Reads options as text whatever their JSON type, parses them, and notes each effective value
/// (for `cancel-worker config`).
private final class Parser {
    let reader: ConfigReader
    let environment: [String: String]
    /// Key → the value in effect, as printed: durations with their unit, secrets redacted.
    private(set) var effective: [String: String] = [:]

    init(reader: ConfigReader, environment: [String: String]) {
        self.reader = reader
        self.environment = environment
    }

    func text(_ key: String) -> String? {
        let configKey = ConfigKey(key)
        if let value = self.reader.string(forKey: configKey, isSecret: true) { return value }
        if let value = self.reader.int(forKey: configKey) { return String(value) }
        if let value = self.reader.double(forKey: configKey) { return String(value) }
        if let value = self.reader.bool(forKey: configKey) { return String(value) }
        if let value = self.reader.stringArray(forKey: configKey, isSecret: true) {
            return value.joined(separator: ",")
        }
        return nil
    }

    /// Notes the value in effect for `key`, redacted if the key holds a secret.
    func note(_ key: String, _ text: String) {
        self.effective[key] = ConfigOption.isSecretKey(key) && !text.isEmpty ? "[REDACTED]" : text
    }

    func value(_ key: String) -> String? {
        guard let text = self.text(key)?.trimmingCharacters(in: .whitespaces), !text.isEmpty else { return nil }
        self.note(key, text)
        return text
    }

    func string(_ key: String, default fallback: String) -> String {
        let text = self.value(key) ?? fallback
        self.note(key, text)
        return text
    }

    func int(_ key: String, default fallback: Int, range: ClosedRange<Int> = 1...Int.max) throws -> Int {
        guard let text = self.value(key) else {
            self.note(key, String(fallback))
            return fallback
        }
        guard let number = Int(text), range.contains(number) else {
            throw AppConfiguration.Invalid(
                key: key, message: "expected an integer in \(range.lowerBound)...\(range.upperBound), got \"\(text)\"")
        }
        return number
    }

    func duration(_ key: String, default fallback: Duration) throws -> Duration {
        var duration = fallback
        if let text = self.value(key) {
            guard let parsed = Duration(humanReadable: text) else {
                throw AppConfiguration.Invalid(
                    key: key, message: "expected a duration like 250ms, 5s, 1m, got \"\(text)\"")
            }
            duration = parsed
        }
        self.note(key, duration.settingText)
        return duration
    }

    func list(_ key: String) -> [String] {
        (self.value(key) ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter {
            !$0.isEmpty
        }
    }

    func rateLimit(_ key: String, default fallback: RateLimit?) throws -> RateLimit? {
        guard let text = self.value(key) else {
            self.note(key, fallback?.settingText ?? "none")
            return fallback
        }
        guard text != "none" else { return nil }
        let parts = text.split(separator: ":")
        let rateText = parts[0].hasSuffix("/s") ? parts[0].dropLast(2) : parts[0]
        guard let rate = Double(rateText), rate > 0, parts.count <= 2 else {
            throw AppConfiguration.Invalid(
                key: key, message: "expected a rate like 10/s or 10/s:3 (burst 3), got \"\(text)\"")
        }
        var burst = 1
        if parts.count == 2 {
            guard let value = Int(parts[1]), value >= 1 else {
                throw AppConfiguration.Invalid(
                    key: key, message: "burst must be a positive integer, got \"\(parts[1])\"")
            }
            burst = value
        }
        return RateLimit(requestsPerSecond: rate, burst: burst)
    }

    func configuration() throws -> AppConfiguration {
        // A setting given as empty (`CANCEL_WORKER_KAFKA_BOOTSTRAP_SERVERS=` from a command
        // substitution that printed nothing) is a mistake, not a request for the default: a
        // worker that quietly dials 127.0.0.1:9092 instead logs "connection refused" forever.
        for option in ConfigOption.all where !option.key.contains("<") && !option.defaultValue.isEmpty {
            if let text = self.text(option.key), text.trimmingCharacters(in: .whitespaces).isEmpty {
                throw AppConfiguration.Invalid(
                    key: option.key,
                    message: "is set but empty; give a value, or unset it for the default (\(option.defaultValue))"
                )
            }
        }
        let defaults = AppConfiguration.defaults(environment: self.environment)
        let bootstrap = self.string(
            "kafka.bootstrap-servers", default: defaults.worker.kafka.bootstrapServers.joined(separator: ","))
        var kafka = KafkaClientOptions(bootstrapServers: bootstrap)
        guard !kafka.bootstrapServers.isEmpty else {
            throw AppConfiguration.Invalid(
                key: "kafka.bootstrap-servers", message: "expected host:port[,host:port…], got \"\(bootstrap)\"")
        }
        let securityProtocol = self.string("kafka.security-protocol", default: defaults.worker.kafka.security.protocol)
        let protocols = ["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"]
        guard protocols.contains(securityProtocol.lowercased()) else {
            throw AppConfiguration.Invalid(
                key: "kafka.security-protocol",
                message: "expected \(protocols.joined(separator: ", ")), got \"\(securityProtocol)\""
            )
        }
        kafka.security = KafkaSecurity(
            protocol: securityProtocol,
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
        self.note(
            "kafka.properties",
            kafka.additionalProperties.sorted { $0.key < $1.key }.map { name, value in
                let secret = ["password", "secret", "key", "oauthbearer"].contains { name.contains($0) }
                return "\(name)=\(secret ? "[REDACTED]" : value)"
            }.joined(separator: ",")
        )

        var worker = defaults.worker
        worker.kafka = kafka
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
        worker.maxCommandBytes = try self.int(
            "max-command-bytes", default: worker.maxCommandBytes, range: 1_024...10_000_000)
        worker.consumerBufferCapacity = try self.int(
            "consumer-buffer", default: worker.consumerBufferCapacity, range: 2...1_000_000)
        worker.sessionTimeout = try self.duration("session-timeout", default: worker.sessionTimeout)
        worker.claimLease = try self.duration("claim-lease", default: worker.claimLease)
        worker.drainTimeout = try self.duration("drain-timeout", default: worker.drainTimeout)
        worker.stallTimeout = try self.duration("stall-timeout", default: worker.stallTimeout)
        worker.commitInterval = try self.duration("commit-interval", default: worker.commitInterval)
        worker.handoverDelay = try self.duration("handover-delay", default: worker.handoverDelay)

        var retry = worker.retry
        if self.value("retry.tiers") != nil {
            retry.tiers = try self.list("retry.tiers").map { text in
                guard let tier = RetryTier(text) else {
                    throw AppConfiguration.Invalid(key: "retry.tiers", message: "\"\(text)\" is not a duration")
                }
                return tier
            }
        }
        self.note("retry.tiers", retry.tiers.map(\.name).joined(separator: ","))
        retry.maxAttempts = try self.int("retry.max-attempts", default: retry.maxAttempts)
        retry.inProcessAttempts = try self.int("retry.in-process-attempts", default: retry.inProcessAttempts)
        retry.baseBackoff = try self.duration("retry.base-backoff", default: retry.baseBackoff)
        retry.maxInProcessBackoff = try self.duration(
            "retry.max-in-process-backoff", default: retry.maxInProcessBackoff)
        worker.retry = retry

        var limits: [ProviderID: RateLimit] = [:]
        for provider in ProviderID.allCases {
            limits[provider] = try self.rateLimit(
                "rate-limits.\(provider.rawValue)", default: worker.rateLimits[provider])
        }
        worker.rateLimits = limits
        worker.rateLimitJitterAllowance = try self.duration(
            "rate-limit-jitter-allowance", default: worker.rateLimitJitterAllowance)

        let levelText = self.string("log.level", default: defaults.logLevel.rawValue)
        guard let level = Logger.Level(rawValue: levelText) else {
            throw AppConfiguration.Invalid(key: "log.level", message: "unknown level \"\(levelText)\"")
        }
        let formatText = self.string("log.format", default: defaults.logFormat.rawValue)
        guard let format = AppConfiguration.LogFormat(rawValue: formatText) else {
            throw AppConfiguration.Invalid(
                key: "log.format", message: "expected json, text or auto, got \"\(formatText)\"")
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
                    throw AppConfiguration.Invalid(
                        key: "\(prefix).credentials.\(account).key",
                        message: "account \(account) is listed but has no key")
                }
                endpoint.accounts[account] = ProviderCredentials(
                    key: key, secret: self.value("\(prefix).credentials.\(account).secret"))
            }
            if let key = self.value("\(prefix).default-key") {
                guard provider != .futures else {
                    throw AppConfiguration.Invalid(
                        key: "\(prefix).default-key", message: "futures keys belong to each user: list them per account"
                    )
                }
                endpoint.defaultCredentials = ProviderCredentials(
                    key: key, secret: self.value("\(prefix).default-secret"))
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
                message:
                    "\(worker.claimLease) is shorter than the longest provider timeout (providers.\(provider.rawValue).timeout = \(endpoint.timeout)) + 2s: a claim must outlive the call made under it"
            )
        }
        let maxRetryAfter = try self.duration("providers.max-retry-after", default: defaults.providersMaxRetryAfter)
        guard maxRetryAfter >= .seconds(1) else {
            throw AppConfiguration.Invalid(key: "providers.max-retry-after", message: "must be at least 1s")
        }
        worker.ledgerRetention = try self.duration("ledger.retention", default: worker.ledgerRetention)
        let ledgerURL = self.value("ledger.url") ?? defaults.ledgerURL.reveal()
        try Self.checkLedgerURL(ledgerURL)
        self.note("ledger.url", LedgerFactory.redact(ledgerURL))
        var configuration = AppConfiguration(worker: worker, ledgerURL: Secret(ledgerURL))
        configuration.httpHost = self.string("http.host", default: defaults.httpHost)
        configuration.httpPort = try self.int("http.port", default: defaults.httpPort, range: 0...65_535)
        configuration.logLevel = level
        configuration.logFormat = format
        configuration.providers = providers
        configuration.httpConnectTimeout = try self.duration(
            "http-client.connect-timeout", default: defaults.httpConnectTimeout)
        configuration.httpReadTimeout = try self.duration("http-client.read-timeout", default: defaults.httpReadTimeout)
        configuration.httpMaxConnectionsPerHost = try self.int(
            "http-client.max-connections-per-host", default: defaults.httpMaxConnectionsPerHost)
        configuration.providersMaxRetryAfter = maxRetryAfter
        configuration.console = try self.console()
        return configuration
    }

    /// The `console.*` settings. The token is checked where it is needed (`cancel-worker console`),
    /// so a worker's configuration without one stays valid.
    func console() throws -> ConsoleConfiguration {
        var console = ConsoleConfiguration()
        console.host = self.string("console.host", default: console.host)
        console.port = try self.int("console.port", default: console.port, range: 0...65_535)
        if let token = self.value("console.token") { console.token = Secret(token) }
        let workers = self.list("console.workers")
        if !workers.isEmpty {
            console.workers = try workers.map { text in
                guard let url = ConsoleConfiguration.metricsURL(text) else {
                    throw AppConfiguration.Invalid(
                        key: "console.workers", message: "expected host:port or http://host:port, got \"\(text)\"")
                }
                return url
            }
        }
        self.note("console.workers", workers.isEmpty ? console.workersText : workers.joined(separator: ","))
        console.scrapeInterval = try self.duration("console.scrape-interval", default: console.scrapeInterval)
        guard console.scrapeInterval >= .milliseconds(100) else {
            throw AppConfiguration.Invalid(key: "console.scrape-interval", message: "must be at least 100ms")
        }
        let rateText = self.string("console.replay-rate", default: console.replayRate.settingText)
        guard let rate = Double(rateText), rate > 0 else {
            throw AppConfiguration.Invalid(
                key: "console.replay-rate",
                message: "expected a positive number of records per second, got \"\(rateText)\"")
        }
        console.replayRate = rate
        console.maxReplays = try self.int("console.max-replays", default: console.maxReplays)
        return console
    }

    /// The forms `LedgerFactory` opens; a PostgreSQL URL is parsed and its TLS files loaded
    /// (nothing connects), a SQLite file is not touched.
    static func checkLedgerURL(_ url: String) throws {
        if url == "memory:" { return }
        if url.hasPrefix("sqlite:") {
            guard !url.dropFirst("sqlite:".count).isEmpty else {
                throw AppConfiguration.Invalid(
                    key: "ledger.url", message: "sqlite: needs a path, e.g. sqlite:/var/lib/cancel-worker/ledger.db")
            }
            return
        }
        guard url.hasPrefix("postgres://") || url.hasPrefix("postgresql://") else {
            throw AppConfiguration.Invalid(
                key: "ledger.url",
                message:
                    "unsupported ledger URL \(LedgerFactory.redact(url)); use sqlite:PATH, sqlite::memory:, memory: or postgres://user:password@host:port/db"
            )
        }
        do {
            _ = try LedgerFactory.make(
                url: url, logger: Logger(label: "config-check") { _ in SwiftLogNoOpLogHandler() })
        } catch {
            throw AppConfiguration.Invalid(key: "ledger.url", message: "\(error)")
        }
    }
}
