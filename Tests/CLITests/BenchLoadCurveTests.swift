import Testing

@testable import DevTools

/// The load curve (scenario f) and the line that reports it against its saturated point: issue
/// 14's "at 10 % of saturation, CPU per command ≤ 2× the saturated figure" is read from it.
@Suite("bench: the load curve")
struct BenchLoadCurveTests {
    private static func result(_ scenario: BenchScenario, throughput: Double, micros: Double) -> BenchResult {
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
}
