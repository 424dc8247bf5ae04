import CancelCore
import Foundation
import Ledger
public import Logging
import Metrics
public import Prometheus
public import Providers
import ServiceLifecycle
import Worker

/// Builds and runs one worker process from its configuration: the ledger, the providers, the
/// worker, and the metrics/health server, in one `ServiceGroup` that shuts down gracefully on
/// SIGTERM/SIGINT. `cancel-worker run` calls this; so do the tests that start workers.
public enum WorkerApplication {
    /// The providers' settings from the application configuration.
    public static func providersConfiguration(_ configuration: AppConfiguration) -> ProvidersConfiguration {
        var providers = ProvidersConfiguration.defaults
        providers.http.connectTimeout = configuration.httpConnectTimeout
        providers.http.readTimeout = configuration.httpReadTimeout
        providers.http.maxConnectionsPerHost = configuration.httpMaxConnectionsPerHost
        providers.http.sendWindow = configuration.httpSendWindow
        for (id, endpoint) in configuration.providers {
            var settings = ProviderSettings.production(id)
            if let baseURL = endpoint.baseURL { settings.baseURL = baseURL }
            settings.timeout = endpoint.timeout
            settings.maxRetryAfter = configuration.providersMaxRetryAfter
            if let userAgent = endpoint.userAgent { settings.userAgent = userAgent }
            settings.accounts = endpoint.accounts
            settings.defaultCredentials = endpoint.defaultCredentials
            // A rate-limited user's calls are paced 1 s + the jitter allowance apart, which
            // absorbs that much delay between the guard and the socket; a request later than that
            // could arrive within a second of the next, so it is not sent (the guard decides
            // again). Not below 50 ms: the ordinary way to the socket fits in it.
            if configuration.worker.rateLimits[id] != nil {
                settings.sendWindow = max(
                    .milliseconds(50), min(configuration.httpSendWindow, configuration.worker.rateLimitJitterAllowance))
            }
            providers.settings[id] = settings
        }
        return providers
    }

