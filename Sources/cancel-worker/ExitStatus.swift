import ArgumentParser
import Foundation

/// The exit codes every subcommand uses (sysexits.h where one fits), in one place.
enum ExitStatus {
    /// Something failed (a refused line, a failed replay).
    static let failure = ExitCode(1)
    /// Bad arguments (swift-argument-parser's validation errors exit with this too).
    static let usage = ExitCode(64)
    /// Kafka did not answer, or a port to listen on (`http.port`, `console.port`, the sandbox's
    /// `--port`) is taken: something the command needs is not available.
    static let unavailable = ExitCode(69)
    /// `outcomes --wait` timed out: the outcome may still come.
    static let temporaryFailure = ExitCode(75)
    /// The configuration is invalid (EX_CONFIG).
    static let configuration = ExitCode(78)
    /// Interrupted by SIGINT/SIGTERM.
    static let interrupted = ExitCode(130)

    /// Prints `cancel-worker: message` on standard error and returns `code` to throw.
    static func fail(_ message: some CustomStringConvertible, _ code: ExitCode) -> ExitCode {
        FileHandle.standardError.write(Data("cancel-worker: \(StandardOutput.visible("\(message)"))\n".utf8))
        return code
    }
}
