#if DevTools
    import ArgumentParser
    import CancelCore
    import Foundation
    import Kafka
    import UnixSignals

    /// `cancel-worker dev-cluster`: librdkafka's mock cluster as a process, for local work and
    /// tests. The first line on standard output is the bootstrap server list and nothing else.
    struct DevClusterCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "dev-cluster",
            abstract:
                "Run an in-memory Kafka cluster on loopback until SIGTERM/SIGINT; print its bootstrap servers first."
        )

        @Option(help: "Number of brokers.")
        var brokers: Int = 3

        @Option(help: "Partitions of each topic created.")
        var partitions: Int = 6

        @Option(help: "Replication factor of each topic (at most --brokers).")
        var replicationFactor: Int = 1

        @Option(name: .customLong("topic"), help: "A topic to create (repeatable). Default: the worker's topics.")
        var topics: [String] = []

        @OptionGroup var logging: LoggingOptions

        func validate() throws {
            guard self.brokers >= 1 else { throw ValidationError("--brokers must be at least 1") }
            guard self.partitions >= 1 else { throw ValidationError("--partitions must be at least 1") }
            guard (1...self.brokers).contains(self.replicationFactor) else {
                throw ValidationError("--replication-factor must be between 1 and --brokers")
            }
        }

        func run() async throws {
            let logger = self.logging.bootstrap(label: "dev-cluster", defaultLevel: .warning)
            let cluster = try KafkaMockCluster(brokers: self.brokers, logger: logger)
            let names = self.topics.isEmpty ? DevClusterCommand.defaultTopics : self.topics
            _ = try await cluster.ensureTopics(
                names.map {
                    KafkaNewTopic(name: $0, partitions: self.partitions, replicationFactor: self.replicationFactor)
                })
            StandardOutput.writeLine(cluster.bootstrapServers)
            logger.info(
                "dev cluster ready",
                metadata: [
                    "bootstrap": "\(cluster.bootstrapServers)", "topics": "\(names)",
                    "partitions": "\(self.partitions)",
                ]
            )
            let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
            for await signal in signals {
                logger.info("stopping dev cluster", metadata: ["signal": "\(signal)"])
                break
            }
            cluster.shutdown()
        }

        /// The worker's default topics: commands, retry tiers, dead letters, outcomes.
        static var defaultTopics: [String] {
            let names = TopicNames.default
            return [names.commands, names.outcomes, names.deadLetters]
                + RetryPolicy().tiers.map { names.retryTopic($0.name) }
        }
    }
#endif
