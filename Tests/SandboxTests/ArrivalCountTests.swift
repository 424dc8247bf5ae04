import CancelCore
import CancelWorkerTesting
import Foundation
import Testing

@testable import Sandbox

/// How the sandbox counts a user's calls per second at arrival. Requests reach the counter in
/// the order their handlers run, not the order they arrived (each sleeps its own latency and
/// jitter first), so the counter must not assume arrival order.
@Suite("Sandbox rate counting at arrival")
struct ArrivalCountTests {
    /// Regression: the window dropped only the oldest entries at its front, so an arrival
    /// counted late (t = 0.0 after t = 0.5) stayed in every later window: a call at t = 1.2
    /// was counted as the 3rd in one second (0.5, 0.0, 1.2), and chaos runs under load
    /// reported a futures user at 11–12/s whose densest second held 10 calls.
    @Test("regression: arrivals counted out of order are counted in the second they arrived in")
    func outOfOrder() {
        let state = SandboxState(configuration: SandboxConfiguration())
        let start = Date(timeIntervalSince1970: 1_000_000)
        for offset in [0.5, 0.0, 1.2] {
            _ = state.arrive(provider: .futures, account: "u", now: start.addingTimeInterval(offset), limit: 2)
        }
        let stats = state.stats()
        #expect(stats.maxRatePerUser["futures:u"] == 2, "densest second: 0.0 and 0.5, or 0.5 and 1.2")
        #expect(stats.rateLimitViolations["futures:u"] == nil)
    }

    @Test("whatever the order arrivals are counted in, the densest second is the one a full scan finds")
    func matchesFullScan() {
        var random = SeededGenerator(seed: 42)
        for _ in 0..<20 {
            let state = SandboxState(configuration: SandboxConfiguration())
            let start = Date(timeIntervalSince1970: 1_000_000)
            let times = (0..<60).map { _ in Double.random(in: 0..<6, using: &random) }.sorted()
            // Counted in handler order: each up to 300 ms behind its arrival.
            let counted = times.map { ($0, $0 + Double.random(in: 0..<0.3, using: &random)) }.sorted { $0.1 < $1.1 }
            for (arrival, _) in counted {
                _ = state.arrive(provider: .futures, account: "u", now: start.addingTimeInterval(arrival), limit: nil)
            }
            let fullScan = times.indices.map { i in times[i...].prefix { $0 - times[i] < 1 }.count }.max() ?? 0
            #expect(state.stats().maxRatePerUser["futures:u"] == fullScan)
        }
    }

    @Test("a late-counted arrival that fills an earlier second over the limit is a violation")
    func lateArrivalFillsEarlierSecond() {
        let state = SandboxState(configuration: SandboxConfiguration())
        let start = Date(timeIntervalSince1970: 1_000_000)
        for offset in [0.1, 0.2, 0.3] {
            #expect(!state.arrive(provider: .futures, account: "u", now: start.addingTimeInterval(offset), limit: 3))
        }
        #expect(state.arrive(provider: .futures, account: "u", now: start.addingTimeInterval(0.0), limit: 3))
        #expect(state.stats().maxRatePerUser["futures:u"] == 4)
    }
}
