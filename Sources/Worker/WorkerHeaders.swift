/// Header names the worker writes on the records it produces (retry tiers, dead letters,
/// replays). All start with `cw.`; commands from upstream never need them.
public enum WorkerHeaders {
    /// Where the command was first consumed: its topic, partition and offset.
    public static let originTopic = "cw.origin.topic"
    public static let originPartition = "cw.origin.partition"
    public static let originOffset = "cw.origin.offset"
    /// The consumer group that processed it.
    public static let consumerGroup = "cw.consumer.group"
    /// Provider calls made for the key so far.
    public static let attempts = "cw.attempts"
    /// The ledger's attempt count when the command was last replayed: its attempt budget counts
    /// from there (each replay gets `retry.max-attempts` calls of its own).
    public static let attemptsBase = "cw.attempts.base"
    /// A command the worker moved to its user's partition (it was keyed wrongly, or sat on the
    /// wrong partition for its key): where it was, `partition@offset`.
    public static let reroutedFrom = "cw.rerouted-from"
    /// Provider calls for the key so far whose result was unknown (see `uncertain_attempts`).
    public static let uncertainAttempts = "cw.attempts.uncertain"
    /// Retry tier hand-offs so far (0 on the first delivery).
    public static let retryRound = "cw.retry.round"
    /// The retry tier it waits in.
    public static let retryTier = "cw.retry.tier"
    /// The command-topic partition the command returns to when due: the partition whose owner
    /// paces its user.
    public static let retryPartition = "cw.retry.partition"
    /// When it is due again, epoch milliseconds.
    public static let retryDueAt = "cw.retry.due-at"
    /// Dead letters: the error class (`invalid_command`, `configuration`, `retries_exhausted`).
    public static let errorClass = "cw.error.class"
    /// Dead letters: a human-readable reason (never a secret).
    public static let errorMessage = "cw.error.message"
    /// The provider's last answer: HTTP status and its own code.
    public static let providerStatus = "cw.provider.status"
    public static let providerCode = "cw.provider.code"
    /// First and last failure, epoch milliseconds.
    public static let firstFailureAt = "cw.failure.first-at"
    public static let lastFailureAt = "cw.failure.last-at"
    /// The worker that produced the record.
    public static let workerID = "cw.worker.id"
    /// The command's idempotency key (absent for undecodable input).
    public static let idempotencyKey = "cw.idempotency-key"
    /// The command's provider and account (absent for undecodable input).
    public static let provider = "cw.provider"
    public static let account = "cw.account"
    /// When the record was dead-lettered, epoch milliseconds.
    public static let deadLetteredAt = "cw.dead-lettered-at"
    /// Replay provenance: the replay run, how often this command was replayed, and where the
    /// replayed dead letter was stored.
    public static let replayID = "cw.replay.id"
    public static let replayCount = "cw.replay.count"
    public static let replayOriginTopic = "cw.replay.origin.topic"
    public static let replayOriginPartition = "cw.replay.origin.partition"
    public static let replayOriginOffset = "cw.replay.origin.offset"
    /// Dead letters whose value had to be shortened to be stored (the cluster refused the
    /// whole record): `true`, and the original value's size in bytes. The value is then only
    /// the first bytes of the original (possibly none).
    public static let valueTruncated = "cw.value.truncated"
    public static let valueOriginalBytes = "cw.value.original-bytes"
    /// Dead letters of class `undeliverable` (a record the cluster refused for good, e.g. too
    /// large): the topic the record was meant for (outcomes, a retry tier, commands).
    public static let undeliverableTopic = "cw.undeliverable.topic"
}
