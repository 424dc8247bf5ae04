import Foundation
import Synchronization
import Testing

@testable import DevTools

/// The load curve (scenario f) and the line that reports it against its saturated point: issue
/// 14's "at 10 % of saturation, CPU per command ≤ 2× the saturated figure" is read from it.
@Suite("bench: the load curve")
struct BenchLoadCurveTests {
    static func result(_ scenario: BenchScenario, throughput: Double, micros: Double) -> BenchResult {
        BenchResult(
            scenario: scenario, seconds: 10, throughput: throughput, p50Milliseconds: 60, p99Milliseconds: 80,
            p999Milliseconds: 90, maxMilliseconds: 95, maxPerUserRate: 3, rateLimitViolations: 0,
            workerCPUSeconds: micros * throughput * 10 / 1_000_000, workerCPUMicrosPerCommand: micros,
            workerIdleCPUPercent: 0.5, workerPeakRSSMegabytes: 60, bound: nil, boundReason: nil,
            outcomes: ["cancelled": Int(throughput * 10)])
    }

    @Test("f sends (b)'s workload at 5, 10, 25, 50 and 100 % of what (b) reached")
    func points() {
        let standard = BenchScenario.standard()
        let b = Self.result(standard[1], throughput: 3_000, micros: 170)
        let points = BenchSuite.scenarios("f", standard: standard, after: [b], settings: BenchSuite.Settings())
        #expect(points.map(\.name) == ["f5", "f10", "f25", "f50", "f100"])
        #expect(points.map(\.load) == [.rate(150), .rate(300), .rate(750), .rate(1_500), .rate(3_000)])
        #expect(points.allSatisfy { $0.latencyMilliseconds == 50 && $0.users == 1_000 })
        #expect(points[1].summary == "as (b), sent at 300/s (10 % of saturation): load curve")
    }

    /// issue 14's "max-in-flight 300, provider 100 ms: ≥ 50 % of the 3,000/s bound" is measured
    /// with `bench --scenarios b --max-in-flight 300 --latency 100`.
    @Test("--latency sets the provider's latency of (b), (d) and the scenarios made from (b), and (b)'s bound follows")
    func latencySetting() {
        var settings = BenchSuite.Settings()
        settings.latency = 100
        settings.maxInFlight = 300
        var standard = BenchScenario.standard(latency: 100)
        for index in standard.indices { settings.apply(to: &standard[index]) }
        #expect(standard.map(\.latencyMilliseconds) == [0, 100, 5, 100], "a stays at 0, c at its own 5 ms")
        #expect(standard[1].summary == "provider latency 100 ms, 1,000 users (Little's law)")
        let b = Self.result(standard[1], throughput: 1_600, micros: 170)
        for name in ["e", "f", "g", "h"] {
            let made = BenchSuite.scenarios(name, standard: standard, after: [b], settings: settings)
            #expect(!made.isEmpty && made.allSatisfy { $0.latencyMilliseconds == 100 }, "\(name)")
        }
        let (bound, reason) = BenchRunner.bound(standard[1], httpCeiling: 9_000)
        #expect(bound == 3_000, "300 in flight ÷ 100 ms")
        #expect(reason == "in flight 300 ÷ latency")
    }

