import ArgumentParser
import Foundation
import WorkerApp

/// `--config` and `--set`, shared by `run`, `config` and every tool: one configuration, read and
/// checked by `AppConfiguration.load` for all of them, so they accept and refuse the same input.
struct ConfigurationOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp("JSON configuration file (nested objects). Env: CANCEL_WORKER_CONFIG.", valueName: "file"))
    var config: String?

    @Option(
        name: .customLong("set"),
        help: ArgumentHelp(
            "Override one setting, e.g. --set max-in-flight=500 (repeatable; keys: config --reference).",
            valueName: "key=value")
    )
    var overrides: [String] = []

    func validate() throws {
        for item in self.overrides {
            guard let equals = item.firstIndex(of: "="), equals != item.startIndex else {
                throw ValidationError("--set expects key=value, got \(item)")
            }
        }
    }

    /// The configuration: `--set` (and `extra`, e.g. `--brokers`, which wins) over the
    /// environment over the file over the defaults. An invalid one exits 78 naming the key,
    /// variable or file.
    func load(extra: [String: String] = [:]) async throws -> AppConfiguration {
        var values: [String: String] = [:]
        for item in self.overrides {
            let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            values[parts[0]] = parts[1]
        }
        values.merge(extra) { _, new in new }
        do {
            return try await AppConfiguration.load(file: self.config, overrides: values)
        } catch let error as AppConfiguration.Invalid {
            throw ExitStatus.fail(error, ExitStatus.configuration)
        }
    }
}
