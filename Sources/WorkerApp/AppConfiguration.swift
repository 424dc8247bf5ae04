public import CancelCore
import Configuration
public import Foundation
import Kafka
public import Ledger
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
    /// How long a PostgreSQL ledger statement may go unanswered before it fails as unavailable.
    public var ledgerStatementTimeout = PostgresLedger.defaultStatementTimeout
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
    /// The shared HTTP client: connect and read timeouts, connections per host, send window.
    public var httpConnectTimeout = HTTPClientSettings().connectTimeout
    public var httpReadTimeout = HTTPClientSettings().readTimeout
    public var httpMaxConnectionsPerHost = HTTPClientSettings().maxConnectionsPerHost
    /// How soon after the send-time guard a request must reach its connection (else not sent).
    public var httpSendWindow = HTTPClientSettings().sendWindow
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
        let parser = ConfigurationParser(reader: ConfigReader(providers: providers), environment: environment)
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

    /// The ledger `ledger.url` names, with this configuration's statement timeout: what the
    /// worker, the console and `replay` open.
    public func makeLedger(logger: Logger) throws -> LedgerFactory.Made {
        try LedgerFactory.make(
            url: self.ledgerURL.reveal(), logger: logger, statementTimeout: self.ledgerStatementTimeout)
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
