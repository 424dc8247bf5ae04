#if DevTools
    import ArgumentParser
    import DevTools
    import Foundation

    /// `cancel-worker demo`: the whole system in one process (`make demo`).
    struct DemoCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "demo",
            abstract:
                "Run the whole system on the embedded default: mock Kafka, provider sandbox, two workers, replay; print a summary."
        )

        @OptionGroup var logging: LoggingOptions

        func run() async throws {
            var options = self.logging
            if options.logLevel == nil { options.logLevel = "critical" }
            let logger = options.bootstrap(label: "demo")
            do {
                try await DemoRunner(logger: logger, output: { StandardOutput.writeLine($0) }).run()
            } catch {
                FileHandle.standardError.write(Data("demo failed: \(error)\n".utf8))
                throw ExitCode(1)
            }
        }
    }
#endif
