import Kafka

/// The worker's two consumer-group memberships. The commands topic is consumed in `group-id`;
/// the retry tiers in a group of their own, `<group-id>-retry` (`retryGroupID`).
///
/// In one group, librdkafka's `cooperative-sticky` assignor balanced partition *counts* over
/// the commands topic and the tiers together and moved whole topics to a member that joined:
/// a second worker took all the command partitions from the first, which was left with idle
/// tiers, and a third got a tier first and command partitions seconds later (issue 14,
/// BENCHMARKS.md). In a group of its own the commands topic is balanced alone, so every
/// member gets its share of command partitions, and a join moves only that share.
enum WorkerMembership: Sendable, Hashable, CaseIterable {
    case commands
    case retries
}

/// The consumers of a running worker, one per membership (no retry consumer without tiers).
struct WorkerConsumers: Sendable {
    let commands: KafkaConsumer
    let retries: KafkaConsumer?

    subscript(membership: WorkerMembership) -> KafkaConsumer? {
        switch membership {
        case .commands: self.commands
        case .retries: self.retries
        }
    }

    /// Each running consumer with its membership.
    var all: [(WorkerMembership, KafkaConsumer)] {
        [(.commands, self.commands)] + (self.retries.map { [(.retries, $0)] } ?? [])
    }
}

extension WorkerConfiguration {
    /// The consumer group of the retry tiers: `<group-id>-retry` (`WorkerMembership`).
    public var retryGroupID: String { Self.retryGroupID(of: self.groupID) }

    /// The retry tiers' group of the worker group `groupID`.
    public static func retryGroupID(of groupID: String) -> String { "\(groupID)-retry" }

    /// The topics a membership consumes.
    func topics(of membership: WorkerMembership) -> [String] {
        switch membership {
        case .commands: [self.topics.commands]
        case .retries: self.retryTopics
        }
    }

    /// The membership a partition of a consumed topic belongs to.
    func membership(of partition: KafkaTopicPartition) -> WorkerMembership {
        partition.topic == self.topics.commands ? .commands : .retries
    }

    /// The memberships this worker runs: the retry group only when there are tiers.
    var memberships: [WorkerMembership] {
        self.retryTopics.isEmpty ? [.commands] : [.commands, .retries]
    }
}
