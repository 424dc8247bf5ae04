import ArgumentParser
import CancelCore
import Foundation
import OperatorTools

/// Dead-letter filters shared by `replay` and `dlq`.
struct FilterOptions: ParsableArguments {
    @Option(help: "Only this provider.")
    var provider: String?

    @Option(help: "Only this account.")
    var account: String?

    @Option(help: "Only this error class: invalid_command, configuration, retries_exhausted, undeliverable.")
    var errorClass: String?

    @Option(help: "Only this idempotency key.")
    var key: String?

    @Option(help: "Dead-lettered at or after: RFC 3339, or a duration ago (2h, 30m).")
    var since: String?

    @Option(help: "Dead-lettered at or before: RFC 3339, or a duration ago.")
    var until: String?

    func validate() throws {
        if let provider, ProviderID(rawValue: provider) == nil { throw ValidationError("unknown provider \(provider)") }
        if let errorClass,
            !["invalid_command", "configuration", "retries_exhausted", "undeliverable"].contains(errorClass)
        {
            throw ValidationError("unknown error class \(errorClass)")
        }
        _ = try self.filter()
    }

    func filter() throws -> DeadLetterFilter {
        DeadLetterFilter(
            provider: self.provider, account: self.account, errorClass: self.errorClass, key: self.key,
            since: try self.since.map { try Self.instant($0, "--since") },
            until: try self.until.map { try Self.instant($0, "--until") }
        )
    }

    static func instant(_ text: String, _ option: String) throws -> Date {
        if let date = Timestamp.parse(text) { return date }
        if let ago = Duration(humanReadable: text) { return Date().addingTimeInterval(-ago.timeInterval) }
        throw ValidationError("\(option): expected an RFC 3339 time or a duration like 2h, got \(text)")
    }
}
