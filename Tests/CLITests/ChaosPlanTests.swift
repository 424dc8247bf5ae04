import CancelCore
import Testing

@testable import DevTools
@testable import Sandbox

/// The chaos run's plan, checked without running it.
@Suite("Chaos plan: the faults it announces are the faults it injects")
struct ChaosPlanTests {
    /// Review finding (DevTools): the three Retry-After 8 s faults named orders 70000007,
    /// 70000307 and 70000607 — taker orders, which the sandbox knows by their hash `0x…` — so
    /// none of them ever fired, and the path BENCHMARKS.md describes was never exercised.
    @Test("review finding: each long Retry-After fault matches its order as the sandbox identifies it")
    func longRetryAfterMatches() {
        let faults = ChaosRunner.longRetryAfterFaults
        #expect(faults.count == 3)
        for (fault, index) in zip(faults, [7, 307, 607]) {
            let provider = ProviderID.allCases[index % ProviderID.allCases.count]
            guard case .taker(let hash, _, _, _) = SandboxOrder.reference(provider, id: String(70_000_000 + index))
            else {
                Issue.record("order \(index) is a \(provider) order; the test expects taker's hash")
                continue
            }
            #expect(fault.matches(provider: provider, orderID: hash, account: "demo-\(1 + index % 3)"), "\(hash)")
            #expect(!fault.matches(provider: provider, orderID: "0x\(71_000_000 + index)", account: nil))
        }
    }
}
