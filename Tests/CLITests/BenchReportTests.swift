import Testing

@testable import DevTools

/// What a bench report says beyond the figures.
@Suite("bench: the report's outcome lines")
struct BenchReportTests {
    /// CI run 69 printed "outcomes cancelled 535, rejected 65" and nothing of why; the first
    /// reason of each other status now follows the counts.
    @Test("a run whose commands did not all end cancelled prints the first reason of each other status")
    func reasons() throws {
        let standard = BenchScenario.standard()
        var mixed = BenchLoadCurveTests.result(standard[0], throughput: 100, micros: 200)
        mixed.outcomes = ["cancelled": 535, "rejected": 65]
        mixed.outcomeReasons = [
            "rejected": "FastPOD refused the cancel (HTTP 422 Parameter Error): Order is already cancelled."
        ]
        let clean = BenchLoadCurveTests.result(standard[1], throughput: 100, micros: 200)
        let lines = BenchSuite.Report(machine: "test", httpCeiling: nil, results: [mixed, clean]).table
            .split(separator: "\n").map(String.init)
        let at = try #require(lines.firstIndex { $0.hasPrefix("a: provider latency 0") })
        #expect(lines[at].hasSuffix("outcomes cancelled 535, rejected 65"))
        #expect(
            lines[at + 1]
                == "  rejected, the first: FastPOD refused the cancel (HTTP 422 Parameter Error): Order is already cancelled."
        )
        #expect(lines[at + 2].hasPrefix("b: "), "a run whose commands all ended cancelled has no such line")
    }
}
