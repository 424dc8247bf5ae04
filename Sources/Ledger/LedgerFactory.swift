public import CancelCore
import Foundation
public import Logging
import NIOSSL
import PostgresNIO
public import ServiceLifecycle

/// Builds the ledger a URL names:
///
/// | URL | store |
/// |---|---|
/// | `sqlite:PATH` or `sqlite:///absolute/path.db` | `SQLiteLedger` (one node) |
/// | `sqlite::memory:` | `SQLiteLedger` in memory (tests) |
/// | `memory:` | `InMemoryLedger` (tests, benchmarks of the rest) |
/// | `postgres://user:password@host:port/database[?sslmode=disable|require]` | `PostgresLedger` (fleets) |
public enum LedgerFactory {
    /// The ledger, and the service to run beside the worker (PostgreSQL's connection pool).
    public struct Made: Sendable {
        public var ledger: any IdempotencyLedger
        public var service: (any Service)?
    }

    public static func make(url: String, logger: Logger) throws -> Made {
        if url == "memory:" {
            return Made(ledger: InMemoryLedger(), service: nil)
        }
        if url.hasPrefix("sqlite:") {
            var path = String(url.dropFirst("sqlite:".count))
            if path.hasPrefix("//") { path = String(path.dropFirst(2)) }
            guard !path.isEmpty else { throw LedgerError.unavailable("sqlite URL without a path") }
            return Made(ledger: try SQLiteLedger(path: path), service: nil)
        }
        if url.hasPrefix("postgres://") || url.hasPrefix("postgresql://") {
            let ledger = PostgresLedger(configuration: try self.postgresConfiguration(url), logger: logger)
            return Made(ledger: ledger, service: ledger)
        }
        throw LedgerError.unavailable("unsupported ledger URL \(Self.redact(url)); use sqlite:PATH, memory: or postgres://…")
    }

    static func postgresConfiguration(_ url: String) throws -> PostgresClient.Configuration {
        guard let components = URLComponents(string: url), let host = components.host, let user = components.user else {
            throw LedgerError.unavailable("invalid PostgreSQL URL \(Self.redact(url)): expected postgres://user:password@host:port/database")
        }
        let database = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        let sslMode = components.queryItems?.first { $0.name == "sslmode" }?.value ?? "disable"
        let tls: PostgresClient.Configuration.TLS
        switch sslMode {
        case "disable": tls = .disable
        case "prefer": tls = .prefer(.makeClientConfiguration())
        case "require": tls = .require(.makeClientConfiguration())
        default: throw LedgerError.unavailable("unsupported sslmode \(sslMode): use disable, prefer or require")
        }
        var configuration = PostgresClient.Configuration(
            host: host, port: components.port ?? 5432, username: user,
            password: components.password?.removingPercentEncoding, database: database.isEmpty ? nil : database, tls: tls
        )
        configuration.options.maximumConnections = 20
        return configuration
    }

    /// The URL without its password, for messages.
    public static func redact(_ url: String) -> String {
        guard var components = URLComponents(string: url), components.password != nil else { return url }
        components.password = "REDACTED"
        return components.string ?? "[REDACTED]"
    }
}
