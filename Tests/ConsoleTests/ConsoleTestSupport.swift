import CancelCore
import Foundation
import Hummingbird
import Kafka
import Logging
import OperatorTools

@testable import Console

/// A console over a Kafka address nothing listens on and an in-memory ledger: enough for every
/// route that needs neither (access, CSRF, the forms), which is what these tests exercise.
enum ConsoleFixture {
    static let token = Secret("test-token-0123456789abcdef")

    static let logger: Logger = {
        var logger = Logger(label: "console-tests")
        logger.logLevel = .critical
        return logger
    }()

    static func server() throws -> ConsoleServer {
        let kafka = KafkaClientOptions(bootstrapServers: "127.0.0.1:1")
        let monitor = FlowMonitor(
            workers: [], interval: .seconds(5),
            lag: try LagReader(options: kafka, group: "g", topics: ["cancel.commands"], logger: Self.logger),
            logger: Self.logger)
        return ConsoleServer(
            token: Self.token, monitor: monitor,
            inspector: DeadLetterInspector(options: kafka, topic: "cancel.commands.dlq", logger: Self.logger),
            jobs: ReplayJobs(base: ReplayOptions(kafka: kafka), ledger: InMemoryLedger(), logger: Self.logger),
            lagTopics: ["cancel.commands"], logger: Self.logger)
    }

    static func basic(_ user: String, _ password: String) -> String {
        "Basic " + Data("\(user):\(password)".utf8).base64EncodedString()
    }
}
