import ArgumentParser
import CancelCore

/// `--wait [--timeout D]`: wait for a command's outcome, at most `timeout`, then print it
/// (`outcomes --key K` and `cancel`).
struct WaitOptions: ParsableArguments {
    @Flag(help: "Wait until the outcome arrives (at most --timeout), print it, exit.")
    var wait = false

    @Option(help: ArgumentHelp("How long --wait waits, e.g. 30s, 2m.", valueName: "duration"))
    var timeout: String = "30s"

    /// `--timeout` as a duration; validated in `validate()`.
    var duration: Duration { Duration(humanReadable: self.timeout) ?? .seconds(30) }

    func validate() throws {
        guard let timeout = Duration(humanReadable: self.timeout), timeout > .zero else {
            throw ValidationError("--timeout: not a positive duration: \(self.timeout)")
        }
    }
}
