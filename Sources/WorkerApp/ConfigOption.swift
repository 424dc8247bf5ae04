import CancelCore
import Providers

/// One setting of `cancel-worker run`: its key (in the JSON file, and for `--set`), its
/// environment variable, default and meaning. The table drives parsing, `cancel-worker config`
/// and the README's configuration reference (a test keeps them equal). A default here is the
/// typed default the parser starts from (`AppConfiguration.defaults`), printed as a setting.
public struct ConfigOption: Sendable, Hashable {
    public var key: String
    public var defaultValue: String
    public var help: String
    /// Redacted wherever configuration is printed.
    public var isSecret: Bool

    public init(_ key: String, default defaultValue: String, _ help: String, secret: Bool = false) {
        self.key = key
        self.defaultValue = defaultValue
        self.help = help
        self.isSecret = secret
    }

    /// The environment variable: `CANCEL_WORKER_` + the key in upper case, `.`/`-` → `_`.
    public var environmentName: String {
        ConfigOption.environmentName(for: self.key)
    }

    /// `CANCEL_WORKER_` + `key` in upper case, every character but a letter or digit as `_`.
    /// Placeholders stay visible (`providers.<id>.accounts` → `CANCEL_WORKER_PROVIDERS_<ID>_ACCOUNTS`),
    /// so the reference shows the form that works once `<ID>` is replaced.
    public static func environmentName(for key: String) -> String {
        var name = "CANCEL_WORKER_"
        var previous: Character?
        for character in key {
            // As swift-configuration's environment provider reads a key: a camelCase word
            // boundary (`traderOne`) is an underscore (`TRADER_ONE`).
            if previous?.isLowercase == true && character.isUppercase { name += "_" }
            previous = character
            if character.isLetter || character.isNumber || character == "<" || character == ">" {
                name += character.uppercased()
            } else {
                name += "_"
            }
        }
        return name
    }
}

