/// Dead-letter error classes.
public enum DeadLetterClass: String, Sendable, Hashable, CaseIterable {
    /// Not a command at all: not JSON, wrong types, no identity. Not replayable as is.
    case invalidCommand = "invalid_command"
    /// The provider refused our credentials, signature or URL. Replay after fixing configuration.
    case configuration
    /// Attempts ran out while the provider kept failing or throttling. Replay once it recovers.
    case retriesExhausted = "retries_exhausted"
    /// A record the cluster refused for good (too large, invalid): kept here instead of looping.
    /// Not replayable as a command (it carries no idempotency key); inspect it with `dlq show`.
    case undeliverable
}
