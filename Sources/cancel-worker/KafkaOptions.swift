import ArgumentParser
import Foundation
import WorkerApp

/// `--brokers` and `--connect-timeout`, on every subcommand that talks to Kafka.
struct KafkaOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Bootstrap servers, comma separated (sets kafka.bootstrap-servers).", valueName: "host:port,…"))
    var brokers: String?

    @Option(help: ArgumentHelp("Fail when no broker answers within this long, e.g. 5s.", valueName: "duration"))
    var connectTimeout: String = "5s"

    func validate() throws {
        if let brokers, brokers.split(separator: ",").allSatisfy({ $0.trimmingCharacters(in: .whitespaces).isEmpty }) {
            throw ValidationError("--brokers expects host:port[,host:port…]")
        }
        guard let timeout = Duration(humanReadable: self.connectTimeout), timeout > .zero else {
            throw ValidationError("--connect-timeout: not a positive duration: \(self.connectTimeout)")
        }
    }

    var timeout: Duration { Duration(humanReadable: self.connectTimeout) ?? .seconds(5) }

    /// `--brokers` as a setting, for `ConfigurationOptions.load(extra:)`.
    var settings: [String: String] {
        self.brokers.map { ["kafka.bootstrap-servers": $0] } ?? [:]
    }

    /// The configuration, once a broker answered; exits 69 naming the brokers otherwise.
    func connect(_ configuration: ConfigurationOptions) async throws -> AppConfiguration {
        let loaded = try await configuration.load(extra: self.settings)
        do {
            try await KafkaReachability.check(loaded.worker.kafka, timeout: self.timeout)
        } catch {
            throw ExitStatus.fail(error, ExitStatus.unavailable)
        }
        return loaded
    }
}