extension ConfigOption {
    /// Every fixed option. Per-provider and per-account options follow the patterns in
    /// `providerOptionPatterns`.
    public static let all: [ConfigOption] = {
        // The defaults are the typed values the parser starts from, printed as settings are written.
        let app = AppConfiguration.defaults()
        let worker = app.worker
        let kafka = worker.kafka
        let retry = worker.retry
        let console = app.console
        func rateLimit(_ provider: ProviderID) -> String { worker.rateLimits[provider]?.settingText ?? "" }
        return [
            ConfigOption(
                "kafka.bootstrap-servers", default: kafka.bootstrapServers.joined(separator: ","),
                "Kafka bootstrap servers, comma separated."),
            ConfigOption(
                "kafka.security-protocol", default: kafka.security.protocol,
                "plaintext, ssl, sasl_plaintext or sasl_ssl."),
            ConfigOption("kafka.sasl-mechanism", default: "", "SASL mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)."),
            ConfigOption("kafka.sasl-username", default: "", "SASL user name."),
            ConfigOption("kafka.sasl-password", default: "", "SASL password.", secret: true),
            ConfigOption("kafka.ssl-ca-location", default: "", "CA certificate file for TLS."),
            ConfigOption(
                "kafka.properties", default: "",
                "Extra librdkafka properties, `name=value` comma separated (applied last; values cannot contain commas). Properties the worker sets and relies on are refused, naming the setting to use instead: offset commits (`enable.auto.commit`, `enable.auto.offset.store`), `auto.offset.reset`, `group.id`, `session.timeout.ms`, `fetch.wait.max.ms`, `acks`, `enable.idempotence`, `partitioner`, …"
            ),
            ConfigOption(
                "kafka.fetch-wait", default: worker.fetchWaitMax.settingText,
                "How long a broker may hold a fetch that finds no record (`fetch.wait.max.ms`, Kafka's default). A broker answers as soon as a record arrives, so this sets only how often an idle worker wakes; librdkafka's mock cluster (`dev-cluster`) holds every empty fetch this long, 100ms suits it."
            ),
            ConfigOption(
                "kafka.retry-fetch-wait", default: "",
                "The same for the retry tiers' group (`<group-id>-retry`); empty: kafka.fetch-wait. Its topics are mostly empty and their records wait their tier's delay anyway, so a longer wait here spares an idle worker's wake-ups when kafka.fetch-wait is short."
            ),
            ConfigOption(
                "group-id", default: worker.groupID,
                "Consumer group shared by all replicas; the retry tiers are consumed in `<group-id>-retry`."),
            ConfigOption(
                "group-instance-id", default: "",
                "Static membership id (e.g. the pod name); empty for dynamic membership."),
            ConfigOption(
                "worker-id", default: "<hostname>-<pid>",
                "This replica's id in outcomes, dead letters, claims and logs."),
            ConfigOption(
                "topics.commands", default: worker.topics.commands,
                "Commands topic. Each topic (commands, outcomes, dead letters, retry tiers) must be distinct."),
            ConfigOption("topics.outcomes", default: worker.topics.outcomes, "Outcomes topic."),
            ConfigOption("topics.dead-letters", default: worker.topics.deadLetters, "Dead-letter topic."),
            ConfigOption(
                "topics.retry-prefix", default: "<topics.commands>.retry", "Retry tier topics are `<prefix>.<tier>`."),
            ConfigOption(
                "max-in-flight", default: String(worker.maxInFlight),
                "Commands in process at once; beyond it intake waits and fetching pauses. Past three quarters of it, a commands partition holding more than its share (1.5 × max-in-flight ÷ the commands partitions owned) is paused until half of its commands are done or in-flight is below five eighths, so one user's backlog cannot stall the others. A provider's commands beyond twice its connections, and a rate-limited user's commands beyond its burst + 1, wait queued as their record's bytes and ~50 more (~300 bytes for a typical command); the others cost ~12 KB each. At most 1,000,000."
            ),
            ConfigOption(
                "partition-concurrency", default: "",
                "Commands in process at once per partition; empty: no bound (1: a sequential consumer)."),
            ConfigOption(
                "max-command-bytes", default: String(worker.maxCommandBytes),
                "Command records larger than this are dead-lettered unread."),
            ConfigOption(
                "consumer-buffer", default: String(worker.consumerBufferCapacity),
                "Records buffered by the consumer before it pauses fetching."),
            ConfigOption(
                "session-timeout", default: worker.sessionTimeout.settingText, "Group session timeout, `1s` to `300s`."),
            ConfigOption(
                "claim-lease", default: worker.claimLease.settingText,
                "How long a ledger claim shields a key if its worker dies."),
            ConfigOption(
                "drain-timeout", default: worker.drainTimeout.settingText,
                "Time a revoked partition or a shutdown gets to finish in-flight calls; at least 1s."),
            ConfigOption(
                "stall-timeout", default: worker.stallTimeout.settingText,
                "`/health/ready` fails when records wait in owned partitions and none was consumed for this long (0s: never)."
            ),
            ConfigOption(
                "stranded-partition-timeout", default: worker.strandTimeout.settingText,
                "An owned partition that fetches nothing while records wait in it for this long has its fetch restarted where it was (librdkafka #2190; checked every third of it; 0s: never, else at least 3s)."
            ),
            ConfigOption(
                "commit-interval", default: worker.commitInterval.settingText,
                "How often finished offsets are committed while records are in process (an idle worker commits nothing until the next record); `10ms` to `60s`."
            ),
            ConfigOption(
                "retry.tiers", default: retry.tiers.map(\.name).joined(separator: ","),
                "Retry tiers (delays), in order; the last repeats."),
            ConfigOption(
                "retry.max-attempts", default: String(retry.maxAttempts),
                "Provider calls per key before it is dead-lettered (at most 1,000)."),
            ConfigOption(
                "retry.in-process-attempts", default: String(retry.inProcessAttempts),
                "Calls per delivery before the command moves to the next tier."),
            ConfigOption(
                "retry.base-backoff", default: retry.baseBackoff.settingText,
                "First in-process backoff (doubles, full jitter); at least 1ms."),
            ConfigOption(
                "retry.max-in-process-backoff", default: retry.maxInProcessBackoff.settingText,
                "Longer waits go to a retry tier."),
            ConfigOption(
                "rate-limits.feee", default: rateLimit(.feee),
                "Per-account limit at feee, e.g. `5/s` or `5/s:2` (burst 2: a token bucket of 2, for a provider that documents one; then any 5 + 2 consecutive calls, not 5 + 1, leave at least 1 s + the jitter allowance apart): from about one a day (`0.0000116/s`) to `1000000/s`, bursts up to 10,000; empty: none."
            ),
            ConfigOption(
                "rate-limits.fungies", default: rateLimit(.fungies), "Per-account limit at Fungies; empty: none."),
            ConfigOption(
                "rate-limits.taker", default: rateLimit(.taker), "Per-account limit at the taker API; empty: none."),
            ConfigOption(
                "rate-limits.fastpod", default: rateLimit(.fastpod), "Per-account limit at FastPOD; empty: none."),
            ConfigOption(
                "rate-limits.futures", default: rateLimit(.futures),
                "Per-account limit at the futures exchange (documented: \"10 requests/s per user ID and IP\", no burst: keep the burst at 1)."
            ),
            ConfigOption(
                "handover-delay", default: worker.handoverDelay.settingText,
                "Paced users of a newly assigned partition wait this long before their first call (covers an old owner that has not yet noticed it lost the partition)."
            ),
            ConfigOption(
                "rate-limit-jitter-allowance", default: worker.rateLimitJitterAllowance.settingText,
                "Network jitter the pacing absorbs: any n+1 calls of a user limited to n/s (n + b with a burst b) leave at least 1 s plus this apart (a 10/s limit is paced at 10 per 1.2 s). At most `60s`."
            ),
            ConfigOption(
                "ledger.url", default: "sqlite:$XDG_STATE_HOME/cancel-worker/ledger.db",
                "`sqlite:PATH`, `sqlite::memory:`, `memory:` or `postgres://user:password@host:port/db`. `$XDG_STATE_HOME` unset: `~/.local/state`.",
                secret: true
            ),
            ConfigOption(
                "ledger.retention", default: worker.ledgerRetention.settingText,
                "Ledger entries older than this are purged; at least an hour and twice the longest retry tier + `claim-lease` (a shorter one would purge keys still in progress)."
            ),
            ConfigOption(
                "ledger.statement-timeout", default: app.ledgerStatementTimeout.settingText,
                "PostgreSQL ledger: a statement unanswered this long fails as unavailable (the worker retries the step); at least 1s."
            ),
            ConfigOption("http.host", default: app.httpHost, "Address of the metrics and health endpoints."),
            ConfigOption(
                "http.port", default: String(app.httpPort),
                "Port of `/metrics`, `/health/live`, `/health/ready` (0: any free port)."),
            ConfigOption(
                "log.level", default: app.logLevel.rawValue, "trace, debug, info, notice, warning, error, critical."),
            ConfigOption(
                "log.format", default: app.logFormat.rawValue,
                "json, text, or auto (text on a terminal, JSON otherwise)."),
            ConfigOption(
                "providers.base-url", default: "",
                "One base URL for all five providers (the sandbox); overrides each provider's default."),
            ConfigOption(
                "providers.max-retry-after", default: app.providersMaxRetryAfter.settingText,
                "Longest wait a provider's Retry-After (or a rate-limit answer) can impose; longer values are cut to this."
            ),
            ConfigOption(
                "http-client.connect-timeout", default: app.httpConnectTimeout.settingText,
                "Timeout of one connect to a provider host, TCP and TLS handshake; refused connects are tried again until the call's timeout. At least 10ms."
            ),
            ConfigOption(
                "http-client.read-timeout", default: app.httpReadTimeout.settingText,
                "Time without response bytes before a provider call fails; at least 10ms (there is no \"never\")."),
            ConfigOption(
                "http-client.max-connections-per-host", default: String(app.httpMaxConnectionsPerHost),
                "Connections kept per provider host; also the calls each provider has on the wire at once (the rest wait their turn); at most 10,000."
            ),
            ConfigOption(
                "http-client.send-window", default: app.httpSendWindow.settingText,
                "A request must reach its connection this soon after its send-time guard (and before the command's deadline); later (a paused or stalled process), it is not sent and the guard decides again. At most 2s; for a provider with a rate limit, at most `rate-limit-jitter-allowance` (not below 50ms), the delay its pacing absorbs."
            ),
            ConfigOption("console.host", default: console.host, "Address `cancel-worker console` listens on."),
            ConfigOption(
                "console.port", default: String(console.port), "Port of `cancel-worker console` (0: any free port)."),
            ConfigOption(
                "console.token", default: "",
                "The console's access token: `Authorization: Bearer <token>`, or basic auth with any user name and this password. The console refuses to start without one (16 characters at least).",
                secret: true),
            ConfigOption(
                "console.workers", default: console.workersText,
                "The workers' metrics endpoints the console's Flow page reads, `host:port` or URLs, comma separated."),
            ConfigOption(
                "console.scrape-interval", default: console.scrapeInterval.settingText,
                "How often the console reads the workers' `/metrics` and the consumer lag (15 minutes are kept in memory)."
            ),
            ConfigOption(
                "console.replay-rate", default: console.replayRate.settingText,
                "Records per second a replay started in the console sends, at most."),
            ConfigOption(
                "console.max-replays", default: String(console.maxReplays),
                "Replays of one command before the console's replay parks it (the CLI's `--force --from-beginning` replays parked ones)."
            ),
        ]
    }()

