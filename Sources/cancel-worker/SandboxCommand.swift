#if DevTools
    import ArgumentParser
    import CancelCore
    import Foundation
    import Sandbox
    import ServiceLifecycle
    import UnixSignals
    import WorkerApp

    /// `cancel-worker sandbox`: the provider sandbox as a process. The first line on standard
    /// output is its base URL and nothing else.
    struct SandboxCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "sandbox",
            abstract:
                "Emulate the five providers on one loopback HTTP server until SIGTERM/SIGINT; print its base URL first.",
            discussion: """
                Demo credentials (accounts demo-1…demo-3 at every provider): keys <provider>-key-<n>,
                futures secrets futures-secret-<n>, Fungies pub_demo_<n> / sec_demo_<n>.
                Admin API under /_sandbox (orders, faults, stats, requests, reset); see the README.
                """
        )

        @Option(help: "Port on 127.0.0.1 (0 picks a free one).")
        var port: Int = 0

        @Option(help: "Address to listen on.")
        var host: String = "127.0.0.1"

        @Flag(help: "Treat unknown order ids as open orders (demos, benchmarks).")
        var openByDefault = false

        @Option(help: "Latency added to every answer, e.g. 50ms.")
        var latency: String?

        @Option(help: "The futures exchange's limit per user per second.")
        var futuresLimit: Int = 10

        @OptionGroup var logging: LoggingOptions

        func validate() throws {
            guard (0...65_535).contains(self.port) else { throw ValidationError("--port must be between 0 and 65535") }
            if let latency, Duration(humanReadable: latency) == nil {
                throw ValidationError("--latency: not a duration: \(latency)")
            }
            guard self.futuresLimit >= 1 else { throw ValidationError("--futures-limit must be at least 1") }
        }

        func run() async throws {
            let logger = self.logging.bootstrap(label: "sandbox", defaultLevel: .warning)
            do {
                try WorkerApplication.checkPortFree(host: self.host, port: self.port)
            } catch {
                let problem =
                    error.reason.map { "cannot listen on \(self.host):\(self.port): \($0)" }
                    ?? "--port \(self.port) is already in use on \(self.host): is another sandbox running?"
                throw ExitStatus.fail(problem + "; --port 0 picks a free port", ExitStatus.unavailable)
            }
            var configuration = SandboxConfiguration()
            configuration.openByDefault = self.openByDefault
            configuration.futuresLimitPerSecond = self.futuresLimit
            if let latency = self.latency.flatMap(Duration.init(humanReadable:)) {
                for provider in ProviderID.allCases {
                    configuration.latency[provider] = .fixed(milliseconds: latency.timeInterval * 1000)
                }
            }
            let sandbox = ProviderSandbox(configuration: configuration, logger: logger)
            let group = ServiceGroup(
                configuration: .init(
                    services: [.init(service: try sandbox.service(host: self.host, port: self.port))],
                    gracefulShutdownSignals: [.sigterm, .sigint],
                    logger: logger
                ))
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                guard let url = await sandbox.baseURL() else {
                    await group.triggerGracefulShutdown()
                    throw ExitStatus.fail(
                        "the sandbox did not start on \(self.host):\(self.port)", ExitStatus.unavailable)
                }
                StandardOutput.writeLine(url.absoluteString)
                try await tasks.waitForAll()
            }
        }
    }
#endif
