import CancelCore
import Console
import Foundation
import Kafka
import Testing
import WorkerApp

@Suite("Console settings")
struct ConsoleConfigurationTests {
    @Test("console.* settings: loopback and 9465 by default, workers as URLs, the token redacted in `config`")
    func settings() async throws {
        let defaults = try await AppConfiguration.load(environment: [:]).console
        #expect(defaults.host == "127.0.0.1" && defaults.port == 9465 && defaults.token == nil)
        #expect(defaults.workers.map(\.absoluteString) == ["http://127.0.0.1:9464/metrics"])
        let token = "a-console-token-of-some-length"
        let loaded = try await AppConfiguration.load(
            overrides: [
                "console.workers": "10.0.0.5:9464, https://w2.example:443/custom", "console.scrape-interval": "2s",
                "console.replay-rate": "2.5", "console.max-replays": "5",
            ],
            environment: ["CANCEL_WORKER_CONSOLE_TOKEN": token])
        #expect(
            loaded.console.workers.map(\.absoluteString) == [
                "http://10.0.0.5:9464/metrics", "https://w2.example:443/custom",
            ])
        #expect(loaded.console.scrapeInterval == .seconds(2) && loaded.console.replayRate == 2.5)
        #expect(loaded.console.maxReplays == 5 && loaded.console.token?.reveal() == token)
        #expect(loaded.effectiveSettings["console.token"] == "[REDACTED]")
        #expect(!loaded.effectiveSettings.values.contains { $0.contains(token) })
        for (key, value) in [
            ("console.workers", "ftp://x"), ("console.replay-rate", "0"), ("console.port", "70000"),
            ("console.scrape-interval", "10ms"),
            // Regression: 1e-20 trapped on the first replayed record's pacing; 0 replays parked every record.
            ("console.replay-rate", "1e-20"), ("console.max-replays", "0"),
        ] {
            await #expect(throws: AppConfiguration.Invalid.self, "\(key)=\(value)") {
                try await AppConfiguration.load(overrides: [key: value], environment: [:])
            }
        }
    }

    @Test("no console without a token of 16 characters: no anonymous access")
    func token() async throws {
        let logger = ConsoleFixture.logger
        for token in [nil, "short-token"] {
            var configuration = try await AppConfiguration.load(environment: [:])
            configuration.console.token = token.map(Secret.init)
            #expect {
                try ConsoleServer.make(configuration: configuration, ledger: InMemoryLedger(), logger: logger)
            } throws: { ($0 as? AppConfiguration.Invalid)?.key == "console.token" }
        }
        var configuration = try await AppConfiguration.load(
            overrides: ["retry.tiers": "1s,2s"], environment: ["CANCEL_WORKER_CONSOLE_TOKEN": "0123456789abcdef"])
        configuration.worker.kafka = KafkaClientOptions(bootstrapServers: "127.0.0.1:1")
        let server = try ConsoleServer.make(configuration: configuration, ledger: InMemoryLedger(), logger: logger)
        #expect(server.lagTopics == ["cancel.commands", "cancel.commands.retry.1s", "cancel.commands.retry.2s"])
        #expect(server.jobs.base.rate == 20 && server.jobs.base.maxReplays == 3)
        #expect(server.jobs.base.ledgerRetention == configuration.ledgerRetention)
    }
}
