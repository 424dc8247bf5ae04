import CancelCore
import Foundation

extension ConfigurationParser {
    /// The `console.*` settings. The token is checked where it is needed (`cancel-worker console`),
    /// so a worker's configuration without one stays valid.
    func console() throws -> ConsoleConfiguration {
        var console = ConsoleConfiguration()
        console.host = self.string("console.host", default: console.host)
        console.port = try self.int("console.port", default: console.port, range: 0...65_535)
        if let token = self.value("console.token") { console.token = Secret(token) }
        let workers = self.list("console.workers")
        if !workers.isEmpty {
            console.workers = try workers.map { text in
                guard let url = ConsoleConfiguration.metricsURL(text) else {
                    throw AppConfiguration.Invalid(
                        key: "console.workers", message: "expected host:port or http://host:port, got \"\(text)\"")
                }
                return url
            }
        }
        self.note("console.workers", workers.isEmpty ? console.workersText : workers.joined(separator: ","))
        console.scrapeInterval = try self.duration("console.scrape-interval", default: console.scrapeInterval)
        guard console.scrapeInterval >= .milliseconds(100) else {
            throw AppConfiguration.Invalid(key: "console.scrape-interval", message: "must be at least 100ms")
        }
        let rateText = self.string("console.replay-rate", default: console.replayRate.settingText)
        guard let rate = Double(rateText), (0.001...1_000_000).contains(rate) else {
            throw AppConfiguration.Invalid(
                key: "console.replay-rate",
                message: "expected records per second from 0.001 to 1000000, got \"\(rateText)\"")
        }
        console.replayRate = rate
        console.maxReplays = try self.int("console.max-replays", default: console.maxReplays)
        guard console.maxReplays >= 1 else {
            throw AppConfiguration.Invalid(key: "console.max-replays", message: "must be at least 1")
        }
        return console
    }
}
