/// The topics the system uses. Every name is configurable; these are the defaults.
public struct TopicNames: Sendable, Hashable, Codable {
    /// Cancel commands from upstream services (and replays).
    public var commands: String
    /// One terminal outcome per idempotency key.
    public var outcomes: String
    /// Dead letters: undecodable input and commands that ran out of attempts.
    public var deadLetters: String
    /// Retry tiers, shortest delay first: `<commands>.retry.<tier>`.
    public var retryPrefix: String

    public init(
        commands: String = "cancel.commands",
        outcomes: String = "cancel.outcomes",
        deadLetters: String = "cancel.commands.dlq",
        retryPrefix: String? = nil
    ) {
        self.commands = commands
        self.outcomes = outcomes
        self.deadLetters = deadLetters
        self.retryPrefix = retryPrefix ?? "\(commands).retry"
    }

    /// The topic of a retry tier, e.g. `cancel.commands.retry.5s`.
    public func retryTopic(_ tier: String) -> String {
        "\(self.retryPrefix).\(tier)"
    }

    /// The defaults.
    public static let `default` = TopicNames()
}