    @Test("the report gives each point's CPU per command as a multiple of f100's, and nothing without f100")
    func curveLine() {
        let standard = BenchScenario.standard()
        let b = Self.result(standard[1], throughput: 3_000, micros: 170)
        let points = BenchSuite.scenarios("f", standard: standard, after: [b], settings: BenchSuite.Settings())
        let micros: [Double] = [340, 272, 224, 188, 160]
        let results = zip(points, micros).map { Self.result($0, throughput: 100, micros: $1) }
        let report = BenchSuite.Report(machine: "test", httpCeiling: nil, results: [b] + results)
        #expect(
            report.curveLines == [
                "load curve (f): µs of worker CPU per command against f100's 160: f5 340 (2.1×), f10 272 (1.7×), f25 224 (1.4×), f50 188 (1.2×)"
            ])
        #expect(report.table.contains(report.curveLines[0]))
        let withoutFull = BenchSuite.Report(machine: "test", httpCeiling: nil, results: [b] + results.dropLast())
        #expect(withoutFull.curveLines.isEmpty)
    }

    @Test("pf sends the Kafka pipe at f's rates, and the report sets f against it point by point")
    func floorCurve() {
        let standard = BenchScenario.standard()
        let b = Self.result(standard[1], throughput: 3_000, micros: 170)
        let settings = BenchSuite.Settings()
        let f = BenchSuite.scenarios("f", standard: standard, after: [b], settings: settings)
        let pf = BenchSuite.scenarios("pf", standard: standard, after: [b], settings: settings)
        #expect(pf.map(\.name) == ["pf5", "pf10", "pf25", "pf50", "pf100"])
        #expect(pf.map(\.load) == f.map(\.load))
        #expect(pf.map(\.commands) == f.map(\.commands))
        #expect(pf.allSatisfy { $0.pipe } && !f.contains { $0.pipe })
        #expect(pf[1].summary == "the Kafka pipe, sent at 300/s (10 % of (b)'s saturation): the floor's load curve")

        let fResults = zip(f, [600.0, 500, 300, 200, 160]).map { Self.result($0, throughput: 100, micros: $1) }
        let pfResults = zip(pf, [200.0, 120, 60, 30, 20]).map { Self.result($0, throughput: 100, micros: $1) }
        let p = Self.result(
            BenchSuite.scenarios("p", standard: standard, after: [], settings: settings)[0],
            throughput: 20_000, micros: 15)
        let report = BenchSuite.Report(machine: "test", httpCeiling: nil, results: [p, b] + fResults + pfResults)
        #expect(
            report.curveLines == [
                "load curve (f): µs of worker CPU per command against f100's 160: f5 600 (3.8×), f10 500 (3.1×), f25 300 (1.9×), f50 200 (1.2×)",
                "the Kafka floor's load curve (pf): µs of worker CPU per command against pf100's 20: pf5 200 (10.0×), pf10 120 (6.0×), pf25 60 (3.0×), pf50 30 (1.5×)",
                "above the Kafka floor (f − pf), µs per command against f100's 140: f5 400 (2.9×), f10 380 (2.7×), f25 240 (1.7×), f50 170 (1.2×)",
            ])
        // Five-letter names keep their last letter in the table (pf100 was printed "pf10").
        #expect(report.table.split(separator: "\n").contains { $0.hasPrefix("pf100 ") })
        // The floor line takes the pipe at full speed (p), not a point of its curve.
        #expect(report.floorLines.count == 1)
        #expect(report.floorLines[0].hasPrefix("Kafka floor (p): 20000 commands/s, 15 µs of CPU per command"))
        // Without f, the floor's curve alone.
        let floorOnly = BenchSuite.Report(machine: "test", httpCeiling: nil, results: pfResults)
        #expect(floorOnly.curveLines == [report.curveLines[1]])
    }
}

/// The bench process's own CPU in the first and last quarter of a scenario's sending: whether
/// the rig (mock broker, sandbox, generator, reader) grew busier as the run went on.
@Suite("bench: the rig's own CPU")
struct BenchRigCPUTests {
    @Test("the first and last quarters' CPU, in % of a core, from the samples nearest their ends")
    func quarters() throws {
        // 0.5 s of CPU a second for the first half of 8 s, then 1.2.
        let samples = (0...16).map { step -> (seconds: Double, cpu: Double) in
            let seconds = Double(step) / 2
            return (seconds, seconds <= 4 ? seconds * 0.5 : 2 + (seconds - 4) * 1.2)
        }
        let quarters = try #require(RigSampler.quarters(samples))
        #expect(abs(quarters.first - 50) < 0.001 && abs(quarters.last - 120) < 0.001, "\(quarters)")
        #expect(RigSampler.quarters(Array(samples.prefix(4))) == nil, "too few samples")
        #expect(RigSampler.quarters(Array(repeating: (1, 1), count: 6)) == nil, "no time between them")
    }

