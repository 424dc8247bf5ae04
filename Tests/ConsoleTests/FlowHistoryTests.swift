import Foundation
import Testing

@testable import Console

@Suite("The Flow page's figures from Prometheus text")
struct FlowHistoryTests {
    @Test("the exposition parser reads labels with escapes, special values, and skips comments and junk")
    func parse() throws {
        let samples = PrometheusText.parse(
            """
            # HELP cancel_worker_outcomes_total Outcomes published.
            # TYPE cancel_worker_outcomes_total counter
            cancel_worker_outcomes_total{provider="fastpod",status="cancelled"} 12
            weird{a="x\\"y\\\\z\\n",b="2"} 1.5e3 1700000000000
            h_bucket{le="+Inf"} +Inf
            not a sample line
            broken{a="unterminated} 1
            plain 3
            """)
        try #require(samples.count == 4)
        #expect(
            samples[0]
                == MetricSample(
                    name: "cancel_worker_outcomes_total", labels: ["provider": "fastpod", "status": "cancelled"],
                    value: 12))
        #expect(samples[1].labels == ["a": "x\"y\\z\n", "b": "2"] && samples[1].value == 1500)
        #expect(samples[2].labels["le"] == "+Inf" && samples[2].value == .infinity)
        #expect(samples[3] == MetricSample(name: "plain", value: 3))
    }

    static func scrape(_ at: TimeInterval, _ workers: [(String, [MetricSample]?)], lag: [LagEntry]? = nil) -> FlowScrape
    {
        FlowScrape(
            at: Date(timeIntervalSince1970: at),
            workers: workers.map { url, samples in
                FlowScrape.Worker(
                    url: url,
                    values: samples.map { Dictionary($0.map { ($0.series, $0.value) }, uniquingKeysWith: +) })
            }, lag: lag)
    }

    static func outcomes(_ cancelled: Double, _ failed: Double) -> [MetricSample] {
        [
            MetricSample(
                name: "cancel_worker_outcomes_total", labels: ["provider": "fastpod", "status": "cancelled"],
                value: cancelled),
            MetricSample(
                name: "cancel_worker_outcomes_total", labels: ["provider": "fastpod", "status": "failed"], value: failed
            ),
        ]
    }

    @Test("rates per worker over the window, summed; a restarted worker counts from zero; a silent one is skipped")
    func rates() throws {
        var history = FlowHistory()
        history.append(Self.scrape(1000, [("a", Self.outcomes(100, 1)), ("b", Self.outcomes(50, 0))]))
        history.append(Self.scrape(1010, [("a", Self.outcomes(130, 1)), ("b", nil)]))
        // Worker b restarted: its counter went from 50 to 20, so it grew by 20.
        history.append(Self.scrape(1020, [("a", Self.outcomes(160, 3)), ("b", Self.outcomes(20, 0))]))
        let byStatus = try #require(history.rate("cancel_worker_outcomes_total", by: ["status"], window: 60))
        #expect(byStatus[["cancelled"]] == 60.0 / 20 + 20.0 / 20)
        #expect(byStatus[["failed"]] == 2.0 / 20)
        #expect(history.current("cancel_worker_outcomes_total", by: ["status"])[["cancelled"]] == 180)
        // A window of 15 s holds only the last two scrapes: worker a only (b was silent at 1010).
        let recent = try #require(history.rate("cancel_worker_outcomes_total", by: [], window: 15))
        #expect(recent[[]] == 32.0 / 10)
        let points = history.ratePoints("cancel_worker_outcomes_total") { $0["status"] == "cancelled" }
        #expect(points.map(\.value) == [3, 3], "b is skipped next to its silent reading")
        // Older than the span: dropped.
        history.span = 15
        history.append(Self.scrape(1030, [("a", Self.outcomes(160, 3))]))
        #expect(history.scrapes.count == 2)
    }

    /// Review finding (WorkerApp): the increase compared a worker's first and last answer in the
    /// window only, so what a counter grew before a restart in the window was lost: the Flow
    /// page's outcomes/s dipped through every rolling deploy.
    @Test("review finding: a restart inside the window keeps what the counter grew before it")
    func restartInsideTheWindow() throws {
        var history = FlowHistory()
        for (index, value) in [100.0, 160, 10, 30].enumerated() {
            history.append(Self.scrape(1_000 + 20 * Double(index), [("a", Self.outcomes(value, 0))]))
        }
        let increase = try #require(history.increase("cancel_worker_outcomes_total", by: [], window: 120))
        #expect(increase.values[[]] == 90, "60 before the restart, 10 counted from zero, then 20")
        #expect(increase.seconds == 60)
    }

    @Test("quantiles from histogram buckets, interpolated as histogram_quantile; none without observations")
    func quantiles() {
        func buckets(_ counts: [(String, Double)]) -> [MetricSample] {
            counts.map {
                MetricSample(
                    name: "latency_bucket", labels: ["provider": "feee", "result": "cancelled", "le": $0.0], value: $0.1
                )
            }
        }
        var history = FlowHistory()
        history.append(Self.scrape(0, [("a", buckets([("0.05", 0), ("0.1", 0), ("0.25", 0), ("+Inf", 0)]))]))
        history.append(Self.scrape(10, [("a", buckets([("0.05", 50), ("0.1", 90), ("0.25", 100), ("+Inf", 100)]))]))
        let p50 = history.quantile(0.5, histogram: "latency", by: ["provider"], window: 60)[["feee"]]
        let p99 = history.quantile(0.99, histogram: "latency", by: ["provider"], window: 60)[["feee"]]
        #expect(p50 == 0.05)
        #expect(abs((p99 ?? 0) - (0.1 + 0.15 * 9 / 10)) < 1e-9)
        #expect(FlowHistory.quantile(0.5, buckets: [(0.1, 0), (.infinity, 0)]) == nil)
        #expect(FlowHistory.quantile(0.99, buckets: [(0.1, 1), (.infinity, 10)]) == 0.1, "+Inf: the last finite bound")
    }

    @Test("the Flow page shows the figures, the providers' latency and errors, and the lag per partition")
    func page() {
        func samples(_ scale: Double) -> [MetricSample] {
            Self.outcomes(10 * scale, scale) + [
                MetricSample(
                    name: "cancel_worker_provider_request_duration_seconds_count",
                    labels: ["provider": "fastpod", "result": "cancelled"], value: 9 * scale),
                MetricSample(
                    name: "cancel_worker_provider_request_duration_seconds_count",
                    labels: ["provider": "fastpod", "result": "unknown"], value: scale),
                MetricSample(name: "cancel_worker_throttled_users", value: 4),
            ]
        }
        var history = FlowHistory()
        let lag = [LagEntry(topic: "cancel.commands", partition: 0, committed: 5, end: 12, lag: 7)]
        history.append(Self.scrape(0, [("http://w1/metrics", samples(1))], lag: lag))
        history.append(Self.scrape(10, [("http://w1/metrics", samples(2)), ("http://w2/metrics", nil)], lag: lag))
        let html = FlowPage(history: history, now: Date(timeIntervalSince1970: 10), topics: ["cancel.commands"]).html
        #expect(html.contains(#"<b id="outcomes-total">22</b>"#))
        #expect(html.contains(#"<b id="outcomes-rate">1.1</b>"#))
        #expect(html.contains(#"<b id="throttled-users">4</b>"#) && html.contains(#"<b id="lag-total">7</b>"#))
        #expect(html.contains("<td>fastpod</td><td>1</td><td>–</td><td>–</td><td>10.0 %</td>"), "error ratio 1 in 10")
        #expect(html.contains("<td>cancel.commands</td><td>0</td><td>5</td><td>12</td>"))
        #expect(html.contains("not answering"), "the silent worker is shown")
        #expect(html.contains("<polyline"), "the outcome trend is drawn")
    }
    /// Review finding (WorkerApp): each scrape kept every series of every worker (~500: each
    /// histogram bucket, ledger and process metrics) for the history's 15 minutes: 100 MB for 3
    /// workers at the default interval, 400 MB for 12. It keeps what the Flow page reads.
    @Test("review finding: a scrape keeps only the series the Flow page reads, and the page is the same")
    func keepsWhatThePageReads() {
        func text(_ n: Double) -> String {
            let read = """
                cancel_worker_outcomes_total{provider="fastpod",status="cancelled"} \(100 * n)
                cancel_worker_provider_request_duration_seconds_bucket{provider="fastpod",result="cancelled",le="0.1"} \(10 * n)
                cancel_worker_provider_request_duration_seconds_bucket{provider="fastpod",result="cancelled",le="+Inf"} \(12 * n)
                cancel_worker_provider_request_duration_seconds_count{provider="fastpod",result="cancelled"} \(12 * n)
                cancel_worker_rate_limit_waits_total{provider="futures"} \(3 * n)
                cancel_worker_throttled_users{provider="futures"} 2
                cancel_worker_dead_letters_total{error_class="configuration"} \(n)
                cancel_worker_in_flight 7
                """
            let others = (0..<400).map { "cancel_worker_ledger_operation_duration_seconds_bucket{le=\"\($0)\"} \($0)" }
            return ([read, "cancel_worker_provider_request_duration_seconds_sum{provider=\"fastpod\"} 1.5"] + others)
                .joined(separator: "\n")
        }
        #expect(FlowMonitor.values(of: text(1)).count == 8, "\(FlowMonitor.values(of: text(1)).count) series kept")
        var all = FlowHistory()
        var kept = FlowHistory()
        for (index, n) in [1.0, 2.0, 4.0].enumerated() {
            let at = Date(timeIntervalSince1970: 1_000 + 10 * Double(index))
            let full = Dictionary(PrometheusText.parse(text(n)).map { ($0.series, $0.value) }, uniquingKeysWith: +)
            all.append(FlowScrape(at: at, workers: [.init(url: "a", values: full)], lag: []))
            kept.append(
                FlowScrape(at: at, workers: [.init(url: "a", values: FlowMonitor.values(of: text(n)))], lag: []))
        }
        let now = Date(timeIntervalSince1970: 1_020)
        #expect(
            FlowPage(history: kept, now: now, topics: ["cancel.commands"]).html
                == FlowPage(history: all, now: now, topics: ["cancel.commands"]).html)
    }
}
