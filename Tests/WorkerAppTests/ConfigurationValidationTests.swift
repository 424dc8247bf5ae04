import CancelCore
import Foundation
import Testing
import WorkerApp

/// Issue 17, point 3, 4 and 7: what `config` and `run` refuse (the one `AppConfiguration.load`),
/// and how the refusal names the key, variable or file at fault.
@Suite("Configuration: unknown keys, files, variables, ledger and Kafka values are refused by name")
struct ConfigurationValidationTests {
    /// The error `load` throws, or nil if it accepted the input.
    static func refusal(
        file: String? = nil, overrides: [String: String] = [:], environment: [String: String] = [:]
    ) async -> AppConfiguration.Invalid? {
        do {
            _ = try await AppConfiguration.load(file: file, overrides: overrides, environment: environment)
            return nil
        } catch let error as AppConfiguration.Invalid {
            return error
        } catch {
            Issue.record("not an AppConfiguration.Invalid: \(error)")
            return nil
        }
    }

    static func temporaryFile(_ text: String) throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("cw-\(UUID()).json")
        try Data(text.utf8).write(to: url)
        return url.path
    }

    @Test("a mistyped --set key is refused with the closest key")
    func unknownOverride() async throws {
        let error = try #require(await Self.refusal(overrides: ["max-inflight": "5"]))
        #expect(error.key == "max-inflight")
        #expect(error.description.contains("did you mean `max-in-flight`?"), "\(error)")
        let far = try #require(await Self.refusal(overrides: ["colour": "blue"]))
        #expect(far.description.contains("config --reference"), "\(far)")
    }

    @Test("a CANCEL_WORKER_ variable no setting reads is refused with the closest variable")
    func unknownVariable() async throws {
        let error = try #require(await Self.refusal(environment: ["CANCEL_WORKER_MAX_INFLIGHT": "5"]))
        #expect(error.description.contains("CANCEL_WORKER_MAX_INFLIGHT"))
        #expect(error.description.contains("did you mean `CANCEL_WORKER_MAX_IN_FLIGHT`?"), "\(error)")
        // The form the old reference table showed is refused, pointing at the one that works.
        let old = try #require(
            await Self.refusal(environment: ["CANCEL_WORKER_PROVIDERS__FASTPOD__ACCOUNTS": "demo-1"]))
        #expect(old.description.contains("did you mean `CANCEL_WORKER_PROVIDERS_FASTPOD_ACCOUNTS`?"), "\(old)")
        // The test suites' own variables are theirs.
        #expect(await Self.refusal(environment: ["CANCEL_WORKER_TEST_POSTGRES_URL": "postgres://x@y/z"]) == nil)
    }

    /// Issue 17 §1: `export CANCEL_WORKER_KAFKA_BOOTSTRAP_SERVERS=$(head -1 out)` before the
    /// cluster printed anything made the worker dial 127.0.0.1:9092 forever.
    @Test("a setting given as empty is refused, not silently replaced by its default")
    func emptyValue() async throws {
        let error = try #require(await Self.refusal(environment: ["CANCEL_WORKER_KAFKA_BOOTSTRAP_SERVERS": ""]))
        #expect(error.key == "kafka.bootstrap-servers")
        #expect(
            error.description.contains("CANCEL_WORKER_KAFKA_BOOTSTRAP_SERVERS") && error.description.contains("empty"),
            "\(error)")
        #expect(await Self.refusal(overrides: ["drain-timeout": " "])?.key == "drain-timeout")
        // Settings whose default is empty may be given empty.
        #expect(await Self.refusal(environment: ["CANCEL_WORKER_KAFKA_SASL_MECHANISM": ""]) == nil)
    }

    @Test("the reference's per-provider variables work as written once <ID> and <ACCOUNT> are filled in")
    func referenceVariablesWork() async throws {
        let patterns = ConfigOption.providerOptionPatterns.map(\.environmentName)
        #expect(patterns.contains("CANCEL_WORKER_PROVIDERS_<ID>_ACCOUNTS"))
        #expect(!ConfigOption.markdownReference.contains("__ID__"))
        var environment: [String: String] = [:]
        for pattern in patterns {
            let name = pattern.replacingOccurrences(of: "<ID>", with: "FUNGIES").replacingOccurrences(
                of: "<ACCOUNT>", with: "DEMO_1")
            environment[name] =
                name.hasSuffix("ACCOUNTS") ? "demo-1" : name.hasSuffix("TIMEOUT") ? "7s" : "value-of-\(name)"
        }
        let configuration = try await AppConfiguration.load(environment: environment)
        let fungies = try #require(configuration.providers[.fungies])
        #expect(
            fungies.accounts["demo-1"]?.key.reveal()
                == "value-of-CANCEL_WORKER_PROVIDERS_FUNGIES_CREDENTIALS_DEMO_1_KEY")
        #expect(
            fungies.accounts["demo-1"]?.secret?.reveal()
                == "value-of-CANCEL_WORKER_PROVIDERS_FUNGIES_CREDENTIALS_DEMO_1_SECRET")
        #expect(fungies.timeout == .seconds(7))
        #expect(fungies.baseURL == "value-of-CANCEL_WORKER_PROVIDERS_FUNGIES_BASE_URL")
        #expect(fungies.userAgent == "value-of-CANCEL_WORKER_PROVIDERS_FUNGIES_USER_AGENT")
        #expect(fungies.defaultCredentials?.key.reveal() == "value-of-CANCEL_WORKER_PROVIDERS_FUNGIES_DEFAULT_KEY")
    }

    @Test("a malformed, missing or misspelt configuration file is named, never as NSCocoaErrorDomain")
    func files() async throws {
        let malformed = try Self.temporaryFile(#"{"group-id": "x"  "max-in-flight": 5"#)
        defer { try? FileManager.default.removeItem(atPath: malformed) }
        let error = try #require(await Self.refusal(file: malformed))
        #expect(error.description.contains(malformed) && error.description.contains("--config"), "\(error)")
        #expect(error.description.contains("not valid JSON"), "\(error)")
        #expect(!error.description.contains("NSCocoaErrorDomain"))

        let missing = "/nonexistent/cw-\(UUID()).json"
        let absent = try #require(await Self.refusal(file: missing))
        #expect(absent.description.contains(missing) && absent.description.contains("--config"), "\(absent)")
        #expect(!absent.description.contains("CANCEL_WORKER___CONFIG"))
        let viaVariable = try #require(await Self.refusal(environment: ["CANCEL_WORKER_CONFIG": missing]))
        #expect(viaVariable.description.contains("CANCEL_WORKER_CONFIG") && viaVariable.description.contains(missing))

        let misspelt = try Self.temporaryFile(#"{"kafka": {"bootstrap-server": "h:1"}}"#)
        defer { try? FileManager.default.removeItem(atPath: misspelt) }
        let key = try #require(await Self.refusal(file: misspelt))
        #expect(
            key.description.contains(misspelt) && key.description.contains("did you mean `kafka.bootstrap-servers`?"),
            "\(key)")
    }

    @Test("review finding: a true/false or an object where a setting's value belongs is refused by key (before: `1`)")
    func filesWithTheWrongType() async throws {
        let boolean = try Self.temporaryFile(#"{"group-id": true, "max-in-flight": 5}"#)
        defer { try? FileManager.default.removeItem(atPath: boolean) }
        let error = try #require(await Self.refusal(file: boolean), "group-id true was accepted")
        #expect(error.key == "group-id" && error.description.contains(boolean), "\(error)")
        #expect(error.description.contains("a string or a number"), "\(error)")
        let inList = try Self.temporaryFile(#"{"retry": {"tiers": ["5s", false]}}"#)
        defer { try? FileManager.default.removeItem(atPath: inList) }
        #expect(await Self.refusal(file: inList)?.key == "retry.tiers")
        // Numbers, strings, lists of them and null (the default) stay accepted.
        let fine = try Self.temporaryFile(
            #"{"group-id": "g", "max-in-flight": 5, "retry": {"tiers": ["5s", "1m"]}, "drain-timeout": null}"#)
        defer { try? FileManager.default.removeItem(atPath: fine) }
        #expect(await Self.refusal(file: fine) == nil)
    }

    @Test(
        "values run would fail on are refused here: ledger URL scheme, Kafka security protocol",
        arguments: [
            ("ledger.url", "mysql://x", "CANCEL_WORKER_LEDGER_URL"),
            ("ledger.url", "sqlite:", "CANCEL_WORKER_LEDGER_URL"),
            ("ledger.url", "postgres://cw@db/cw?sslmode=sometimes", "CANCEL_WORKER_LEDGER_URL"),
            ("kafka.security-protocol", "tls", "CANCEL_WORKER_KAFKA_SECURITY_PROTOCOL"),
            ("kafka.properties", "no.such.property=1", "CANCEL_WORKER_KAFKA_PROPERTIES"),
            ("kafka.fetch-wait", "0ms", "CANCEL_WORKER_KAFKA_FETCH_WAIT"),
            ("kafka.fetch-wait", "2m", "CANCEL_WORKER_KAFKA_FETCH_WAIT"),
            ("kafka.retry-fetch-wait", "0ms", "CANCEL_WORKER_KAFKA_RETRY_FETCH_WAIT"),
            ("kafka.retry-fetch-wait", "2m", "CANCEL_WORKER_KAFKA_RETRY_FETCH_WAIT"),
            ("stranded-partition-timeout", "1s", "CANCEL_WORKER_STRANDED_PARTITION_TIMEOUT"),
            // Review finding (WorkerApp): "0s" means "never" for the stall and stranded-partition
            // checks; here it failed every call ("read timeout", 10 times, then `failed`), sent
            // none, released revoked partitions undrained, or retried without a pause.
            ("http-client.read-timeout", "0s", "CANCEL_WORKER_HTTP_CLIENT_READ_TIMEOUT"),
            ("http-client.connect-timeout", "0s", "CANCEL_WORKER_HTTP_CLIENT_CONNECT_TIMEOUT"),
            ("providers.fastpod.timeout", "0s", "CANCEL_WORKER_PROVIDERS_FASTPOD_TIMEOUT"),
            ("drain-timeout", "0s", "CANCEL_WORKER_DRAIN_TIMEOUT"),
            ("retry.base-backoff", "0s", "CANCEL_WORKER_RETRY_BASE_BACKOFF"),
        ])
    func runtimeFailuresAreConfigurationErrors(key: String, value: String, variable: String) async throws {
        let error = try #require(await Self.refusal(overrides: [key: value]))
        #expect(error.key == key)
        #expect(error.description.contains(variable), "\(error)")
    }

    @Test("every setting in effect is listed, durations with their unit, secrets redacted")
    func effectiveSettings() async throws {
        let configuration = try await AppConfiguration.load(
            overrides: [
                "drain-timeout": "5", "kafka.sasl-password": "hunter2",
                "ledger.url": "postgres://cw:hunter2@db:5432/cw",
            ],
            environment: [:]
        )
        let effective = configuration.effectiveSettings
        #expect(effective["drain-timeout"] == "5s")
        #expect(effective["commit-interval"] == "200ms")
        #expect(effective["ledger.retention"] == "7d")
        for option in ConfigOption.all where !option.defaultValue.isEmpty && option.key != "topics.retry-prefix" {
            #expect(effective[option.key] != nil, "\(option.key) is missing")
        }
        #expect(!effective.values.contains { $0.contains("hunter2") })
        #expect(effective["kafka.sasl-password"] == "[REDACTED]")
    }

    /// Review finding (WorkerApp): only keys of exactly five parts counted as credentials, so an
    /// account with a dot in its name (`acme.shop`, `ops@example.com`) had its API key and
    /// signing secret printed by `cancel-worker config`.
    @Test("review finding: the credentials of an account with a dot in its name are redacted too")
    func dottedAccountRedacted() async throws {
        let configuration = try await AppConfiguration.load(environment: [
            "CANCEL_WORKER_PROVIDERS_FUTURES_ACCOUNTS": "acme.shop",
            "CANCEL_WORKER_PROVIDERS_FUTURES_CREDENTIALS_ACME_SHOP_KEY": "sk-live-123",
            "CANCEL_WORKER_PROVIDERS_FUTURES_CREDENTIALS_ACME_SHOP_SECRET": "sign-live-456",
        ])
        #expect(configuration.providers[.futures]?.accounts["acme.shop"]?.key.reveal() == "sk-live-123")
        let effective = configuration.effectiveSettings
        #expect(
            !effective.values.contains { $0.contains("sk-live-123") || $0.contains("sign-live-456") }, "\(effective)")
        #expect(effective["providers.futures.credentials.acme.shop.key"] == "[REDACTED]")
    }

    /// Review finding (WorkerApp): the variable the reference names for an account's key
    /// (`ConfigOption.environmentName`) is the one the configuration reads, camelCase included.
    @Test("review finding: a camelCase account's credentials are read from the variable the reference names")
    func camelCaseAccount() async throws {
        let variable = ConfigOption.environmentName(for: "providers.futures.credentials.traderOne.key")
        let configuration = try await AppConfiguration.load(environment: [
            "CANCEL_WORKER_PROVIDERS_FUTURES_ACCOUNTS": "traderOne", variable: "k-1",
            ConfigOption.environmentName(for: "providers.futures.credentials.traderOne.secret"): "s-1",
        ])
        #expect(configuration.providers[.futures]?.accounts["traderOne"]?.key.reveal() == "k-1", "\(variable)")
    }

    /// Issue 13 §6: the reference's defaults (`ConfigOption.all`, the README table) and the
    /// parser's (`WorkerConfiguration` and the literals in `AppConfiguration`) live apart; this
    /// keeps them equal, so the table never promises a default the worker does not use.
    @Test("every default the reference documents is the default in effect")
    func documentedDefaults() async throws {
        let effective = try await AppConfiguration.load(environment: ["HOME": "/home/op"]).effectiveSettings
        // Defaults that depend on the machine are described, not given.
        let described: Set<String> = ["worker-id", "topics.retry-prefix", "ledger.url"]
        var compared = 0
        for option in ConfigOption.all where !option.key.contains("<") && !described.contains(option.key) {
            let documented = option.defaultValue.isEmpty ? nil : option.defaultValue
            let inEffect = effective[option.key].flatMap { $0.isEmpty || $0 == "none" || $0 == "(not set)" ? nil : $0 }
            #expect(
                Self.same(documented, inEffect),
                "\(option.key): documented \(documented ?? "none"), in effect \(inEffect ?? "none")")
            compared += 1
        }
        #expect(compared > 30)
    }

    /// Equal as settings: `10s` and `10.0s`, `1m` and `60s`, `0.2s` and `200ms` are the same duration.
    static func same(_ documented: String?, _ inEffect: String?) -> Bool {
        guard let documented, let inEffect else { return documented == nil && inEffect == nil }
        if documented == inEffect { return true }
        if let a = Duration(humanReadable: documented), let b = Duration(humanReadable: inEffect) { return a == b }
        return false
    }

    @Test("the default ledger lives in the XDG state directory, not the working directory")
    func defaultLedger() async throws {
        let xdg = try await AppConfiguration.load(environment: ["XDG_STATE_HOME": "/srv/state", "HOME": "/home/op"])
        #expect(xdg.ledgerURL.reveal() == "sqlite:/srv/state/cancel-worker/ledger.db")
        #expect(xdg.sqliteLedgerPath == "/srv/state/cancel-worker/ledger.db")
        let home = try await AppConfiguration.load(environment: [
            "XDG_STATE_HOME": "relative/ignored", "HOME": "/home/op",
        ])
        #expect(home.ledgerURL.reveal() == "sqlite:/home/op/.local/state/cancel-worker/ledger.db")
        let memory = try await AppConfiguration.load(overrides: ["ledger.url": "memory:"], environment: [:])
        #expect(memory.sqliteLedgerPath == nil)
    }
}
