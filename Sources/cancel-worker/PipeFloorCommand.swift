#if DevTools
    import ArgumentParser
    import DevTools
    import Foundation
    import UnixSignals

    /// `cancel-worker bench-pipe`: the benchmark's Kafka floor as a process of its own (see
    /// `KafkaPipe`). Started by `cancel-worker bench` for scenario p; not for real topics.
    struct PipeFloorCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "bench-pipe",
            abstract:
                "The benchmark's Kafka floor: consume commands, produce a cancelled outcome for each, no ledger, no HTTP. Never on real topics.",
            shouldDisplay: false
        )

        @Option(help: "Kafka bootstrap servers.")
        var bootstrapServers: String

        @Option(help: "Consumer group.")
        var groupID: String

        @Option(help: "The consumer's fetch.wait.max.ms.")
        var fetchWaitMilliseconds: Int = 100

        @OptionGroup var logging: LoggingOptions

        func run() async throws {
            let logger = self.logging.bootstrap(label: "bench-pipe", defaultLevel: .error)
            let pipe = KafkaPipe(
                bootstrapServers: self.bootstrapServers, groupID: self.groupID,
                fetchWait: .milliseconds(self.fetchWaitMilliseconds), logger: logger)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    try await pipe.run {
                        FileHandle.standardError.write(Data("\(KafkaPipe.assignedLine)\n".utf8))
                    }
                }
                group.addTask {
                    for await _ in await UnixSignalsSequence(trapping: .sigterm, .sigint) { break }
                }
                _ = try await group.next()
                group.cancelAll()
            }
        }
    }
#endif
