import ArgumentParser
import CancelCore
import Foundation
import WorkerApp

/// `cancel-worker config`: the configuration reference, or the effective configuration.
struct ConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract:
            "Print the configuration reference (--reference) or check a configuration and print it, secrets redacted.",
        discussion: """
            Checks exactly what `run` checks (the same function): exits 78 naming the key, variable or
            file at fault, 0 with every setting in effect (durations with their unit) otherwise.
            """
    )

    @Flag(help: "Print every setting: key, environment variable, default, meaning (Markdown).")
    var reference = false

    @OptionGroup var settings: ConfigurationOptions

    func run() async throws {
        if self.reference {
            StandardOutput.writeLine(ConfigOption.markdownReference)
            return
        }
        let configuration = try await self.settings.load()
        let effective = configuration.effectiveSettings
        let fixed = ConfigOption.all.map(\.key)
        let perProvider = effective.keys.filter { !fixed.contains($0) }.sorted()
        for key in fixed + perProvider {
            StandardOutput.writeLine("\(key) = \(effective[key] ?? "(not set)")")
        }
        StandardOutput.writeLine("topics.retry = \(configuration.worker.retryTopics.joined(separator: ", "))")
    }
}
