import ArgumentParser
import Foundation
import Logging
import WorkerApp

/// `cancel-worker run`: one worker replica.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a worker: consume cancel commands, call providers, publish outcomes.",
        discussion: """
            Configuration: --set key=value, then CANCEL_WORKER_* environment variables, then the
            JSON file given with --config (env CANCEL_WORKER_CONFIG), then defaults.
            `cancel-worker config --reference` lists every key.
            """
    )

    @Option(help: "JSON configuration file.")
    var config: String?

    @Option(name: .customLong("set"), help: "Override one setting, e.g. --set kafka.bootstrap-servers=host:9092 (repeatable).")
    var overrides: [String] = []

    func run() async throws {
        let configuration = try await ConfigurationLoading.load(file: self.config, overrides: self.overrides)
        WorkerApplication.bootstrapLogging(format: configuration.logFormat, level: configuration.logLevel)
        let logger = Logger(label: "cancel-worker")
        for name in ConfigOption.unknownEnvironmentNames(in: ProcessInfo.processInfo.environment) {
            logger.warning("ignoring an environment variable no setting reads (misspelled?)", metadata: ["variable": "\(name)"])
        }
        try await WorkerApplication.run(configuration, logger: logger)
    }
}

/// Shared by `run` and `config`: reads the configuration, turning errors into exit code 78
/// (EX_CONFIG) with a message that names the key and its environment variable.
enum ConfigurationLoading {
    static func load(file: String?, overrides: [String]) async throws -> AppConfiguration {
        var values: [String: String] = [:]
        for item in overrides {
            let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty else {
                throw ValidationError("--set expects key=value, got \(item)")
            }
            values[parts[0]] = parts[1]
        }
        do {
            return try await AppConfiguration.load(file: file ?? ProcessInfo.processInfo.environment["CANCEL_WORKER_CONFIG"], overrides: values)
        } catch let error as AppConfiguration.Invalid {
            FileHandle.standardError.write(Data("cancel-worker: \(error)\n".utf8))
            throw ExitCode(78)
        }
    }
}
