import Logging
import WorkerApp

extension ConfigurationOptions {
    /// For the long-running commands (`run`, `console`): the configuration with `--brokers` and
    /// `--log-level` applied, and the process's logging set up as it says (JSON or text).
    func loadService(
        kafka: KafkaOptions, logging: LoggingOptions, label: String
    ) async throws -> (
        AppConfiguration, Logger
    ) {
        var extra = kafka.settings
        if let level = logging.logLevel { extra["log.level"] = level }
        let configuration = try await self.load(extra: extra)
        WorkerApplication.bootstrapLogging(format: configuration.logFormat, level: configuration.logLevel)
        return (configuration, Logger(label: label))
    }
}
