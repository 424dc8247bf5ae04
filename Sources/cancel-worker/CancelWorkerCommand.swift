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
            DemoCommand.self,
            ConfigCommand.self,
            DevClusterCommand.self,
            EnqueueCommand.self,
            CancelOrderCommand.self,
            OutcomesCommand.self,
            SandboxCommand.self,
            ReplayCommand.self,
            DeadLetterCommand.self,
            ConsoleCommand.self,
            BenchCommand.self,
            ChaosCommand.self,
        ]
    )
}
