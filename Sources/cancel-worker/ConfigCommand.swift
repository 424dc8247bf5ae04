import ArgumentParser
import CancelCore
import Foundation
import WorkerApp

/// `cancel-worker config`: the configuration reference, or the effective configuration.
struct ConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Print the configuration reference (--reference) or check a configuration and print it, secrets redacted."
    )

    @Flag(help: "Print every setting: key, environment variable, default, meaning (Markdown).")
    var reference = false

    @Option(help: "JSON configuration file to check.")
    var config: String?

    @Option(name: .customLong("set"), help: "Override one setting (repeatable).")
    var overrides: [String] = []

    func run() async throws {
        if self.reference {
            StandardOutput.writeLine(ConfigOption.markdownReference)
            return
        }
        let configuration = try await ConfigurationLoading.load(file: self.config, overrides: self.overrides)
        let worker = configuration.worker
        var lines = [
            "kafka.bootstrap-servers = \(worker.kafka.bootstrapServers.joined(separator: ","))",
            "group-id = \(worker.groupID)",
            "worker-id = \(worker.workerID)",
            "topics = \(worker.topics.commands), \(worker.topics.outcomes), \(worker.topics.deadLetters), \(worker.retryTopics.joined(separator: ", "))",
            "max-in-flight = \(worker.maxInFlight)",
            "retry = \(worker.retry.inProcessAttempts) in process, tiers \(worker.retry.tiers.map(\.name).joined(separator: ",")), max \(worker.retry.maxAttempts) attempts",
            "rate-limits = \(worker.rateLimits.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: ", "))",
            "ledger.url = \(configuration.redactedLedgerURL)",
            "http = \(configuration.httpHost):\(configuration.httpPort)",
        ]
        for provider in ProviderID.allCases {
            let endpoint = configuration.providers[provider]
            let accounts = endpoint?.accounts.keys.sorted().joined(separator: ",") ?? ""
            lines.append("providers.\(provider) = \(endpoint?.baseURL ?? "production URL"), accounts [\(accounts)]\(endpoint?.defaultCredentials != nil ? " + default credentials" : "")")
        }
        for line in lines { StandardOutput.writeLine(line) }
    }
}
