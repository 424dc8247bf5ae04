import ArgumentParser
import Foundation
import Logging

/// `--log-level`, shared by every subcommand. Logs go to standard error so that standard
/// output stays machine-readable (the first line of `dev-cluster` and `sandbox` is an address).
struct LoggingOptions: ParsableArguments {
    @Option(
        name: .long,
        help:
            "Log level: trace, debug, info, notice, warning, error, critical. Env: LOG_LEVEL (run and console: the log.level setting, CANCEL_WORKER_LOG_LEVEL)."
    )
    var logLevel: String?

    func validate() throws {
        if let logLevel, Logger.Level(rawValue: logLevel) == nil {
            throw ValidationError("--log-level: unknown level \(logLevel)")
        }
    }

    /// Operator tools pass `.warning`: their output is the answer, not the client's life story.
    func bootstrap(label: String, defaultLevel: Logger.Level = .info) -> Logger {
        let environment = ProcessInfo.processInfo.environment["LOG_LEVEL"]
        let level = (self.logLevel ?? environment).flatMap(Logger.Level.init(rawValue:)) ?? defaultLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: label)
        if self.logLevel == nil, let environment, Logger.Level(rawValue: environment) == nil {
            logger.warning(
                "LOG_LEVEL is not a log level; using the default",
                metadata: ["LOG_LEVEL": "\(environment)", "level": "\(level)"])
        }
        return logger
    }
}