    /// Histogram buckets for provider and ledger latencies.
    public static func metricsFactory(registry: PrometheusCollectorRegistry) -> PrometheusMetricsFactory {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
            .milliseconds(50),
            .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2), .seconds(5),
            .seconds(10), .seconds(30),
        ]
        return factory
    }

    /// Runs until SIGTERM/SIGINT (graceful: drain, commit, leave the group, flush), or until
    /// `stopRequests` yields (a stop asked before the services ran: honoured once they run).
    /// Throws ``PortInUse`` before anything starts when `http.port` is taken; creates the
    /// directory of a SQLite ledger (the default lives under `$XDG_STATE_HOME`).
    public static func run(
        _ configuration: AppConfiguration, logger: Logger,
        registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(),
        stopRequests: AsyncStream<Void>? = nil, allocator: String? = nil
    ) async throws {
        try self.checkPortFree(host: configuration.httpHost, port: configuration.httpPort)
        if let path = configuration.sqliteLedgerPath {
            let directory = URL(fileURLWithPath: path).deletingLastPathComponent()
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        }
        let ledger = try configuration.makeLedger(logger: logger)
        let providers = ProviderRegistry(configuration: self.providersConfiguration(configuration), logger: logger)
        let metricsFactory = self.metricsFactory(registry: registry)
        JSONLogSink.countStandardErrorDrops(in: metricsFactory)
        let worker = CancelWorker(
            configuration: configuration.worker, providers: providers.providers, ledger: ledger.ledger, logger: logger,
            metricsFactory: metricsFactory
        )
        let server = ObservabilityServer(
            host: configuration.httpHost, port: configuration.httpPort, registry: registry, logger: logger
        ) {
            await self.readiness(worker: worker, ledger: ledger.ledger)
        }
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let service = ledger.service { services.append(.init(service: service)) }
        services.append(.init(service: server.application()))
        services.append(.init(service: worker))
        logger.info(
            "cancel-worker starting",
            metadata: [
                "worker_id": "\(configuration.worker.workerID)", "group": "\(configuration.worker.groupID)",
                "bootstrap": "\(configuration.worker.kafka.bootstrapServers.joined(separator: ","))",
                "ledger": "\(configuration.redactedLedgerURL)",
                "providers": "\(providers.providers.keys.map(\.rawValue).sorted())",
                "allocator": "\(allocator ?? "the C library's malloc")",
            ])
        var groupConfiguration = ServiceGroupConfiguration(
            services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        let budget = self.shutdownBudget(drainTimeout: configuration.worker.drainTimeout)
        groupConfiguration.maximumGracefulShutdownDuration = budget.graceful
        groupConfiguration.maximumCancellationDuration = budget.cancellation
        let group = ServiceGroup(configuration: groupConfiguration)
        do {
            try await withThrowingDiscardingTaskGroup { tasks in
                if let stopRequests {
                    tasks.addTask {
                        for await _ in stopRequests {
                            logger.info("stop requested: shutting down in order")
                            await group.triggerGracefulShutdown()
                            return
                        }
                    }
                }
                try await group.run()
                tasks.cancelAll()
            }
        } catch {
            await providers.shutdown()
            await ledger.ledger.shutdown()
            throw error
        }
        await providers.shutdown()
        await ledger.ledger.shutdown()
    }

    /// How long a shutdown may take. Graceful: `drain-timeout` for in-flight calls, then up to
    /// 10 s to leave the group (a close waits that long for a join in progress), 5 s for the
    /// last commits and published marks, and the producer's flush of the outcomes
    /// (`CancelWorker.outcomeFlushTimeout`). Past it the services are cancelled; a process still not done `cancellation`
    /// later is stuck (say, in a librdkafka call that never returns) and ends with a fatal
    /// error, so that its orchestrator restarts it instead of waiting for it forever. An
    /// orchestrator's grace period should exceed the sum (deploy/ checks its own).
    public static func shutdownBudget(drainTimeout: Duration) -> (graceful: Duration, cancellation: Duration) {
        (drainTimeout + .seconds(15) + CancelWorker.outcomeFlushTimeout, .seconds(5))
    }

    /// `http.port` is taken on this host (another worker?): the way out is another port. Or
    /// `http.host:http.port` cannot be listened on at all (`reason`: a privileged port, an
    /// address not on this host).
    public struct PortInUse: Error, CustomStringConvertible {
        public var host: String
        public var port: Int
        public var reason: String?
        /// The settings' prefix: `http` (the worker's endpoints) or `console`.
        public var settings = "http"

        public var description: String {
            let hostKey = "\(self.settings).host"
            let portKey = "\(self.settings).port"
            let portVariable = ConfigOption.environmentName(for: portKey)
            if let reason = self.reason {
                return
                    "cannot listen on \(hostKey) \(self.host) (\(ConfigOption.environmentName(for: hostKey))), \(portKey) \(self.port) (\(portVariable)): \(reason)"
            }
            let who = self.settings == "http" ? "another worker" : "another console"
            return
                "\(portKey) \(self.port) (\(portVariable)) is already in use on \(self.host): is \(who) running on this host?"
                + " Give this one another port: --set \(portKey)=0 (any free port) or \(portVariable)=<port>"
        }
    }

    /// Binds `host:port` once (as the server will, with `SO_REUSEADDR`, on the first address
    /// the host resolves to) and lets it go, so a taken port is reported before the worker joins
    /// its group. Port 0, and a host that does not resolve, are left to the server.
    public static func checkPortFree(host: String, port: Int, settings: String = "http") throws(PortInUse) {
        guard port != 0 else { return }
        var hints = addrinfo()
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var found: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &found) == 0, let address = found else { return }
        defer { freeaddrinfo(found) }
        let fd = socket(address.pointee.ai_family, address.pointee.ai_socktype, address.pointee.ai_protocol)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var one: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        // Before the worker starts: a server that failed to bind after it would stop the
        // whole service group, past its cancellation budget while the worker drained.
        guard bind(fd, address.pointee.ai_addr, address.pointee.ai_addrlen) != 0 else { return }
        let code = errno
        if code == EADDRINUSE { throw PortInUse(host: host, port: port, settings: settings) }
        if code == EACCES || code == EADDRNOTAVAIL {
            throw PortInUse(host: host, port: port, reason: String(cString: strerror(code)), settings: settings)
        }
    }

    /// `/health/ready`: the worker is not stopping, the group is joined, a broker answers, the ledger answers, and records
    /// that wait in owned partitions are being consumed (`stall-timeout`). The broker, ledger
    /// and consumption checks run at once and each gives up after `timeout`, so the probe
    /// answers within about `timeout` (Kubernetes' default probe timeout is 1 s).
    static func readiness(
        worker: CancelWorker, ledger: any IdempotencyLedger, timeout: Duration = .milliseconds(900)
    ) async -> [ObservabilityServer.Check] {
        let status = worker.status
        async let broker = worker.brokerReachable(timeout: timeout)
        async let consumption = worker.consumptionCheck(
            stallTimeout: worker.configuration.stallTimeout, timeout: timeout)
        // Any answer counts (the probe key is never stored, so the answer is nil); only an error
        // or no answer within `timeout` means the ledger is down. Not waited for beyond it: a
        // PostgreSQL statement does not end on cancellation, and a silent database held the
        // probe (and `/metrics`) for the statement timeout.
        async let ledgerOK =
            withTimeoutAbandoning(timeout) {
                do {
                    _ = try await ledger.entry(for: "__readiness_probe__")
                    return true
                } catch {
                    return false
                }
            } ?? false
        let consuming = await consumption
        return [
            .init(
                name: "running", ok: !status.stopping,
                detail: "stopping: draining its partitions and leaving the groups"),
            .init(name: "group", ok: status.joinedGroup, detail: "not yet a member of the consumer group"),
            .init(name: "broker", ok: await broker, detail: "no broker answered"),
            .init(name: "ledger", ok: await ledgerOK, detail: "the ledger did not answer"),
            .init(name: "consuming", ok: consuming.ok, detail: consuming.detail),
        ]
    }

    /// Log lines: JSON when `format` says so (or, with `auto`, when stderr is not a terminal).
    public static func bootstrapLogging(format: AppConfiguration.LogFormat, level: Logger.Level) {
        let json = format == .json || (format == .auto && isatty(STDERR_FILENO) == 0)
        if json { JSONLogSink.installExitFlush() }
        LoggingSystem.bootstrap { label in
            if json { return JSONLogHandler(label: label, level: level) }
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }
}
