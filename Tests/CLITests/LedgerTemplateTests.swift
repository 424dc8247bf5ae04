import CancelCore
import CancelWorkerTesting
import Foundation
import Ledger
import Testing

@testable import DevTools

/// `bench --ledger-keys N`: each scenario's SQLite ledger starts with N keys in it, done as a
/// worker leaves them, written once and copied.
@Suite("bench: a ledger that already holds keys", .timeLimit(.minutes(2)))
struct LedgerTemplateTests {
    @Test("every copy holds the template's keys, completed and published; a new key is still claimed")
    func copiesHoldTheKeys() async throws {
        let template = LedgerTemplate(keys: 1_300, generator: SeededGenerator(seed: 14))
        defer { template.remove() }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ledger-template-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let copies = ["first", "second"].map { directory.appendingPathComponent("\($0).db") }
        for copy in copies { try await template.copy(to: copy) }

        var generator = SeededGenerator(seed: 14)
        let keys = (0..<1_300).map { _ in LedgerTemplate.randomKey(using: &generator) }
        #expect(Set(keys).count == keys.count)
        for copy in copies {
            let ledger = try SQLiteLedger(path: copy.path)
            for key in [keys[0], keys[511], keys[512], keys[1_299]] {
                let entry = try await ledger.entry(for: key)
                #expect(entry?.state == .published, "\(key) in \(copy.lastPathComponent)")
                #expect(entry?.outcome == LedgerTemplate.outcome)
            }
            #expect(try await ledger.entry(for: LedgerTemplate.randomKey(using: &generator)) == nil)
            let claim = try await ledger.claim(
                key: "new-key-\(copy.lastPathComponent)", owner: "w", fingerprint: "f", lease: .seconds(30),
                now: Date(), sendIfNew: true)
            guard case .claimed = claim.result else {
                Issue.record("a new key is claimed: \(claim)")
                continue
            }
        }
        // Each copy is a file of its own.
        #expect(try await SQLiteLedger(path: copies[1].path).entry(for: "new-key-first.db") == nil)
    }
}
