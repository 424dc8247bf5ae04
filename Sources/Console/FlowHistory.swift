public import Foundation

/// One partition's consumer lag as the brokers tell it: the group's committed offset and the
/// partition's end (high watermark).
public struct LagEntry: Sendable, Hashable {
    public var topic: String
    public var partition: Int32
    /// Nil: the group never committed here (the whole retained partition is lag).
    public var committed: Int64?
    public var end: Int64
    public var lag: Int64

    public init(topic: String, partition: Int32, committed: Int64?, end: Int64, lag: Int64) {
        self.topic = topic
        self.partition = partition
        self.committed = committed
        self.end = end
        self.lag = lag
    }
}

/// What one round of reading found: every worker's series (or why it did not answer) and the
/// lag per partition (or why the brokers did not answer).
public struct FlowScrape: Sendable {
    public struct Worker: Sendable {
        public var url: String
        public var values: [MetricSeries: Double]?
        public var error: String?

        public init(url: String, values: [MetricSeries: Double]?, error: String? = nil) {
            self.url = url
            self.values = values
            self.error = error
        }
    }

    public var at: Date
    public var workers: [Worker]
    public var lag: [LagEntry]?
    public var lagError: String?

    public init(at: Date, workers: [Worker], lag: [LagEntry]?, lagError: String? = nil) {
        self.at = at
        self.workers = workers
        self.lag = lag
        self.lagError = lagError
    }
}

/// The last 15 minutes of scrapes, kept in memory, and the figures the Flow page shows:
/// counter rates (per worker, restarts handled as Prometheus' `rate` does, then summed),
/// gauge values, latency quantiles from histogram buckets, and trends for the charts.
public struct FlowHistory: Sendable {
    /// How far back the history reaches.
    public var span: TimeInterval
    public private(set) var scrapes: [FlowScrape] = []

    public init(span: TimeInterval = 900) {
        self.span = span
    }

    public var latest: FlowScrape? { self.scrapes.last }

    public mutating func append(_ scrape: FlowScrape) {
        self.scrapes.append(scrape)
        let oldest = scrape.at.addingTimeInterval(-self.span)
        self.scrapes.removeAll { $0.at < oldest }
    }

    /// Labels → value, for series of `name` whose labels pass `filter`, grouped by `labels`.
    public typealias Grouped = [[String]: Double]

    /// The latest value of each series, summed over the workers that answered (gauges, and
    /// counters' totals).
    public func current(
        _ name: String, by labels: [String] = [], where filter: ([String: String]) -> Bool = { _ in true }
    )
        -> Grouped
    {
        var result: Grouped = [:]
        for worker in self.latest?.workers ?? [] {
            for (series, value) in worker.values ?? [:] where series.name == name && filter(series.labels) {
                result[labels.map { series.labels[$0] ?? "" }, default: 0] += value
            }
        }
        return result
    }

    /// How much each counter grew between two scrapes of one worker (a drop is a restart: the
    /// counter counts from zero again, as in Prometheus' `increase`).
    static func increase(
        from old: [MetricSeries: Double], to new: [MetricSeries: Double], series: MetricSeries
    )
        -> Double
    {
        let now = new[series] ?? 0
        let before = old[series] ?? 0
        return now >= before ? now - before : now
    }

    /// The increase of counter `name` over the last `window` seconds, per group (per worker, the
    /// sum of its increases from answer to answer), and the seconds it covers (per worker: its
    /// oldest and newest answer in the window). Nil: fewer
    /// than two answers in the window.
    public func increase(
        _ name: String, by labels: [String], window: TimeInterval,
        where filter: ([String: String]) -> Bool = { _ in true }
    ) -> (values: Grouped, seconds: TimeInterval)? {
        guard let latest = self.latest else { return nil }
        let start = latest.at.addingTimeInterval(-window)
        let inWindow = self.scrapes.filter { $0.at >= start }
        var values: Grouped = [:]
        var seconds: TimeInterval = 0
        let urls = Set(inWindow.flatMap { $0.workers.map(\.url) })
        for url in urls {
            let answers = inWindow.compactMap { scrape in
                scrape.workers.first { $0.url == url }?.values.map { (scrape.at, $0) }
            }
            guard let first = answers.first, let last = answers.last, last.0 > first.0 else { continue }
            seconds = max(seconds, last.0.timeIntervalSince(first.0))
            // Answer to answer, as Prometheus' `increase` reads a counter: a restart (a counter
            // that went down) inside the window keeps what it grew before.
            for series in last.1.keys where series.name == name && filter(series.labels) {
                var grown = 0.0
                for (older, newer) in zip(answers, answers.dropFirst()) {
                    grown += Self.increase(from: older.1, to: newer.1, series: series)
                }
                values[labels.map { series.labels[$0] ?? "" }, default: 0] += grown
            }
        }
        return seconds > 0 ? (values, seconds) : nil
    }