    /// Options that exist once per provider (`<id>` is feee, fungies, taker, fastpod, futures)
    /// or per account (`<account>` is one of `providers.<id>.accounts`).
    public static let providerOptionPatterns: [ConfigOption] = [
        ConfigOption("providers.<id>.base-url", default: "the provider's production URL", "Base URL of one provider."),
        ConfigOption(
            "providers.<id>.timeout", default: AppConfiguration.ProviderEndpoint().timeout.settingText,
            "Upper bound of one call to this provider, connect to last byte; at least 100ms."),
        ConfigOption(
            "providers.<id>.user-agent", default: "\(FeeeAPI.documentedUserAgent) for feee",
            "User-Agent header."),
        ConfigOption("providers.<id>.accounts", default: "", "Accounts with credentials, comma separated."),
        ConfigOption(
            "providers.<id>.credentials.<account>.key", default: "", "The account's API key (see the provider table).",
            secret: true),
        ConfigOption(
            "providers.<id>.credentials.<account>.secret", default: "",
            "The account's second secret (Fungies secret key, futures signing secret).", secret: true),
        ConfigOption(
            "providers.<id>.default-key", default: "", "Key used for accounts without their own (not for futures).",
            secret: true),
        ConfigOption(
            "providers.<id>.default-secret", default: "",
            "Secret used for accounts without their own (not for futures).", secret: true),
    ]

