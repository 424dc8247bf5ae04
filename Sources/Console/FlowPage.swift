import CancelCore
import Foundation

/// The Flow page: is it flowing? Outcomes per second by provider and status, provider latency
/// and error ratio, rate-limit waits and throttled users, and the consumer lag per partition
/// with its 15-minute trend, from the workers' `/metrics` and the brokers.
struct FlowPage {
    var history: FlowHistory
    var now = Date()
    /// Rates are over this many seconds (or what the history holds, if less).
    var window: TimeInterval = 60
    /// The commands topic first, then the retry tiers (lag is shown in this order).
    var topics: [String]

    static let outcomes = "cancel_worker_outcomes_total"
    static let latency = "cancel_worker_provider_request_duration_seconds"
    static let waits = "cancel_worker_rate_limit_waits_total"
    static let throttled = "cancel_worker_throttled_users"
    static let deadLetters = "cancel_worker_dead_letters_total"
    static let inFlight = "cancel_worker_in_flight"
    /// Every series name the page reads (the histogram by its buckets and count).
    static let seriesRead: Set<String> = [
        Self.outcomes, Self.latency + "_bucket", Self.latency + "_count", Self.waits, Self.throttled, Self.deadLetters,
        Self.inFlight,
    ]
    /// Provider answers that count as errors: no usable answer, or a configuration fault.
    static let errorResults: Set<String> = ["unknown", "configuration"]

    var html: String {
        guard let latest = self.history.latest else {
            return #"<h1>Flow</h1><p id="no-data">No reading yet: the first comes within one scrape interval.</p>"#
        }
        var parts = ["<h1>Flow</h1>"]
        parts.append(self.figures(latest))
        parts.append(self.workers(latest))
        parts.append(self.charts())
        parts.append(self.outcomeTable())
        parts.append(self.providerTable())
        parts.append(self.lagTable(latest))
        return parts.joined(separator: "\n")
    }

    private func figure(_ id: String, _ label: String, _ value: String) -> String {
        #"<div class="figure"><span>\#(Page.escape(label))</span><b id="\#(id)">\#(Page.escape(value))</b></div>"#
    }

    private func total(_ grouped: FlowHistory.Grouped) -> Double { grouped.values.reduce(0, +) }

    private func figures(_ latest: FlowScrape) -> String {
        let outcomeRate = self.history.rate(Self.outcomes, by: [], window: self.window).map(self.total)
        let deadLetterRate = self.history.rate(Self.deadLetters, by: [], window: self.window).map(self.total)
        let lag = latest.lag.map { Double($0.reduce(0) { $0 + $1.lag }) }
        return """
            <div class="figures">
            \(self.figure("outcomes-total", "outcomes published", Page.number(self.total(self.history.current(Self.outcomes)))))
            \(self.figure("outcomes-rate", "outcomes/s (last \(Int(self.window)) s)", outcomeRate.map(Page.number) ?? "–"))
            \(self.figure("dead-letters-rate", "dead letters/min", deadLetterRate.map { Page.number($0 * 60) } ?? "–"))
            \(self.figure("in-flight", "in flight", Page.number(self.total(self.history.current(Self.inFlight)))))
            \(self.figure("throttled-users", "throttled users", Page.number(self.total(self.history.current(Self.throttled)))))
            \(self.figure("lag-total", "consumer lag", lag.map(Page.number) ?? "–"))
            </div>
            """
    }