    /// Per-second rates of counter `name` over the last `window` seconds, per group.
    public func rate(
        _ name: String, by labels: [String], window: TimeInterval,
        where filter: ([String: String]) -> Bool = { _ in true }
    ) -> Grouped? {
        guard let (values, seconds) = self.increase(name, by: labels, window: window, where: filter) else { return nil }
        return values.mapValues { $0 / seconds }
    }

    /// Quantile `q` of histogram `name` (its `_bucket` series) over the last `window` seconds,
    /// per group, interpolated within the bucket as Prometheus' `histogram_quantile` does.
    /// Groups without observations in the window are absent.
    public func quantile(_ q: Double, histogram name: String, by labels: [String], window: TimeInterval) -> Grouped {
        guard let (buckets, _) = self.increase(name + "_bucket", by: labels + ["le"], window: window) else {
            return [:]
        }
        var byGroup: [[String]: [(bound: Double, count: Double)]] = [:]
        for (key, count) in buckets {
            guard let bound = PrometheusText.number(Substring(key.last ?? "")) else { continue }
            byGroup[Array(key.dropLast()), default: []].append((bound, count))
        }
        var result: Grouped = [:]
        for (group, unsorted) in byGroup {
            if let value = Self.quantile(q, buckets: unsorted) { result[group] = value }
        }
        return result
    }

    /// `q` of cumulative buckets (upper bound, count at or below it); nil without observations.
    static func quantile(_ q: Double, buckets unsorted: [(bound: Double, count: Double)]) -> Double? {
        let buckets = unsorted.sorted { $0.bound < $1.bound }
        guard let total = buckets.last?.count, total > 0 else { return nil }
        let rank = q * total
        var lower = (bound: 0.0, count: 0.0)
        for bucket in buckets {
            if bucket.count >= rank {
                // The last finite bound is the best answer for the +Inf bucket.
                if bucket.bound == .infinity { return lower.bound }
                let inBucket = bucket.count - lower.count
                guard inBucket > 0 else { return bucket.bound }
                return lower.bound + (bucket.bound - lower.bound) * (rank - lower.count) / inBucket
            }
            lower = bucket
        }
        return lower.bound
    }

    /// The rate of counter `name` (all series passing `filter`, summed) between each two
    /// consecutive scrapes: the points of a trend chart.
    public func ratePoints(
        _ name: String, where filter: ([String: String]) -> Bool = { _ in true }
    ) -> [(
        at: Date, value: Double
    )] {
        zip(self.scrapes, self.scrapes.dropFirst()).map { old, new in
            let seconds = new.at.timeIntervalSince(old.at)
            var total = 0.0
            for worker in new.workers {
                guard let now = worker.values, let before = old.workers.first(where: { $0.url == worker.url })?.values
                else { continue }
                for series in now.keys where series.name == name && filter(series.labels) {
                    total += Self.increase(from: before, to: now, series: series)
                }
            }
            return (new.at, seconds > 0 ? total / seconds : 0)
        }
    }

    /// The lag of `topic` (every partition summed) at each scrape that read it.
    public func lagPoints(topic: String) -> [(at: Date, value: Double)] {
        self.scrapes.compactMap { scrape in
            scrape.lag.map { entries in
                (scrape.at, Double(entries.filter { $0.topic == topic }.reduce(0) { $0 + $1.lag }))
            }
        }
    }
}
