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
        for (id, endpoint) in configuration.providers {
            var settings = ProviderSettings.production(id)
            if let baseURL = endpoint.baseURL { settings.baseURL = baseURL }
            settings.timeout = endpoint.timeout
            settings.maxRetryAfter = configuration.providersMaxRetryAfter
            if let userAgent = endpoint.userAgent { settings.userAgent = userAgent }
            settings.accounts = endpoint.accounts
            settings.defaultCredentials = endpoint.defaultCredentials
            providers.settings[id] = settings
        }
        return providers
    }

    /// Histogram buckets for provider and ledger latencies.
    public static func metricsFactory(registry: PrometheusCollectorRegistry) -> PrometheusMetricsFactory {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
            .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2), .seconds(5), .seconds(10), .seconds(30),
        ]
        return factory
    }

    /// Runs until SIGTERM/SIGINT (graceful: drain, commit, leave the group, flush).
    public static func run(_ configuration: AppConfiguration, logger: Logger, registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) async throws {
        let ledger = try LedgerFactory.make(url: configuration.ledgerURL.reveal(), logger: logger)
        let providers = ProviderRegistry(configuration: self.providersConfiguration(configuration), logger: logger)
        let worker = CancelWorker(
            configuration: configuration.worker, providers: providers.providers, ledger: ledger.ledger, logger: logger,
            metricsFactory: self.metricsFactory(registry: registry)
        )
        let server = ObservabilityServer(host: configuration.httpHost, port: configuration.httpPort, registry: registry, logger: logger) {
            await self.readiness(worker: worker, ledger: ledger.ledger)
        }
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let service = ledger.service { services.append(.init(service: service)) }
        services.append(.init(service: server.application()))
        services.append(.init(service: worker))
        logger.info("cancel-worker starting", metadata: [
            "worker_id": "\(configuration.worker.workerID)", "group": "\(configuration.worker.groupID)",
            "bootstrap": "\(configuration.worker.kafka.bootstrapServers.joined(separator: ","))",
            "ledger": "\(configuration.redactedLedgerURL)",
            "providers": "\(providers.providers.keys.map(\.rawValue).sorted())",
        ])
        let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch {
            await providers.shutdown()
            await ledger.ledger.shutdown()
            throw error
        }
        await providers.shutdown()
        await ledger.ledger.shutdown()
    }

    /// `/health/ready`: the group is joined, a broker answers, the ledger answers, and records
    /// that wait in owned partitions are being consumed (`stall-timeout`). The broker, ledger
    /// and consumption checks run at once and each gives up after `timeout`, so the probe
    /// answers within about `timeout` (Kubernetes' default probe timeout is 1 s).
    static func readiness(worker: CancelWorker, ledger: any IdempotencyLedger, timeout: Duration = .milliseconds(900)) async -> [ObservabilityServer.Check] {
        let joined = worker.status.joinedGroup
        async let broker = worker.brokerReachable(timeout: timeout)
        async let consumption = worker.consumptionCheck(stallTimeout: worker.configuration.stallTimeout, timeout: timeout)
        async let ledgerOK = withTaskGroup(of: Bool.self) { group in
            group.addTask {
                // Any answer counts (the probe key is never stored, so the answer is nil);
                // only an error or no answer within `timeout` means the ledger is down.
                do {
                    _ = try await ledger.entry(for: "__readiness_probe__")
                    return true
                } catch {
                    return false
                }
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
        let consuming = await consumption
        return [
            .init(name: "group", ok: joined, detail: "not yet a member of the consumer group"),
            .init(name: "broker", ok: await broker, detail: "no broker answered"),
            .init(name: "ledger", ok: await ledgerOK, detail: "the ledger did not answer"),
            .init(name: "consuming", ok: consuming.ok, detail: consuming.detail),
        ]
    }

    /// Log lines: JSON when `format` says so (or, with `auto`, when stderr is not a terminal).
    public static func bootstrapLogging(format: AppConfiguration.LogFormat, level: Logger.Level) {
        let json = format == .json || (format == .auto && isatty(STDERR_FILENO) == 0)
        LoggingSystem.bootstrap { label in
            if json { return JSONLogHandler(label: label, level: level) }
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }
}