    /// The last key component of each per-provider option (`providers.<id>.<name>`).
    public static let providerOptionNames = [
        "base-url", "timeout", "user-agent", "accounts", "default-key", "default-secret",
    ]

    /// The configuration reference as a Markdown table (printed by `cancel-worker config`).
    public static var markdownReference: String {
        var lines = ["| key | environment variable | default | meaning |", "|---|---|---|---|"]
        for option in Self.all + Self.providerOptionPatterns {
            let defaultText = option.defaultValue.isEmpty ? "" : "`\(option.defaultValue)`"
            lines.append("| `\(option.key)` | `\(option.environmentName)` | \(defaultText) | \(option.help) |")
        }
        lines.append("")
        lines.append(
            "In variable names `<ID>` is the provider id in upper case (`FUTURES`) and `<ACCOUNT>` the account in upper case"
                + " with every other character than a letter or digit as `_` (`trader-42` → `TRADER_42`, `acme.shop` →"
                + " `ACME_SHOP`) and a `_` where a lower-case letter meets an upper-case one (`traderOne` → `TRADER_ONE`), e.g."
                + " `CANCEL_WORKER_PROVIDERS_FUTURES_CREDENTIALS_TRADER_42_KEY`. Any other `CANCEL_WORKER_*` variable is refused."
        )
        return lines.joined(separator: "\n")
    }
}

extension ConfigOption {
    /// Whether `key` names a setting: a fixed option, `providers.<id>.<name>` or
    /// `providers.<id>.credentials.<account>.key|secret`.
    public static func isKnownKey(_ key: String) -> Bool {
        if Self.all.contains(where: { $0.key == key }) { return true }
        let parts = key.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard parts.count >= 3, parts[0] == "providers", ProviderID(rawValue: parts[1]) != nil else { return false }
        if parts.count == 3 { return Self.providerOptionNames.contains(parts[2]) }
        return parts.count == 5 && parts[2] == "credentials" && !parts[3].isEmpty
            && ["key", "secret"].contains(parts[4])
    }

    /// Whether the value of `key` is a secret (printed redacted): anything under a provider's
    /// `credentials`, whatever dots the account's name holds (`acme.shop`), and its defaults.
    public static func isSecretKey(_ key: String) -> Bool {
        if let option = Self.all.first(where: { $0.key == key }) { return option.isSecret }
        let parts = key.split(separator: ".").map(String.init)
        guard parts.first == "providers" else { return false }
        return (parts.count >= 4 && parts[2] == "credentials")
            || ["default-key", "default-secret"].contains(parts.last ?? "")
    }

    /// Every key without an account in it, per provider spelled out: what a misspelling is compared with.
    public static var concreteKeys: [String] {
        Self.all.map(\.key)
            + ProviderID.allCases.flatMap { id in Self.providerOptionNames.map { "providers.\(id.rawValue).\($0)" } }
    }

    /// Whether `name` is a variable `cancel-worker` reads (fixed options, per-provider and
    /// per-account patterns, and `CANCEL_WORKER_CONFIG`).
    public static func isKnownEnvironmentName(_ name: String) -> Bool {
        if name == "CANCEL_WORKER_CONFIG" { return true }
        if Self.concreteKeys.contains(where: { Self.environmentName(for: $0) == name }) { return true }
        for id in ProviderID.allCases {
            let prefix = Self.environmentName(for: "providers.\(id.rawValue).credentials.")
            guard name.hasPrefix(prefix) else { continue }
            let rest = name.dropFirst(prefix.count)
            if rest.count > "_KEY".count, rest.hasSuffix("_KEY") || rest.hasSuffix("_SECRET") { return true }
        }
        return false
    }

    /// `CANCEL_WORKER_*` variables in `environment` that no option reads (likely misspelled).
    /// `CANCEL_WORKER_TEST_*` is left to the test suites.
    public static func unknownEnvironmentNames(in environment: [String: String]) -> [String] {
        environment.keys.filter {
            $0.hasPrefix("CANCEL_WORKER_") && !$0.hasPrefix("CANCEL_WORKER_TEST_") && !Self.isKnownEnvironmentName($0)
        }.sorted()
    }
}
