import CancelCore
import Configuration
import Foundation
import Ledger
import Logging
import Worker

/// Reads options as text whatever their JSON type, parses them, and notes each effective value
/// (for `cancel-worker config`). Each group of settings is read by an extension:
/// `+Worker` (Kafka, the worker, retries, rate limits), `+Providers`, `+Console`.
final class ConfigurationParser {
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

    /// `atLeast`: the shortest value that works. For these settings "0s" is not "never" (as it
    /// is for the stall checks): it would fail every call, or drain and back off not at all.
    func duration(_ key: String, default fallback: Duration, atLeast minimum: Duration? = nil) throws -> Duration {
        var duration = fallback
        if let text = self.value(key) {
            guard let parsed = Duration(humanReadable: text) else {
                throw AppConfiguration.Invalid(
                    key: key, message: "expected a duration like 250ms, 5s, 1m, got \"\(text)\"")
            }
            if let minimum, parsed < minimum {
                throw AppConfiguration.Invalid(
                    key: key, message: "must be at least \(minimum.settingText) (it has no \"never\"), got \(text)")
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

    static let slowestRate = 1.0 / 86_400
    static let fastestRate = 1_000_000.0
    static let largestBurst = 10_000
    /// The largest count a setting takes (commands in flight, connections): the worker's
    /// arithmetic on them stays far from overflow.
    static let largestCount = 1_000_000

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
        // Between one call a day and a million a second: the limiter spaces calls in nanoseconds.
        guard rate >= Self.slowestRate, rate <= Self.fastestRate else {
            throw AppConfiguration.Invalid(
                key: key,
                message:
                    "the rate must be from 0.0000116/s (about one a day) to 1000000/s (none: no limit), got \"\(text)\""
            )
        }
        var burst = 1
        if parts.count == 2 {
            guard let value = Int(parts[1]), value >= 1, value <= Self.largestBurst else {
                throw AppConfiguration.Invalid(
                    key: key, message: "burst must be an integer from 1 to \(Self.largestBurst), got \"\(parts[1])\"")
            }
            burst = value
        }
        return RateLimit(requestsPerSecond: rate, burst: burst)
    }

    /// The whole configuration, settings read in a fixed order (so the first invalid one is the
    /// one reported).
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
        var worker = defaults.worker
        worker.kafka = try self.kafka(defaults: defaults.worker.kafka)
        try self.readWorker(into: &worker)
        worker.retry = try self.retry(defaults: worker.retry)
        try self.readRateLimits(into: &worker)
        let levelText = self.string("log.level", default: defaults.logLevel.rawValue)
        guard let level = Logger.Level(rawValue: levelText) else {
            throw AppConfiguration.Invalid(key: "log.level", message: "unknown level \"\(levelText)\"")
        }
        let formatText = self.string("log.format", default: defaults.logFormat.rawValue)
        guard let format = AppConfiguration.LogFormat(rawValue: formatText) else {
            throw AppConfiguration.Invalid(
                key: "log.format", message: "expected json, text or auto, got \"\(formatText)\"")
        }

        let providers = try self.providers()
        try Self.checkClaimLease(worker.claimLease, providers: providers)
        let maxRetryAfter = try self.duration("providers.max-retry-after", default: defaults.providersMaxRetryAfter)
        guard maxRetryAfter >= .seconds(1) else {
            throw AppConfiguration.Invalid(key: "providers.max-retry-after", message: "must be at least 1s")
        }
        worker.ledgerRetention = try self.duration("ledger.retention", default: worker.ledgerRetention)
        try Self.checkRetention(worker)
        try Self.checkTopics(worker)
        let ledgerURL = self.value("ledger.url") ?? defaults.ledgerURL.reveal()
        try Self.checkLedgerURL(ledgerURL)
        self.note("ledger.url", LedgerFactory.redact(ledgerURL))
        var configuration = AppConfiguration(worker: worker, ledgerURL: Secret(ledgerURL))
        configuration.ledgerStatementTimeout = try self.duration(
            "ledger.statement-timeout", default: defaults.ledgerStatementTimeout)
        // Shorter would fail statements a busy server answers in time; and `0s` is no limit.
        guard configuration.ledgerStatementTimeout >= .seconds(1) else {
            throw AppConfiguration.Invalid(key: "ledger.statement-timeout", message: "must be at least 1s")
        }
        configuration.httpHost = self.string("http.host", default: defaults.httpHost)
        configuration.httpPort = try self.int("http.port", default: defaults.httpPort, range: 0...65_535)
        configuration.logLevel = level
        configuration.logFormat = format
        configuration.providers = providers
        configuration.httpConnectTimeout = try self.duration(
            "http-client.connect-timeout", default: defaults.httpConnectTimeout, atLeast: .milliseconds(10))
        configuration.httpReadTimeout = try self.duration(
            "http-client.read-timeout", default: defaults.httpReadTimeout, atLeast: .milliseconds(10))
        configuration.httpMaxConnectionsPerHost = try self.int(
            "http-client.max-connections-per-host", default: defaults.httpMaxConnectionsPerHost, range: 1...10_000)
        configuration.httpSendWindow = try self.duration("http-client.send-window", default: defaults.httpSendWindow)
        // The claim-lease rule leaves 2 s beyond the call's timeout: a request written within its
        // window is written under a valid claim.
        guard configuration.httpSendWindow > .zero, configuration.httpSendWindow <= .seconds(2) else {
            throw AppConfiguration.Invalid(
                key: "http-client.send-window",
                message:
                    "\(configuration.httpSendWindow.settingText) is outside 1ms...2s: a request later than 2 s after its send-time guard could leave after its claim"
            )
        }
        configuration.providersMaxRetryAfter = maxRetryAfter
        configuration.console = try self.console()
        return configuration
    }

    /// The shortest `ledger.retention`: an hour, and longer than a key can wait untouched in
    /// the longest retry tier under its claim. The purge deletes entries not updated within it,
    /// live claims and the keys of commands still waiting in a tier among them.
    static func checkRetention(_ worker: WorkerConfiguration) throws {
        let longestTier = worker.retry.tiers.map(\.delay).max() ?? .zero
        let shortest = max(.seconds(3_600), (longestTier + worker.claimLease) * 2)
        guard worker.ledgerRetention >= shortest else {
            throw AppConfiguration.Invalid(
                key: "ledger.retention",
                message:
                    "\(worker.ledgerRetention.settingText) is shorter than \(shortest.settingText) (an hour, and twice the longest retry tier + claim-lease): the purge would delete the keys of commands still in progress"
            )
        }
    }

    /// Every topic the worker reads or writes is a distinct, legal Kafka topic name: a dead-letter
    /// topic that is the commands topic would dead-letter its own dead letters for ever.
    static func checkTopics(_ worker: WorkerConfiguration) throws {
        let topics = worker.topics
        let named: [(key: String, topic: String)] =
            [
                ("topics.commands", topics.commands), ("topics.outcomes", topics.outcomes),
                ("topics.dead-letters", topics.deadLetters),
            ] + worker.retryTopics.map { ("topics.retry-prefix", $0) }
        let legal = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        var seen: [String: String] = [:]
        for (key, topic) in named {
            guard topic.count <= 249, topic != ".", topic != "..", topic.allSatisfy(legal.contains) else {
                throw AppConfiguration.Invalid(
                    key: key,
                    message:
                        "\"\(topic)\" is not a Kafka topic name (up to 249 of a-z, A-Z, 0-9, '.', '_', '-')")
            }
            if let other = seen[topic] {
                throw AppConfiguration.Invalid(
                    key: key, message: "\"\(topic)\" is also \(other): each topic must have one role")
            }
            seen[topic] = key
        }
    }

    /// The forms `LedgerFactory` opens; a PostgreSQL URL is parsed and its TLS files loaded
    /// (nothing connects); a SQLite file must not be a directory, and its directory must exist or
    /// be creatable.
    static func checkLedgerURL(_ url: String) throws {
        if url == "memory:" { return }
        if url.hasPrefix("sqlite:") {
            var path = String(url.dropFirst("sqlite:".count))
            if path.hasPrefix("//") { path = String(path.dropFirst(2)) }
            guard !path.isEmpty else {
                throw AppConfiguration.Invalid(
                    key: "ledger.url", message: "sqlite: needs a path, e.g. sqlite:/var/lib/cancel-worker/ledger.db")
            }
            guard path != ":memory:" else { return }
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
                throw AppConfiguration.Invalid(key: "ledger.url", message: "\(path) is a directory, not a file")
            }
            // The worker creates the file's missing directories: the nearest one that exists
            // must be a directory it may write in.
            var directory = URL(fileURLWithPath: path).deletingLastPathComponent()
            while !FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDirectory),
                directory.path != "/"
            {
                directory = directory.deletingLastPathComponent()
            }
            guard isDirectory.boolValue, FileManager.default.isWritableFile(atPath: directory.path) else {
                throw AppConfiguration.Invalid(
                    key: "ledger.url", message: "cannot create \(path): \(directory.path) is not a writable directory")
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
