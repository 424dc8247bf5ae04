import ArgumentParser
import Foundation
import Logging

/// `--log-level`, shared by every subcommand. Logs go to standard error so that standard
/// output stays machine-readable (the first line of `dev-cluster` and `sandbox` is an address).
struct LoggingOptions: ParsableArguments {
    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical. Env: LOG_LEVEL.")
    var logLevel: String?

    func bootstrap(label: String) -> Logger {
        let level = Logger.Level(rawValue: self.logLevel ?? ProcessInfo.processInfo.environment["LOG_LEVEL"] ?? "info") ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        return Logger(label: label)
    }
}
