public import Kafka

/// Everything `CancelClient` throws: a code to switch on, and a message for people.
///
/// Three codes mean the cancel *was sent* and may still complete (`mayStillComplete`):
/// `timedOut`, and `shutDown` or `cancelled` with `enqueued` set. Its outcome arrives on the outcomes topic later — read it with
/// `CancelClient.outcomes(for:from:)` from `outcomesFrom` — and resending the same command
/// (same idempotency key) is safe: the worker cancels at most once per key.
public struct CancelClientError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Code: String, Sendable, Hashable {
        /// The command breaks the worker's intake rules; nothing was sent.
        case invalidCommand = "invalid_command"
        /// The call's timeout passed. With `enqueued` set the command was sent and its outcome did
        /// not arrive in time: it may still complete. Without, the timeout passed before Kafka
        /// acknowledged the command (it may or may not be stored) or before `run()` started
        /// (nothing was sent); resending the same command is safe either way.
        case timedOut = "timed_out"
        /// Kafka refused or could not take the record (see `kafkaError`), or a read failed.
        case kafka
        /// `run()` did not start within `startTimeout`; nothing was sent.
        case notRunning = "not_running"
        /// The client was shut down; with `enqueued` set the command was sent and may still complete.
        case shutDown = "shut_down"
        /// The configuration cannot work (e.g. a raw property that changes the partitioner).
        case configuration
        /// `cancel` on a client configured with `listensForOutcomes = false`.
        case listenerDisabled = "listener_disabled"
        /// The calling task was cancelled; with `enqueued` set the command was sent and may still complete.
        case cancelled
    }

    /// What went wrong, to switch on.
    public var code: Code
    /// What went wrong, for people: never a credential.
    public var message: String
    /// The command's idempotency key, when the error concerns one command.
    public var idempotencyKey: String?
    /// Where the command was stored, when it was sent before the error.
    public var enqueued: EnqueuedCommand?
    /// When the cancel may still complete: a position of the outcomes topic before the outcome, to
    /// read it later with `CancelClient.outcomes(for:from:)`.
    public var outcomesFrom: OutcomePosition?
    /// The Kafka layer's error, for `kafka`.
    public var kafkaError: KafkaError?

    public init(
        _ code: Code, _ message: String, idempotencyKey: String? = nil, enqueued: EnqueuedCommand? = nil,
        outcomesFrom: OutcomePosition? = nil, kafkaError: KafkaError? = nil
    ) {
        self.code = code
        self.message = message
        self.idempotencyKey = idempotencyKey
        self.enqueued = enqueued
        self.outcomesFrom = outcomesFrom
        self.kafkaError = kafkaError
    }

    /// The command was sent and its outcome is still to come: wait for it, or resend (safe).
    public var mayStillComplete: Bool {
        self.enqueued != nil && [.timedOut, .shutDown, .cancelled].contains(self.code)
    }

    public var description: String { "\(self.code.rawValue): \(self.message)" }

    static func kafka(_ error: KafkaError, _ doing: String, key: String? = nil) -> CancelClientError {
        CancelClientError(.kafka, "\(doing): \(error)", idempotencyKey: key, kafkaError: error)
    }
}
