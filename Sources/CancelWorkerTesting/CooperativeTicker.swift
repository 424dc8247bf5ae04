/// Gives the cooperative pool back, now and then, from a CPU-bound test loop.
///
/// Swift's global executor runs every task of the test process on one thread per core: two on
/// the machines this suite runs on. A property test whose loop never suspends holds one of them
/// for its whole run (20,000 random provider answers take ~3 s in a debug build; the five
/// providers' cases ~15 s), and two such loops hold both: every other test's timers, timeouts
/// and continuations wait behind them. Thread dumps of a full run caught exactly that, both
/// threads inside property loops while sandbox and timeout tests beside them waited.
///
/// Calling `tick()` once per iteration suspends every `interval` iterations, so such a loop runs
/// in slices of a few milliseconds and the tests next to it keep their timing.
public struct CooperativeTicker {
    private let interval: Int
    private var count = 0

    public init(every interval: Int = 32) {
        precondition(interval > 0, "a ticker yields every interval ≥ 1 iterations")
        self.interval = interval
    }

    /// Counts one iteration; every `interval`-th one yields to the other tasks.
    public mutating func tick() async {
        self.count += 1
        if self.count.isMultiple(of: self.interval) { await Task.yield() }
    }
}