    @Test("the report says it per scenario, and nothing for a scenario without it")
    func line() {
        var e = BenchLoadCurveTests.result(BenchScenario.standard()[1], throughput: 2_295, micros: 230)
        e.scenario.name = "e"
        e.rigCPUPercentFirstQuarter = 91.4
        e.rigCPUPercentLastQuarter = 126.2
        let a = BenchLoadCurveTests.result(BenchScenario.standard()[0], throughput: 3_000, micros: 150)
        let report = BenchSuite.Report(machine: "test", httpCeiling: nil, results: [a, e])
        #expect(
            report.rigLines == [
                "e: the bench process (mock broker, sandbox, generator, outcome reader) used 91 % of a core in the first quarter of the sending, 126 % in the last"
            ])
        #expect(report.table.contains(report.rigLines[0]))
    }
}

/// The bench's per-thread CPU: every run says where the worker's CPU went, without `perf`.
@Suite("bench: the worker's CPU by thread")
struct BenchThreadCPUTests {
    @Test("a thread's CPU comes from its schedstat line, in nanoseconds")
    func parse() {
        #expect(ThreadGroup.cpuSeconds(schedstat: "242034628 36261649 1466\n") == 0.242034628)
        #expect(ThreadGroup.cpuSeconds(schedstat: "") == nil)
        #expect(ThreadGroup.cpuSeconds(schedstat: "x 1 2") == nil)
    }

    @Test("threads are grouped by the names their owners give them")
    func groups() {
        let named: [(String, ThreadGroup)] = [
            ("oot.default-qos", .tasks), ("-qos.overcommit", .ledger), ("NIO-SGLTN-1-#0", .http),
            ("rdk:broker1", .kafka), ("rdk:main", .kafka), ("kafka-consumer-", .kafka), ("cancel-worker", .other),
        ]
        for (name, group) in named { #expect(ThreadGroup(threadNamed: name) == group, "\(name)") }
        // As printed: in order, a group under half a µs left out.
        #expect(
            ThreadGroup.summary(["kafka": 10, "tasks": 68.4, "http": 35, "ledger": 0.2])
                == "tasks 68, HTTP event loops 35, Kafka 10")
    }

    @Test("the sampler counts a thread's CPU since it began, in the thread's group")
    func sampler() async throws {
        let sampler = ThreadSampler()
        sampler.begin([getpid()])
        let (spun, done) = (OneShotFlag(), OneShotFlag())
        let thread = Thread {
            // Named for the kernel: Foundation's `Thread.name` does not reach it here (set
            // inside the thread it raced with `start()` and was lost one run in six; set before
            // `start()` it was lost every time), and the spin then counted as its parent's `tasks`.
            try? "NIO-test-spin".write(toFile: "/proc/thread-self/comm", atomically: false, encoding: .utf8)
            // 0.2 s of this thread's own CPU, however busy the machine is (at most 20 s).
            let until = Date().addingTimeInterval(20)
            var x = 0
            while Self.threadCPUSeconds() < 0.2 && Date() < until { x &+= 1 }
            spun.set(x)
            // Alive until sampled: an exited thread's CPU is what its last sample saw.
            while !done.isSet { usleep(1_000) }
        }
        thread.start()
        while !spun.isSet { try await Task.sleep(for: .milliseconds(20)) }
        sampler.sample([getpid()])
        done.set(1)
        let http = sampler.seconds[.http] ?? 0
        #expect(http >= 0.19 && http <= 2, "\(sampler.seconds)")
    }

    private static func threadCPUSeconds() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1_000_000_000
    }
}

/// Set once from another thread.
private final class OneShotFlag: Sendable {
    private let value = Mutex<Int?>(nil)
    func set(_ x: Int) { self.value.withLock { $0 = x } }
    var isSet: Bool { self.value.withLock { $0 != nil } }
}
