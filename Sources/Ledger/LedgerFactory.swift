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
/// | `postgres://user:password@host:port/database[?sslmode=…&sslrootcert=…&sslcert=…&sslkey=…]` | `PostgresLedger` (fleets) |
///
/// The PostgreSQL URL takes libpq's TLS parameters (see ``PostgresURL``); the user name, password
/// and database name are percent-decoded exactly once.
public enum LedgerFactory {
    /// The ledger, and the service to run beside the worker (PostgreSQL's connection pool).
    public struct Made: Sendable {
        public var ledger: any IdempotencyLedger
        public var service: (any Service)?
    }

    /// `statementTimeout`: how long a PostgreSQL statement may go unanswered before it fails as
    /// unavailable (``PostgresLedger``); the other stores do not use it.
    public static func make(
        url: String, logger: Logger, statementTimeout: Duration = PostgresLedger.defaultStatementTimeout
    ) throws -> Made {
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
            let ledger = PostgresLedger(
                configuration: try self.postgresConfiguration(url), logger: logger, statementTimeout: statementTimeout)
            return Made(ledger: ledger, service: ledger)
        }
        throw LedgerError.unavailable(
            "unsupported ledger URL \(Self.redact(url)); use sqlite:PATH, memory: or postgres://…")
    }

    /// The pool configuration for a `postgres://` URL: parsed by ``PostgresURL/parse(_:)``, then the
    /// TLS files are loaded (so a bad path or a key that does not match its certificate fails here,
    /// at start-up, not on the first connection).
    static func postgresConfiguration(_ url: String) throws -> PostgresClient.Configuration {
        let parsed = try PostgresURL.parse(url)
        var configuration = PostgresClient.Configuration(
            host: parsed.host, port: parsed.port, username: parsed.username,
            password: parsed.password, database: parsed.database, tls: try parsed.tls.make()
        )
        configuration.options.maximumConnections = 20
        return configuration
    }

    /// The URL without its password, for messages: everything between the user name's `:` and
    /// the last `@` goes. Not through Foundation's parser: an unencoded password with a `/`,
    /// `?` or `#` (`app:1234/abc@db`) reads there as a port and a path, with no password to hide.
    /// A `:` before a later `@` of the query hides too much, never too little.
    public static func redact(_ url: String) -> String {
        guard let scheme = url.range(of: "://"), let at = url.lastIndex(of: "@"), at > scheme.upperBound else {
            return url
        }
        guard let colon = url[scheme.upperBound..<at].firstIndex(of: ":") else { return url }
        return String(url[..<url.index(after: colon)]) + "REDACTED" + String(url[at...])
    }
}

/// What a `postgres://` URL asks for, before any file is read (the tests inspect it).
struct PostgresURL: Sendable, Equatable {
    var host: String
    var port: Int
    var username: String
    var password: String?
    var database: String?
    var tls: PostgresTLSPolicy

    /// The ledger reads these query parameters; any other (`application_name`, …) is ignored.
    static let tlsParameters = ["sslmode", "sslrootcert", "sslcert", "sslkey"]

    static func parse(_ url: String) throws -> PostgresURL {
        let expected = "expected postgres://user:password@host:port/database"
        guard let components = URLComponents(string: url), let host = components.host, !host.isEmpty else {
            throw LedgerError.unavailable("invalid PostgreSQL URL \(LedgerFactory.redact(url)): \(expected)")
        }
        // `user`, `password` and `path` are already decoded; decoding them again would turn a
        // password `p%2541` (`p%41`) into `pA`. Take the encoded form and decode it once.
        guard let encodedUser = components.percentEncodedUser, let username = encodedUser.removingPercentEncoding,
            !username.isEmpty
        else {
            throw LedgerError.unavailable(
                "invalid PostgreSQL URL \(LedgerFactory.redact(url)): no user name, \(expected)")
        }
        let password: String?
        if let encoded = components.percentEncodedPassword {
            guard let decoded = encoded.removingPercentEncoding else {
                throw LedgerError.unavailable(
                    "invalid PostgreSQL URL \(LedgerFactory.redact(url)): the password is not valid percent-encoding")
            }
            password = decoded
        } else {
            password = nil
        }
        var encodedPath = components.percentEncodedPath
        if encodedPath.hasPrefix("/") { encodedPath.removeFirst() }
        guard let database = encodedPath.removingPercentEncoding else {
            throw LedgerError.unavailable(
                "invalid PostgreSQL URL \(LedgerFactory.redact(url)): the database name is not valid percent-encoding")
        }

        var parameters: [String: String] = [:]
        for item in components.queryItems ?? [] where Self.tlsParameters.contains(item.name) {
            guard parameters[item.name] == nil else {
                throw LedgerError.unavailable("PostgreSQL URL parameter \(item.name) is given twice")
            }
            guard let value = item.value, !value.isEmpty else {
                throw LedgerError.unavailable("PostgreSQL URL parameter \(item.name) is empty")
            }
            parameters[item.name] = value
        }
        return PostgresURL(
            host: host, port: components.port ?? 5432, username: username, password: password,
            database: database.isEmpty ? nil : database,
            tls: try PostgresTLSPolicy(
                sslmode: parameters["sslmode"], sslrootcert: parameters["sslrootcert"],
                sslcert: parameters["sslcert"], sslkey: parameters["sslkey"]
            )
        )
    }
}

