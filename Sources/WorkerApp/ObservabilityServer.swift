import Foundation
import Hummingbird
public import Logging
import NIOCore
public import Prometheus
public import ServiceLifecycle
public import Worker

/// The worker's HTTP side door for operators: Prometheus metrics and Kubernetes probes.
///
/// - `GET /metrics`: every series of the registry, Prometheus text format, each with its
///   `# HELP` line, and the standard `process_*` metrics (CPU, memory, file descriptors).
/// - `GET /health/live`: 200 while the process serves requests.
/// - `GET /health/ready`: 200 when every readiness check passes (group joined, broker and
///   ledger reachable, waiting records consumed), 503 otherwise; the JSON answer maps each
///   check's name to `ok` or to why it failed.
public struct ObservabilityServer: Sendable {
    /// One readiness check's result.
    public struct Check: Sendable, Hashable, Codable {
        public var name: String
        public var ok: Bool
        public var detail: String

        public init(name: String, ok: Bool, detail: String) {
            self.name = name
            self.ok = ok
            self.detail = detail
        }
    }

    public let host: String
    public let port: Int
    public let registry: PrometheusCollectorRegistry
    public let readiness: @Sendable () async -> [Check]
    public let logger: Logger
    /// `# HELP` text by metric name.
    public let help: [String: String]

    public init(
        host: String,
        port: Int,
        registry: PrometheusCollectorRegistry,
        logger: Logger,
        help: [String: String] = CancelWorker.metricsHelp.merging(JSONLogSink.metricsHelp) { worker, _ in worker },
        readiness: @escaping @Sendable () async -> [Check]
    ) {
        self.help = help
        self.host = host
        self.port = port
        self.registry = registry
        self.readiness = readiness
        self.logger = logger
    }

    /// `cancel_worker_ready` (what `/health/ready` answers, as 1 or 0) and one
    /// `cancel_worker_readiness_check` per check, so an alert can watch readiness where no
    /// orchestrator probes it.
    static func readinessExposition(_ checks: [Check]) -> String {
        var lines = [
            "# HELP cancel_worker_ready 1 when /health/ready answers 200 (every readiness check passes), else 0.",
            "# TYPE cancel_worker_ready gauge", "cancel_worker_ready \(checks.allSatisfy(\.ok) ? 1 : 0)",
            "# HELP cancel_worker_readiness_check Each readiness check of /health/ready: 1 passing, 0 failing.",
            "# TYPE cancel_worker_readiness_check gauge",
        ]
        for check in checks {
            lines.append("cancel_worker_readiness_check{check=\"\(check.name)\"} \(check.ok ? 1 : 0)")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The Hummingbird application; add it to the process's `ServiceGroup`.
    public func application() -> any Service {
        let router = Router()
        let registry = self.registry
        let readiness = self.readiness
        let help = self.help
        router.get("/metrics") { _, _ -> Response in
            let text =
                MetricsHelp.annotate(String(decoding: registry.emitToBuffer(), as: UTF8.self), help: help)
                + ProcessMetrics.exposition() + Self.readinessExposition(await readiness())
            return Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: text))
            )
        }
        router.get("/health/live") { _, _ -> Response in
            Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: #"{"status":"live"}"#)))
        }
        router.get("/health/ready") { _, _ -> Response in
            let checks = await readiness()
            let ready = checks.allSatisfy(\.ok)
            let body =
                (try? JSONEncoder().encode(
                    ["ready": ready ? "true" : "false"].merging(
                        Dictionary(uniqueKeysWithValues: checks.map { ($0.name, $0.ok ? "ok" : $0.detail) })
                    ) { a, _ in a })) ?? Data()
            return Response(
                status: ready ? .ok : .serviceUnavailable,
                headers: [.contentType: "application/json"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: body))
            )
        }
        let logger = self.logger
        return Application(
            router: router,
            configuration: .init(address: .hostname(self.host, port: self.port), serverName: "cancel-worker"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                logger.info("metrics and health endpoints listening", metadata: ["port": .stringConvertible(port)])
            },
            logger: logger
        )
    }
}
