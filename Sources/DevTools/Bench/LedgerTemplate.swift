public import CancelCore
public import Foundation
import Ledger

/// A SQLite ledger that already holds `keys` keys, as one that keeps days of them does: written
/// once (on first use), then copied into each scenario's directory before its workers start
/// (`bench --ledger-keys N`). The bench otherwise starts every scenario on a new, empty file,
/// where SQLite's checkpoints are cheap; issue 14 found that with 200,000 keys they stop the
/// writer for 25–45 ms about once in eight batches.
public actor LedgerTemplate {
    public nonisolated let keys: Int
    private nonisolated let directory: URL
    private var written = false
    /// Where the keys come from (a seeded one in tests, to find them again).
    private let generator: any RandomNumberGenerator & Sendable

    public init(keys: Int, generator: any RandomNumberGenerator & Sendable = SystemRandomNumberGenerator()) {
        self.keys = keys
        self.generator = generator
        self.directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "cancel-worker-bench-ledger-\(UUID().uuidString.prefix(8))")
    }

    private var file: URL { self.directory.appendingPathComponent("ledger.db") }

    /// Copies the template (written now if it is not yet) to `destination`, a ledger file that
    /// does not exist yet.
    public func copy(to destination: URL, progress: @Sendable (String) -> Void = { _ in }) async throws {
        if !self.written {
            let started = ContinuousClock.now
            var generator = self.generator
            let ledger = try SQLiteLedger(path: self.file.path)
            try await Self.fill(ledger, keys: self.keys, using: &generator)
            await ledger.shutdown()
            self.written = true
            progress("ledger template: \(self.keys) keys written in \(ContinuousClock.now - started)")
        }
        // At rest (no transaction open) the file and its log hold the last commit; SQLite
        // rebuilds the log's index when the copy is opened.
        for suffix in ["", "-wal"] {
            let source = URL(fileURLWithPath: self.file.path + suffix)
            guard FileManager.default.fileExists(atPath: source.path) else { continue }
            try FileManager.default.copyItem(at: source, to: URL(fileURLWithPath: destination.path + suffix))
        }
    }

    /// Deletes the template's files.
    public nonisolated func remove() {
        try? FileManager.default.removeItem(at: self.directory)
    }

    /// Writes `keys` random keys (UUIDs from `generator`, as upstream makes them) to `ledger`,
    /// each claimed, completed and marked published as a worker leaves it, 512 at a time.
    public static func fill(
        _ ledger: any IdempotencyLedger, keys: Int, using generator: inout some RandomNumberGenerator
    ) async throws {
        for start in stride(from: 0, to: keys, by: 512) {
            let batch = (start..<min(keys, start + 512)).map { _ in Self.randomKey(using: &generator) }
            try await Self.workerWrites(ledger, keys: batch)
        }
    }

    public static func randomKey(using generator: inout some RandomNumberGenerator) -> String {
        let (high, low) = (generator.next() as UInt64, generator.next() as UInt64)
        let bytes = withUnsafeBytes(of: (high, low)) { Array($0) }
        return UUID(
            uuid: (
                bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7], bytes[8], bytes[9],
                bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]
            )
        ).uuidString
    }

    /// What a worker writes for each of `keys`, all at once: a claim that marks the call sent,
    /// the outcome, and (in one batch) the outcomes' published marks.
    public static func workerWrites(
        _ ledger: any IdempotencyLedger, keys: [String], outcome: [UInt8] = LedgerTemplate.outcome
    ) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for key in keys {
                group.addTask {
                    let now = Date()
                    _ = try await ledger.claim(
                        key: key, owner: "bench", fingerprint: "f", lease: .seconds(30), now: now, sendIfNew: true)
                    try await ledger.complete(key: key, owner: "bench", fence: 1, outcome: outcome, now: now)
                }
            }
            try await group.waitForAll()
        }
        try await ledger.markPublished(keys: keys, now: Date())
    }

    /// An outcome's bytes, at about the size of an encoded one (the micro-benchmarks store the same).
    public static let outcome = Array(repeating: UInt8(ascii: "x"), count: 600)
}
