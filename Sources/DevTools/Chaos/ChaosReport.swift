import Foundation

/// What a chaos run did, and which invariants broke.
public struct ChaosReport: Sendable {
    public var commands = 0
    public var terminal: [String: Int] = [:]
    public var failed = 0
    public var identicalCopies = 0
    public var deadLetters = 0
    public var providerCalls = 0
    public var kills = 0
    public var brokerOutages = 0
    /// Workers paused (SIGSTOP) past their lease and session timeout, then resumed.
    public var zombies = 0
    public var misKeyed = 0
    public var withDeadline = 0
    public var jitter = false
    public var stallChecked = true
    public var maxFuturesRate = 0
    /// The mass cancel's commands (`ChaosOptions.burst`), and how often a worker held a
    /// partition for taking more than its share of `max-in-flight`.
    public var burst = 0
    public var partitionsHeld = 0
    public var violations: [String] = []
    /// What the workers said of themselves when an invariant broke (a failed run only).
    public var diagnostics: [String] = []
    /// Where the workers' logs, their configuration and the ledger were kept (a failed run only).
    public var keptDirectory: String?

    public var passed: Bool { self.violations.isEmpty }

    public var text: String {
        var lines = [
            "chaos: \(self.commands) commands, \(self.kills) workers killed with SIGKILL and restarted, \(self.brokerOutages) broker outage(s)",
            "  \(self.zombies) worker(s) paused with SIGSTOP past lease and session timeout, then resumed; \(self.misKeyed) mis-keyed commands; \(self.withDeadline) with a deadline; \(self.jitter ? "0–200 ms network jitter" : "no network jitter")",
            "  terminal outcomes: "
                + self.terminal.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "),
            "  dead-lettered (failed outcome + DLQ record): \(self.failed); dead letters: \(self.deadLetters)",
            "  byte-identical outcome copies (crash between ack and ledger write): \(self.identicalCopies)",
            "  provider calls: \(self.providerCalls); highest futures rate for one user: \(self.maxFuturesRate)/s (limit 10)",
            "  one futures user's mass cancel: \(self.burst) commands at once; partitions held for more than their share of max-in-flight: \(self.partitionsHeld)",
            "invariants:",
        ]
        let checks = [
            ("every command has exactly one terminal outcome (or is dead-lettered with a failed outcome)", "outcome"),
            ("no provider call for a key after its completion", "late call"),
            ("no user above its rate limit, counted at arrival", "rate"),
            ("no provider call after a command's deadline", "deadline"),
            ("every dead letter has a reason", "dead letter"),
            ("the ledger holds every published outcome, byte for byte", "ledger"),
            ("no partition stalled: every consumed partition committed to its end", "stall"),
        ]
        for (label, tag) in checks {
            if tag == "stall" && !self.stallChecked {
                lines.append("  skip \(label) (--no-stall-check)")
                continue
            }
            let broken = self.violations.filter { $0.hasPrefix(tag) }
            lines.append(
                "  \(broken.isEmpty ? "ok  " : "FAIL") \(label)\(broken.isEmpty ? "" : ": \(broken.count) violations")")
            lines.append(contentsOf: broken.prefix(5).map { "       \($0)" })
        }
        lines.append(contentsOf: self.diagnostics.map { "  \($0)" })
        if let kept = self.keptDirectory {
            lines.append("worker logs (info level), their configuration and the ledger are kept in \(kept)")
        }
        return lines.joined(separator: "\n")
    }
}
