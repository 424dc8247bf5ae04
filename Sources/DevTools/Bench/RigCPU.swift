import Foundation
import Synchronization

/// The bench process's own CPU while a scenario sends: the mock broker, the provider sandbox,
/// the load generator and the outcome reader all run in it, on the same two cores as the
/// workers. Its first and last quarter say whether the rig itself grew busier as the run went
/// on. It does: librdkafka's mock broker finds a fetch's offset by walking each partition's
/// whole log from its start (`rd_kafka_mock_msgset_find`, "FIXME: Maintain an index"), and
/// keeps up to 5 MB or 100,000 record batches per partition, so every fetch costs more as the
/// run goes on (BENCHMARKS.md, 2026-11-29 14:40–16:10).
final class RigSampler: Sendable {
    /// When sampling began, and (seconds since then, the process's CPU seconds) at each sample.
    private let state = Mutex<(start: ContinuousClock.Instant?, samples: [(seconds: Double, cpu: Double)])>((nil, []))

    func begin() {
        self.state.withLock { $0 = (ContinuousClock.now, []) }
        self.sample()
    }

    func sample() {
        guard let stats = ProcessStats.read(pid: getpid()) else { return }
        self.state.withLock { state in
            guard let start = state.start else { return }
            state.samples.append(((ContinuousClock.now - start).timeInterval, stats.cpuSeconds))
        }
    }

    /// The CPU in % of a core over the first and the last quarter of the samples' span.
    var quarters: (first: Double, last: Double)? {
        Self.quarters(self.state.withLock { $0.samples })
    }

    /// The CPU in % of a core over the first and the last quarter of the span the samples cover
    /// (each quarter from the samples nearest its ends); nil with fewer than 5 samples or no
    /// time between them.
    static func quarters(_ samples: [(seconds: Double, cpu: Double)]) -> (first: Double, last: Double)? {
        guard samples.count >= 5, let first = samples.first, let last = samples.last, last.seconds > first.seconds
        else { return nil }
        let quarter = (last.seconds - first.seconds) / 4
        func nearest(_ seconds: Double) -> (seconds: Double, cpu: Double) {
            samples.min { abs($0.seconds - seconds) < abs($1.seconds - seconds) }!
        }
        func percent(_ from: (seconds: Double, cpu: Double), _ to: (seconds: Double, cpu: Double)) -> Double? {
            guard to.seconds > from.seconds else { return nil }
            return (to.cpu - from.cpu) / (to.seconds - from.seconds) * 100
        }
        guard let early = percent(first, nearest(first.seconds + quarter)),
            let late = percent(nearest(last.seconds - quarter), last)
        else { return nil }
        return (early, late)
    }
}
