import Kafka
import Synchronization

/// The partitions this worker owns right now, each with its `PartitionScope`.
final class ScopeRegistry: Sendable {
    private let scopes = Mutex<[KafkaTopicPartition: PartitionScope]>([:])
    private let joined = Mutex<Set<WorkerMembership>>([])

    func add(_ scope: PartitionScope) {
        self.scopes.withLock { $0[scope.partition] = scope }
    }

    func remove(_ partitions: [KafkaTopicPartition]) -> [PartitionScope] {
        self.scopes.withLock { scopes in partitions.compactMap { scopes.removeValue(forKey: $0) } }
    }

    /// The scope a fetched record belongs to; nil for a record fetched under an earlier
    /// assignment of its partition (its work belongs to that assignment, now gone).
    func scope(for message: KafkaConsumerMessage) -> PartitionScope? {
        self.scopes.withLock { scopes in
            guard let scope = scopes[message.topicPartition], message.generation >= scope.generation else { return nil }
            return scope
        }
    }

    var all: [PartitionScope] { self.scopes.withLock { Array($0.values) } }

    /// How many of the owned partitions belong to `topic`.
    func count(of topic: String) -> Int {
        self.scopes.withLock { scopes in scopes.keys.count { $0.topic == topic } }
    }

    /// Records that `membership`'s group gave this member an assignment (possibly empty).
    func joined(_ membership: WorkerMembership) {
        self.joined.withLock { _ = $0.insert(membership) }
    }

    /// Whether the group of each of `memberships` has given this member an assignment (possibly
    /// empty) at least once.
    func hasJoined(_ memberships: [WorkerMembership]) -> Bool {
        self.joined.withLock { joined in memberships.allSatisfy(joined.contains) }
    }
}
