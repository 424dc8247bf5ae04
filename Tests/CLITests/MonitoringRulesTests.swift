import CancelCore
import CancelWorkerTesting
import Foundation
import Kafka
import Sandbox
import Testing

/// deploy/monitoring (Grafana dashboard, alert rules) and deploy/k8s/prometheus-rule.yaml
/// watch metrics the worker really serves: every metric their PromQL names appears in the
/// `/metrics` of a worker process that did some of everything.
@Suite("Dashboard and alert rules name the worker's metrics", .serialized, .timeLimit(.minutes(4)))
struct MonitoringRulesTests {
    /// The metric names a PromQL expression reads: identifiers that are not functions,
    /// keywords, label names (in `{…}` or `by (…)`), durations or strings.
    static func metricNames(in expression: String) throws -> Set<String> {
        var text = expression
        for pattern in [
            #""(\\.|[^"\\])*""#, #"\{[^}]*\}"#, #"\[[^\]]*\]"#,
            #"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"#,
        ] {
            text = text.replacing(try Regex(pattern), with: " ")
        }
        let keywords: Set<String> = ["and", "or", "unless", "bool", "offset", "by", "without", "Inf", "NaN"]
        var names = Set<String>()
        for match in text.matches(of: try Regex(#"[A-Za-z_:][A-Za-z0-9_:]*(\s*\()?"#)) {
            let token = String(text[match.range])
            if token.hasSuffix("(") { continue }  // a function
            if !keywords.contains(token) { names.insert(token) }
        }
        return names
    }

    /// Every alert rule: (name, expression, for).
    static func rules(_ groups: [[String: Any]]) -> [(alert: String, expr: String, for: String)] {
        groups.flatMap { ($0["rules"] as? [[String: Any]]) ?? [] }.map {
            ($0["alert"] as? String ?? "", $0["expr"] as? String ?? "", $0["for"] as? String ?? "")
        }
    }

    @Test("the PromQL reader finds metric names only")
    func reader() throws {
        #expect(
            try Self.metricNames(
                in:
                    #"sum by (provider) (rate(a_total{result=~"x|y"}[5m])) / sum(rate(b_count[5m])) > 0.05 and c == 0"#)
                == ["a_total", "b_count", "c"])
        #expect(try Self.metricNames(in: "histogram_quantile(0.99, sum by (le) (rate(d_bucket[5m])))") == ["d_bucket"])
    }

    @Test("alert rules (plain and PrometheusRule) and the dashboard: their metrics are on a worker's /metrics")
    func metricsExist() async throws {
        let plain = try #require(try await DeployTests.yaml("deploy/monitoring/alert-rules.yml").first)
        let groups = try #require(plain["groups"] as? [[String: Any]])
        let operatorRule = try #require(try await DeployTests.yaml("deploy/k8s/prometheus-rule.yaml").first)
        #expect(operatorRule["apiVersion"] as? String == "monitoring.coreos.com/v1")
        #expect(operatorRule["kind"] as? String == "PrometheusRule")
        let spec = try #require(operatorRule["spec"] as? [String: Any])
        #expect(
            NSDictionary(dictionary: spec).isEqual(to: plain), "the PrometheusRule carries the plain file's rules")
        let rules = Self.rules(groups)
        let byName = Dictionary(uniqueKeysWithValues: rules.map { ($0.alert, $0) })
        #expect(
            Set(byName.keys) == [
                "CancelWorkerLagGrowing", "CancelWorkerDeadLetters", "CancelWorkerProviderErrors",
                "CancelWorkerRateLimited", "CancelWorkerNotReady", "CancelWorkerNoneReady",
            ])
        // When every worker is gone (crash loop, OOM, not scraped) no `cancel_worker_ready`
        // series is left for NotReady to compare: NoneReady fires on its absence.
        #expect(byName["CancelWorkerNoneReady"]?.expr == "absent(cancel_worker_ready == 1)")
        #expect(byName["CancelWorkerLagGrowing"]?.for == "10m", "lag growing for 10 minutes")
        // Review finding (WorkerApp): a retry tier's records wait there by design (10 minutes in
        // `retry.10m`); its lag grows through any provider outage, and "scale the workers" does
        // not help. The commands topic's lag is what the alert is about.
        #expect(
            byName["CancelWorkerLagGrowing"]?.expr.components(
                separatedBy: #"cancel_worker_consumer_lag{topic!~".*[.]retry[.].*"}"#
            )
            .count == 3, "both lag terms leave the retry tiers out: \(byName["CancelWorkerLagGrowing"]?.expr ?? "")")
        #expect(byName["CancelWorkerRateLimited"]?.expr.contains(#"result="retry_later""#) == true)
        let prometheus = try #require(try await DeployTests.yaml("deploy/monitoring/prometheus.yml").first)
        #expect(prometheus["rule_files"] as? [String] == ["alert-rules.yml"])

        let dashboardData = try Data(
            contentsOf: DeployTests.root.appendingPathComponent("deploy/monitoring/grafana-dashboard.json"))
        let dashboard = try #require(try JSONSerialization.jsonObject(with: dashboardData) as? [String: Any])
        let panels = try #require(dashboard["panels"] as? [[String: Any]]).filter { $0["type"] as? String != "row" }
        let expressions = panels.flatMap { panel in
            ((panel["targets"] as? [[String: Any]]) ?? []).compactMap { $0["expr"] as? String }
        }
        #expect(panels.count >= 10 && expressions.count >= panels.count, "every panel queries something")
        let ids = panels.compactMap { $0["id"] as? Int }
        #expect(Set(ids).count == panels.count)

        var named: [String: Set<String>] = [:]  // metric → where it is used
        for rule in rules {
            for name in try Self.metricNames(in: rule.expr) { named[name, default: []].insert(rule.alert) }
        }
        for (index, expression) in expressions.enumerated() {
            for name in try Self.metricNames(in: expression) { named[name, default: []].insert("panel \(index)") }
        }
        for required in [
            "cancel_worker_outcomes_total", "cancel_worker_consumer_lag", "cancel_worker_dead_letters_total",
            "cancel_worker_rate_limit_waits_total", "cancel_worker_provider_request_duration_seconds_bucket",
            "cancel_worker_ready",
        ] {
            #expect(named[required] != nil, "\(required) is watched")
        }

        let watched = named
        // A worker that did some of everything: outcomes, a dead letter, a 429, rate-limit waits.
        try await ProcessFleet.with { fleet in
            let port = try freePort()
            let worker = try ChildProcess(
                fleet.arguments(workerID: "watched", ledgerURL: "memory:", extra: ["http.port": "\(port)"]))
            #expect(try await eventuallyMetric(port: port, "cancel_worker_assigned_partitions") { $0 > 0 })
            fleet.sandbox.addFault(
                SandboxFault(
                    .status(code: 429, retryAfterSeconds: 1), provider: .fastpod, orderPattern: "44000000", count: 1))
            let commands =
                fleet.commands(6)
                + (0..<12).map { index in
                    CancelCommand(
                        commandID: "m\(index)", idempotencyKey: "watched-\(index)", provider: .futures,
                        account: "demo-3", order: .futures(id: String(55_100_000 + index)), requestedAt: Date())
                }
            try await fleet.produce(commands, raw: ["not a command"])
            let (byKey, _) = try await fleet.outcomes(expecting: commands.count, timeout: .seconds(90))
            #expect(byKey.count == commands.count)
            let names = Set(watched.keys)
            let served = try await eventually(timeout: .seconds(30)) {
                guard let text = await fetch("http://127.0.0.1:\(port)/metrics") else { return false }
                return names.allSatisfy { !samples(text, $0).isEmpty }
            }
            let text = await fetch("http://127.0.0.1:\(port)/metrics") ?? ""
            for (name, users) in watched.sorted(by: { $0.key < $1.key }) {
                #expect(!samples(text, name).isEmpty, "\(name) (used by \(users.sorted())) is on /metrics")
            }
            #expect(served)
            #expect(samples(text, "cancel_worker_ready")[""] == 1, "a worker that works is ready")
            #expect(
                samples(text, "cancel_worker_provider_request_duration_seconds_count")[
                    #"provider="fastpod",result="retry_later""#] == 1, "the 429 answer is counted as retry_later")
            _ = try await worker.stop(signal: SIGTERM)
        }
    }
}
