import ArgumentParser
import WorkerApp

/// `cancel-worker`: the one binary operators run. Each subcommand is a thin shell over the
/// library modules, so tests call what `main` calls.
@main
struct CancelWorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cancel-worker",
        abstract: "Cancels orders at third-party providers from Kafka cancel commands, reliably and at the right pace.",
        version: CancelWorkerVersion.current,
        subcommands: [
            RunCommand.self,
            ConfigCommand.self,
            EnqueueCommand.self,
            CancelOrderCommand.self,
            OutcomesCommand.self,
            ReplayCommand.self,
            DeadLetterCommand.self,
            ConsoleCommand.self,
        ],
        groupedSubcommands: CancelWorkerCommand.development
    )

    /// The dev subcommands, compiled in with the `DevTools` package trait (on by default). The
    /// production image builds with `--disable-default-traits`: neither they nor the sandbox, the
    /// benchmarks and HdrHistogram are in it.
    static var development: [CommandGroup] {
        #if DevTools
            [
                CommandGroup(
                    name: "Development",
                    subcommands: [
                        DemoCommand.self, DevClusterCommand.self, SandboxCommand.self, BenchCommand.self,
                        ChaosCommand.self, PipeFloorCommand.self,
                    ]
                )
            ]
        #else
            []
        #endif
    }
}
