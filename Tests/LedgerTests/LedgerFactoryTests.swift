import CancelCore
import CancelWorkerTesting
import Foundation
import Testing

@testable import Ledger

/// `LedgerFactory.postgresConfiguration`: the URL's user name, password and database name are
/// percent-decoded once; libpq's `sslmode`, `sslrootcert`, `sslcert` and `sslkey` choose the TLS;
/// no error text carries the password.
@Suite struct LedgerFactoryTests {
    /// A password that must never show up in an error: encoded in the URL, and decoded.
    static let secret = "s3cr%25et"
    static let decodedSecret = "s3cr%et"

    static func url(_ query: String = "") -> String {
        "postgres://ledger:\(Self.secret)@db.example:6432/cancels\(query.isEmpty ? "" : "?" + query)"
    }

    // MARK: Percent-decoding, once

    @Test(arguments: [
        ("postgres://u:p%25ss@db.example:5432/ledger", "p%ss"),
        ("postgres://u:p%2541@db.example/ledger", "p%41"),
        ("postgres://u:p%40ss%3Aw%2Fd@db.example/ledger", "p@ss:w/d"),
        ("postgres://u:plain@db.example/ledger", "plain"),
        // A `%` that starts no escape is kept as it is (Foundation is lenient here).
        ("postgres://u:p%ss@db.example/ledger", "p%ss"),
    ])
    func passwordIsDecodedOnce(url: String, expected: String) throws {
        let configuration = try LedgerFactory.postgresConfiguration(url)
        #expect(configuration.password == expected)
    }

    @Test func userAndDatabaseAreDecodedOnce() throws {
        let parsed = try PostgresURL.parse("postgresql://us%25er%40corp:pw@db.example/can%2Fcels%2541")
        #expect(parsed.username == "us%er@corp")
        #expect(parsed.password == "pw")
        #expect(parsed.database == "can/cels%41")
        #expect(parsed.host == "db.example")
        #expect(parsed.port == 5432)
        #expect(parsed.tls == .disabled)

        let configuration = try LedgerFactory.postgresConfiguration(
            "postgresql://us%25er%40corp:pw@db.example/can%2Fcels%2541")
        #expect(configuration.username == "us%er@corp")
        #expect(configuration.database == "can/cels%41")
    }

    @Test func noPasswordAndNoDatabase() throws {
        let parsed = try PostgresURL.parse("postgres://ledger@db.example:6432")
        #expect(parsed.password == nil)
        #expect(parsed.database == nil)
        #expect(parsed.port == 6432)
    }

