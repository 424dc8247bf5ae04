/// What a consumer handed to the application so far (`KafkaConsumer.activity`; no network).
public struct KafkaConsumerActivity: Sendable, Hashable {
    /// When the application last received a record from `messages`; nil before the first.
    public var lastDelivery: ContinuousClock.Instant?
    /// The next offset the application receives, per partition of the current assignment it
    /// received a record from (or that it moved with `seek`).
    public var positions: [KafkaTopicPartition: Int64]
    /// Records fetched and not yet taken from `messages`.
    public var buffered: Int
    /// Flow control paused fetching of at least one partition (it handed over a record while
    /// the buffer was full).
    public var fetchPaused: Bool

    public init(
        lastDelivery: ContinuousClock.Instant?, positions: [KafkaTopicPartition: Int64], buffered: Int,
        fetchPaused: Bool
    ) {
        self.lastDelivery = lastDelivery
        self.positions = positions
        self.buffered = buffered
        self.fetchPaused = fetchPaused
    }
}

/// The answer of `KafkaConsumer.checkProgress(stallAfter:timeout:)`: do records wait that the
/// application does not get?
public struct KafkaConsumerProgress: Sendable, Hashable {
    /// Records waiting, for each owned partition not paused by the application that has any:
    /// its high watermark minus the next offset the application receives (the group's
    /// committed offset until it received one). Nil when this check did not measure: a wait
    /// is being timed and is not `stallAfter` old yet, or the broker did not answer (`error`).
    public var lag: [KafkaTopicPartition: Int64]?
    /// Records have waited since this instant with none delivered to the application; nil when
    /// nothing waits.
    public var waitingSince: ContinuousClock.Instant?
    /// They have waited `stallAfter` or longer: the consumer is not making progress.
    public var isStalled: Bool
    /// When the application last received a record; nil before the first.
    public var lastDelivery: ContinuousClock.Instant?
    /// Why the lag could not be measured.
    public var error: KafkaError?

    public init(
        lag: [KafkaTopicPartition: Int64]?, waitingSince: ContinuousClock.Instant?, isStalled: Bool,
        lastDelivery: ContinuousClock.Instant?, error: KafkaError? = nil
    ) {
        self.lag = lag
        self.waitingSince = waitingSince
        self.isStalled = isStalled
        self.lastDelivery = lastDelivery
        self.error = error
    }
}
