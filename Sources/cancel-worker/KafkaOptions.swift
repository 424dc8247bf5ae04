import ArgumentParser
import Foundation
import Kafka

/// `--brokers`, shared by the commands that talk to Kafka directly.
struct KafkaOptions: ParsableArguments {
    @Option(name: .long, help: "Bootstrap servers, comma separated. Env: CANCEL_WORKER_KAFKA_BOOTSTRAP_SERVERS.")
    var brokers: String?

    var clientOptions: KafkaClientOptions {
        get throws {
            let servers = self.brokers ?? ProcessInfo.processInfo.environment["CANCEL_WORKER_KAFKA_BOOTSTRAP_SERVERS"]
            guard let servers, !servers.isEmpty else {
                throw ValidationError("--brokers (or CANCEL_WORKER_KAFKA_BOOTSTRAP_SERVERS) is required")
            }
            return KafkaClientOptions(bootstrapServers: servers)
        }
    }
}