    @Test(arguments: [
        "postgres://db.example/cancels",  // no user
        "postgres://u:p%zz@/cancels",  // no host
        "postgres://u:p%zz@db.example:port/cancels",  // no port
        "postgres://u:p%zz@db example/cancels",  // not a URL at all
    ])
    func invalidURLsAreRejectedWithoutTheirPassword(url: String) throws {
        let error = try #require(throws: LedgerError.self) { try LedgerFactory.postgresConfiguration(url) }
        #expect(String(describing: error).contains("PostgreSQL URL"))
        for secret in ["p%ss", "p%zz"] { #expect(!String(describing: error).contains(secret)) }
    }

    @Test func redactHandlesURLsFoundationCannotParse() {
        #expect(URLComponents(string: "postgres://u:p%zz@db example/cancels") == nil)
        #expect(
            LedgerFactory.redact("postgres://u:p%zz@db example/cancels") == "postgres://u:REDACTED@db example/cancels")
        #expect(
            LedgerFactory.redact("postgres://u:p@ss@db example/cancels") == "postgres://u:REDACTED@db example/cancels")
        #expect(!LedgerFactory.redact("postgres://u:\(Self.secret)@db.example/cancels").contains(Self.secret))
        #expect(LedgerFactory.redact("postgres://u@db.example/cancels") == "postgres://u@db.example/cancels")
    }

    @Test(
        "review finding: a password Foundation reads as a port, a path, a query or a fragment is redacted too",
        arguments: ["1234/abc", "/abc", "12#ss", "9?z", "12/b?c#d"])
    func redactUnencodedPasswords(password: String) throws {
        let url = "postgres://app:\(password)@db/x"
        #expect(LedgerFactory.redact(url) == "postgres://app:REDACTED@db/x")
        do {
            _ = try LedgerFactory.postgresConfiguration(url)
        } catch {
            #expect(!String(describing: error).contains(password), "\(error)")
        }
    }

    // MARK: sslmode

    @Test func sslmodesMapToLibpqsTLS() throws {
        func policy(_ query: String) throws -> PostgresTLSPolicy { try PostgresURL.parse(Self.url(query)).tls }
        let ca = "/etc/ledger/ca.pem"

        #expect(try policy("") == .disabled)
        #expect(try policy("sslmode=disable") == .disabled)
        #expect(try policy("sslmode=disable&sslrootcert=\(ca)") == .disabled)
        for mode in ["allow", "prefer"] {
            #expect(
                try policy("sslmode=\(mode)")
                    == PostgresTLSPolicy(use: .ifOffered, verification: .none, trustRoots: nil, clientIdentity: nil))
            #expect(
                try policy("sslmode=\(mode)&sslrootcert=\(ca)")
                    == PostgresTLSPolicy(
                        use: .ifOffered, verification: .chain, trustRoots: .file(ca), clientIdentity: nil))
        }
        #expect(
            try policy("sslmode=require")
                == PostgresTLSPolicy(use: .always, verification: .none, trustRoots: nil, clientIdentity: nil))
        // As libpq: require with a root certificate verifies the chain.
        #expect(
            try policy("sslmode=require&sslrootcert=\(ca)")
                == PostgresTLSPolicy(use: .always, verification: .chain, trustRoots: .file(ca), clientIdentity: nil))
        #expect(
            try policy("sslmode=verify-ca")
                == PostgresTLSPolicy(use: .always, verification: .chain, trustRoots: .system, clientIdentity: nil))
        #expect(
            try policy("sslmode=verify-ca&sslrootcert=\(ca)")
                == PostgresTLSPolicy(use: .always, verification: .chain, trustRoots: .file(ca), clientIdentity: nil))
        #expect(
            try policy("sslmode=verify-full")
                == PostgresTLSPolicy(use: .always, verification: .full, trustRoots: .system, clientIdentity: nil))
        #expect(
            try policy("sslmode=verify-full&sslrootcert=system")
                == PostgresTLSPolicy(use: .always, verification: .full, trustRoots: .system, clientIdentity: nil))
        #expect(
            try policy(
                "sslmode=verify-full&sslrootcert=\(ca)&sslcert=/etc/ledger/client.pem&sslkey=/etc/ledger/client.key")
                == PostgresTLSPolicy(
                    use: .always, verification: .full, trustRoots: .file(ca),
                    clientIdentity: .init(certificate: "/etc/ledger/client.pem", key: "/etc/ledger/client.key")
                )
        )
        // Other libpq parameters are ignored, as before.
        #expect(
            try policy("sslmode=require&application_name=cancel-worker")
                == PostgresTLSPolicy(use: .always, verification: .none, trustRoots: nil, clientIdentity: nil))
    }

    @Test func everySslmodeBuildsWithRealFiles() throws {
        let files = try TLSFiles()
        defer { files.remove() }
        let identity = "sslcert=\(files.clientCertificate)&sslkey=\(files.clientKey)"
        for query in [
            "", "sslmode=disable", "sslmode=allow", "sslmode=prefer", "sslmode=require",
            "sslmode=require&sslrootcert=\(files.ca)", "sslmode=verify-ca&sslrootcert=\(files.ca)",
            "sslmode=verify-full&sslrootcert=\(files.ca)&\(identity)", "sslmode=prefer&\(identity)",
        ] {
            let configuration = try LedgerFactory.postgresConfiguration(Self.url(query))
            #expect(configuration.password == Self.decodedSecret)
            #expect(configuration.host == "db.example")
            #expect(configuration.port == 6432)
        }
    }

    // MARK: Errors name the parameter, never the password

    @Test func tlsErrors() throws {
        let files = try TLSFiles()
        defer { files.remove() }
        let missing = files.directory.appendingPathComponent("missing.pem").path
        let cases: [(query: String, mentions: [String])] = [
            ("sslmode=verify", ["sslmode", "verify", "verify-full"]),
            ("sslmode=REQUIRE", ["sslmode", "REQUIRE"]),
            ("sslmode=", ["sslmode", "empty"]),
            ("sslmode=require&sslmode=disable", ["sslmode", "twice"]),
            ("sslmode=require&sslcert=\(files.clientCertificate)", ["sslcert", "sslkey"]),
            ("sslmode=require&sslkey=\(files.clientKey)", ["sslkey", "sslcert"]),
            ("sslmode=verify-ca&sslrootcert=\(missing)", ["sslrootcert", missing]),
            ("sslmode=verify-ca&sslrootcert=\(files.notPEM)", ["sslrootcert", files.notPEM]),
            ("sslmode=require&sslcert=\(missing)&sslkey=\(files.clientKey)", ["sslcert", missing]),
            ("sslmode=require&sslcert=\(files.clientCertificate)&sslkey=\(missing)", ["sslkey", missing]),
            ("sslmode=require&sslcert=\(files.clientCertificate)&sslkey=\(files.notPEM)", ["sslkey", files.notPEM]),
            (
                "sslmode=require&sslcert=\(files.clientCertificate)&sslkey=\(files.otherKey)",
                ["sslcert", "sslkey", files.otherKey]
            ),
        ]
        for (query, mentions) in cases {
            let error = try #require(throws: LedgerError.self, "\(query)") {
                try LedgerFactory.postgresConfiguration(Self.url(query))
            }
            let text = String(describing: error)
            for word in mentions { #expect(text.contains(word), "\(query): \(text)") }
            #expect(!text.contains(Self.secret), "\(query): \(text)")
            #expect(!text.contains(Self.decodedSecret), "\(query): \(text)")
        }
        // Through `make` as well.
        let error = try #require(throws: LedgerError.self) {
            try LedgerFactory.make(url: Self.url("sslmode=bogus"), logger: .init(label: "test"))
        }
        #expect(!String(describing: error).contains(Self.decodedSecret))
    }
}

