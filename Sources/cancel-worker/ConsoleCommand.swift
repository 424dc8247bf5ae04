import ArgumentParser
import Console
import Foundation
import Hummingbird
import Ledger
import Logging
import WorkerApp

/// `cancel-worker console`: the operator console, a web application on its own port.
struct ConsoleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "console",
        abstract: "Serve the operator console: flow, dead letters and replay in a browser.",
        discussion: """
            Listens on console.host:console.port (127.0.0.1:9465). Every page needs console.token: as
            `Authorization: Bearer <token>`, or basic auth with the token as password (the user name is
            the operator the replay audit records). The Flow page reads the workers' /metrics
            (console.workers) and the consumer group's lag from the brokers; Dead letters and Replay
            read the DLQ and the workers' ledger (ledger.url, which must exist), with the same
            configuration as `run` (--config, --set, CANCEL_WORKER_*).
            The first line on standard output is the console's URL, once it listens.
            Exit status: 0 after SIGTERM/SIGINT, 69 Kafka unreachable, 78 invalid configuration, no token
            or no ledger at ledger.url, 1 other failures.
            """
    )

    @OptionGroup var settings: ConfigurationOptions
    @OptionGroup var kafka: KafkaOptions
    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        let (configuration, logger) = try await self.settings.loadService(
            kafka: self.kafka, logging: self.logging, label: "console")
        do {
            _ = try ConsoleServer.token(configuration.console)
        } catch let error as AppConfiguration.Invalid {
            throw ExitStatus.fail(error, ExitStatus.configuration)
        }
        if let path = configuration.sqliteLedgerPath, !FileManager.default.fileExists(atPath: path) {
            throw ExitStatus.fail(
                "configuration ledger.url (CANCEL_WORKER_LEDGER_URL): no ledger at \(path); the console reads the workers'"
                    + " ledger and never creates one: point ledger.url at it",
                ExitStatus.configuration
            )
        }
        do {
            try WorkerApplication.checkPortFree(
                host: configuration.console.host, port: configuration.console.port, settings: "console")
        } catch {
            throw ExitStatus.fail(error, ExitStatus.unavailable)
        }
        do {
            try await KafkaReachability.check(configuration.worker.kafka, timeout: self.kafka.timeout)
        } catch {
            throw ExitStatus.fail(error, ExitStatus.unavailable)
        }
        let made = try configuration.makeLedger(logger: logger)
        let server = try ConsoleServer.make(configuration: configuration, ledger: made.ledger, logger: logger)
        let host = configuration.console.host
        let application = server.application(
            host: host, port: configuration.console.port, services: made.service.map { [$0] } ?? []
        ) { port in
            let shown = host.contains(":") ? "[\(host)]" : host
            StandardOutput.writeLine("http://\(shown):\(port)/")
            logger.info("console listening", metadata: ["host": "\(host)", "port": .stringConvertible(port)])
        }
        try await application.runService(gracefulShutdownSignals: [.sigterm, .sigint])
        await made.ledger.shutdown()
    }
}
