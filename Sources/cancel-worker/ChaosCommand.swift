#if DevTools
    import ArgumentParser
    import DevTools
    import Foundation

    /// `cancel-worker chaos` (`make chaos`): kill workers, take a broker down, inject provider
    /// faults, then check the invariants. Exits 1 if any breaks.
    struct ChaosCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "chaos",
            abstract:
                "Run workers under SIGKILLs, a broker outage and provider faults; check the invariants at the end."
        )

        @Option(help: "How long to send commands and inject faults (settling follows).")
        var seconds: Int = 60

        @Option(help: "Worker processes.")
        var workers: Int = 3

        @Option(help: "Commands per second.")
        var rate: Double = 40

        @Flag(inversion: .prefixedNo, help: "Take a broker down for 5 s at 15 s.")
        var brokerOutage = true

        @Flag(inversion: .prefixedNo, help: "Kill (and restart) a worker every 10 s.")
        var kills = true

        @Flag(
            inversion: .prefixedNo,
            help: "Pause one worker with SIGSTOP for 15 s (past its lease and session timeout), then resume it.")
        var zombie = true

        @Flag(inversion: .prefixedNo, help: "Add 0–200 ms of network jitter before the sandbox counts a request.")
        var jitter = true

        @Flag(
            inversion: .prefixedNo, help: "Give every 13th command a 3 s deadline (and check no call arrives after it)."
        )
        var deadlines = true

        @Flag(
            inversion: .prefixedNo,
            help: "Check that every consumed partition's committed offset reaches its end once all commands settled.")
        var stallCheck = true

        @Option(
            help:
                "One futures user's mass cancel: this many commands at once, a quarter into the run (0: none); the workers' max-in-flight is 64, so its partition is held for its share."
        )
        var burst: Int = 150

        @Option(
            name: .customLong("worker-set"),
            help: ArgumentHelp(
                "A setting for every worker, as run --set (repeatable), e.g. kafka.properties=debug=cgrp; a failed run keeps the workers' logs.",
                valueName: "key=value"))
        var workerSettings: [String] = []

        @OptionGroup var logging: LoggingOptions

        func validate() throws {
            guard (20...86_400).contains(self.seconds) else {
                throw ValidationError("--seconds is from 20 (a broker goes down at 15 s) to 86400")
            }
            // Bounded: the rate sets the pause between two commands in nanoseconds.
            guard (2...16).contains(self.workers), (0.1...10_000).contains(self.rate) else {
                throw ValidationError("--workers is from 2 to 16 and --rate from 0.1 to 10000 commands per second")
            }
            guard (0...100_000).contains(self.burst) else { throw ValidationError("--burst is from 0 to 100000") }
        }

        func run() async throws {
            var options = self.logging
            if options.logLevel == nil { options.logLevel = "critical" }
            let logger = options.bootstrap(label: "chaos")
            var chaos = ChaosOptions()
            chaos.seconds = self.seconds
            chaos.workerSettings = self.workerSettings
            chaos.workers = self.workers
            chaos.rate = self.rate
            chaos.burst = self.burst
            if !self.brokerOutage { chaos.brokerDownAt = .seconds(Int64(self.seconds) + 3600) }
            if !self.kills { chaos.killEvery = .seconds(Int64(self.seconds) + 3600) }
            chaos.zombie = self.zombie
            chaos.jitter = self.jitter
            chaos.deadlines = self.deadlines
            chaos.stallCheck = self.stallCheck
            let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
            let runner = ChaosRunner(executable: executable, options: chaos, logger: logger) {
                FileHandle.standardError.write(Data(($0 + "\n").utf8))
            }
            let report = try await stoppingItsWorkersOnInterrupt("chaos") { try await runner.run() }
            StandardOutput.writeLine(report.text)
            if !report.passed { throw ExitCode(1) }
        }
    }
#endif