    private func workers(_ latest: FlowScrape) -> String {
        let rows = latest.workers.map { worker in
            [
                Page.escape(worker.url),
                worker.values == nil
                    ? #"<span class="down">not answering: \#(Page.escape(worker.error ?? ""))</span>"#
                    : #"<span class="ok">up</span>"#,
            ]
        }
        var html = "<h2>Workers</h2>" + Page.table(id: "workers", columns: ["metrics endpoint", "state"], rows: rows)
        html += #"<p class="updated">read at \#(Page.escape(Timestamp.format(latest.at)))"#
        if let error = latest.lagError { html += #" · <span class="down">lag not read: \#(Page.escape(error))</span>"# }
        return html + "</p>"
    }

    private func charts() -> String {
        let statuses = Set(self.history.current(Self.outcomes, by: ["status"]).keys.compactMap(\.first)).sorted()
        let outcomeSeries = statuses.map { status in
            (name: status, points: self.history.ratePoints(Self.outcomes) { $0["status"] == status })
        }
        let lagSeries = self.topics.map { topic in (name: topic, points: self.history.lagPoints(topic: topic)) }
            .filter { !$0.points.isEmpty }
        // The charts span what the history holds: one minute at least, 15 minutes at most.
        let held = self.history.scrapes.first.map { self.now.timeIntervalSince($0.at) } ?? 0
        let span = min(self.history.span, max(60, held))
        return """
            <div class="charts">
            \(Page.chart(id: "chart-outcomes", title: "outcomes/s by status", unit: "/s", series: outcomeSeries, now: self.now, span: span))
            \(Page.chart(id: "chart-lag", title: "consumer lag by topic", unit: "records", series: lagSeries, now: self.now, span: span))
            </div>
            """
    }

    private func outcomeTable() -> String {
        let rates = self.history.rate(Self.outcomes, by: ["provider", "status"], window: self.window) ?? [:]
        let totals = self.history.current(Self.outcomes, by: ["provider", "status"])
        let rows = totals.keys.sorted { $0.lexicographicallyPrecedes($1) }.map { key in
            [
                Page.escape(key[0]), Page.escape(key[1]), Page.number(rates[key] ?? 0),
                Page.number(totals[key] ?? 0),
            ]
        }
        return "<h2>Outcomes by provider and status</h2>"
            + Page.table(
                id: "outcomes", columns: ["provider", "status", "per second", "total"], rows: rows,
                empty: "no outcome published yet")
    }

    private func providerTable() -> String {
        let calls = self.history.rate(Self.latency + "_count", by: ["provider", "result"], window: self.window) ?? [:]
        let p50 = self.history.quantile(0.5, histogram: Self.latency, by: ["provider"], window: self.window)
        let p99 = self.history.quantile(0.99, histogram: Self.latency, by: ["provider"], window: self.window)
        let waits = self.history.rate(Self.waits, by: ["provider"], window: self.window) ?? [:]
        let providers = Set(
            self.history.current(Self.latency + "_count", by: ["provider"]).keys.compactMap(\.first)
                + self.history.current(Self.waits, by: ["provider"]).keys.compactMap(\.first)
        ).sorted()
        let rows = providers.map { provider -> [String] in
            let mine = calls.filter { $0.key.first == provider }
            let all = self.total(mine)
            let errors = self.total(mine.filter { Self.errorResults.contains($0.key.last ?? "") })
            let throttled = self.total(mine.filter { $0.key.last == "retry_later" })
            return [
                Page.escape(provider), Page.number(all), Page.milliseconds(p50[[provider]]),
                Page.milliseconds(p99[[provider]]), all > 0 ? String(format: "%.1f %%", 100 * errors / all) : "–",
                Page.number(throttled), Page.number(waits[[provider]] ?? 0),
            ]
        }
        return "<h2>Providers (last \(Int(self.window)) s)</h2>"
            + Page.table(
                id: "providers",
                columns: [
                    "provider", "calls/s", "p50", "p99", "error ratio", "429 / 29001 answers/s", "rate-limit waits/s",
                ], rows: rows, empty: "no provider call yet")
    }

    private func lagTable(_ latest: FlowScrape) -> String {
        guard let entries = latest.lag else {
            return "<h2>Consumer lag</h2><p class=\"down\">The brokers did not answer.</p>"
        }
        let order = Dictionary(uniqueKeysWithValues: self.topics.enumerated().map { ($1, $0) })
        let rows = entries.sorted { (order[$0.topic] ?? 99, $0.partition) < (order[$1.topic] ?? 99, $1.partition) }.map
        {
            entry in
            [
                Page.escape(entry.topic), String(entry.partition), entry.committed.map(String.init) ?? "–",
                String(entry.end), #"<span class="num">\#(entry.lag)</span>"#,
            ]
        }
        return "<h2>Consumer lag per partition</h2>"
            + Page.table(id: "lag", columns: ["topic", "partition", "committed", "end", "lag"], rows: rows)
    }
}