/// A throwaway CA, a client certificate it signed with its key, a key of no certificate and a
/// file that is not PEM, made with `openssl` in a temporary directory.
private struct TLSFiles {
    let directory: URL
    var ca: String { self.path("ca.pem") }
    var clientCertificate: String { self.path("client.pem") }
    var clientKey: String { self.path("client.key") }
    var otherKey: String { self.path("other.key") }
    var notPEM: String { self.path("not.pem") }

    init() throws {
        self.directory = FileManager.default.temporaryDirectory.appendingPathComponent("ledger-tls-\(UUID())")
        try FileManager.default.createDirectory(at: self.directory, withIntermediateDirectories: true)
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        try self.openssl(
            ["req", "-x509"] + ec + [
                "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=ledger-test-ca", "-days", "2",
            ])
        try self.openssl(["req"] + ec + ["-keyout", "client.key", "-out", "client.csr", "-subj", "/CN=ledger"])
        try self.openssl([
            "x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out",
            "client.pem", "-days", "2",
        ])
        try self.openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "other.key"])
        try Data("not a certificate\n".utf8).write(to: self.directory.appendingPathComponent("not.pem"))
    }

    func remove() { try? FileManager.default.removeItem(at: self.directory) }

    private func path(_ name: String) -> String { self.directory.appendingPathComponent(name).path }

    private func openssl(_ arguments: [String]) throws {
        let status = try SpawnedProcess(
            executable: "/usr/bin/env", arguments: ["openssl"] + arguments, directory: self.directory.path
        ).waitBlocking()
        guard status == 0 else {
            throw LedgerError.unavailable(
                "openssl \(arguments.joined(separator: " ")) exited with \(status); is openssl installed?"
            )
        }
    }
}