/// The TLS a PostgreSQL URL chose, after libpq's `sslmode` and friends:
///
/// | `sslmode` | TLS | verification |
/// |---|---|---|
/// | `disable` (the default) | never | – |
/// | `allow`, `prefer` | if the server offers it, else plaintext | none; the chain if `sslrootcert` is given |
/// | `require` | always | none; the chain if `sslrootcert` is given (as libpq) |
/// | `verify-ca` | always | the chain, against `sslrootcert` or the system roots; not the host name |
/// | `verify-full` | always | the chain and the host name |
///
/// PostgresNIO cannot try plaintext first and TLS second, so `allow` behaves as `prefer`.
struct PostgresTLSPolicy: Sendable, Equatable {
    enum Use: Sendable, Equatable {
        case never
        /// TLS when the server offers it, plaintext otherwise (`allow`, `prefer`).
        case ifOffered
        case always
    }

    enum Verification: Sendable, Equatable {
        case none
        /// The certificate chain, not the host name (`verify-ca`).
        case chain
        /// The chain and the host name (`verify-full`).
        case full
    }

    enum TrustRoots: Sendable, Equatable {
        /// The system's trusted CAs (`sslrootcert=system`, or `verify-*` without `sslrootcert`).
        case system
        /// A PEM file of CA certificates (`sslrootcert=PATH`).
        case file(String)
    }

    struct ClientIdentity: Sendable, Equatable {
        /// PEM certificate chain, leaf first (`sslcert`).
        var certificate: String
        /// Its unencrypted PEM private key (`sslkey`).
        var key: String
    }

    var use: Use
    var verification: Verification
    /// What verification trusts; `nil` when nothing is verified.
    var trustRoots: TrustRoots?
    var clientIdentity: ClientIdentity?

    static let disabled = PostgresTLSPolicy(use: .never, verification: .none, trustRoots: nil, clientIdentity: nil)

    static let sslmodes = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]

    init(use: Use, verification: Verification, trustRoots: TrustRoots?, clientIdentity: ClientIdentity?) {
        self.use = use
        self.verification = verification
        self.trustRoots = trustRoots
        self.clientIdentity = clientIdentity
    }

    /// libpq's parameters, unread; `sslmode` defaults to `disable`.
    init(sslmode: String?, sslrootcert: String?, sslcert: String?, sslkey: String?) throws {
        let mode = sslmode ?? "disable"
        guard Self.sslmodes.contains(mode) else {
            throw LedgerError.unavailable(
                "unsupported PostgreSQL sslmode \(mode): use \(Self.sslmodes.joined(separator: ", "))")
        }
        let identity: ClientIdentity?
        switch (sslcert, sslkey) {
        case (let certificate?, let key?): identity = ClientIdentity(certificate: certificate, key: key)
        case (nil, nil): identity = nil
        case (_?, nil):
            throw LedgerError.unavailable(
                "PostgreSQL URL parameter sslcert needs sslkey (the client certificate's private key)")
        case (nil, _?):
            throw LedgerError.unavailable("PostgreSQL URL parameter sslkey needs sslcert (the client certificate)")
        }
        let roots: TrustRoots? = sslrootcert.map { $0 == "system" ? .system : .file($0) }
        switch mode {
        case "disable":
            self = .disabled
        case "allow", "prefer", "require":
            self.init(
                use: mode == "require" ? .always : .ifOffered, verification: roots == nil ? .none : .chain,
                trustRoots: roots, clientIdentity: identity
            )
        default:  // verify-ca, verify-full
            self.init(
                use: .always, verification: mode == "verify-full" ? .full : .chain,
                trustRoots: roots ?? .system, clientIdentity: identity
            )
        }
    }

    /// PostgresNIO's setting, with the files read and checked.
    func make() throws -> PostgresClient.Configuration.TLS {
        guard self.use != .never else { return .disable }
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12  // libpq's default ssl_min_protocol_version
        switch self.verification {
        case .none: tls.certificateVerification = .none
        case .chain: tls.certificateVerification = .noHostnameVerification
        case .full: tls.certificateVerification = .fullVerification
        }
        switch self.trustRoots {
        case .file(let path):
            let certificates = try Self.load("sslrootcert", path) { try NIOSSLCertificate.fromPEMFile($0) }
            guard !certificates.isEmpty else {
                throw LedgerError.unavailable("PostgreSQL sslrootcert \(path) holds no PEM certificate")
            }
            tls.trustRoots = .certificates(certificates)
        case .system, nil:
            tls.trustRoots = .default
        }
        if let identity = self.clientIdentity {
            let chain = try Self.load("sslcert", identity.certificate) { try NIOSSLCertificate.fromPEMFile($0) }
            guard !chain.isEmpty else {
                throw LedgerError.unavailable("PostgreSQL sslcert \(identity.certificate) holds no PEM certificate")
            }
            let key = try Self.load("sslkey", identity.key) { try NIOSSLPrivateKey(file: $0, format: .pem) }
            tls.certificateChain = chain.map { .certificate($0) }
            tls.privateKey = .privateKey(key)
            // BoringSSL checks that the key belongs to the certificate only when a context is made.
            do {
                _ = try NIOSSLContext(configuration: tls)
            } catch {
                throw LedgerError.unavailable(
                    "PostgreSQL sslcert \(identity.certificate) and sslkey \(identity.key) do not go together: \(error)"
                )
            }
        }
        return self.use == .always ? .require(tls) : .prefer(tls)
    }

    private static func load<T>(_ parameter: String, _ path: String, _ body: (String) throws -> T) throws -> T {
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw LedgerError.unavailable("PostgreSQL \(parameter) \(path) is missing or unreadable")
        }
        do {
            return try body(path)
        } catch {
            throw LedgerError.unavailable("PostgreSQL \(parameter) \(path) is not a usable PEM file: \(error)")
        }
    }
}
