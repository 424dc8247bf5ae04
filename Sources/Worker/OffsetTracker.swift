import DequeModule

/// Tracks which records of one partition are finished, so that only the highest *contiguous*
/// finished offset is committed: a record still in flight holds back every later one, and
/// nothing is ever committed past work that is not done. Records arrive in offset order.
public struct OffsetTracker: Sendable {
    private var outstanding = Deque<(offset: Int64, done: Bool)>()
    /// The next offset to commit (one past the last finished record of the contiguous prefix).
    public private(set) var committable: Int64?
    /// The last offset handed to `begin`.
    public private(set) var lastBegun: Int64?

    public init() {}

    /// A record enters processing. Offsets must increase; repeats and older ones are ignored
    /// (returns false).
    @discardableResult
    public mutating func begin(_ offset: Int64) -> Bool {
        if let lastBegun, offset <= lastBegun { return false }
        self.lastBegun = offset
        self.outstanding.append((offset, false))
        return true
    }

    /// A record is finished (its outcome, retry or dead letter is acknowledged by Kafka).
    public mutating func finish(_ offset: Int64) {
        guard let index = self.index(of: offset) else { return }
        self.outstanding[index].done = true
        while let first = self.outstanding.first, first.done {
            self.committable = first.offset + 1
            self.outstanding.removeFirst()
        }
    }

    /// Records begun and not finished.
    public var inFlight: Int { self.outstanding.count(where: { !$0.done }) }

    /// Records held back by an unfinished earlier one (or unfinished themselves).
    public var pending: Int { self.outstanding.count }

    private func index(of offset: Int64) -> Int? {
        var low = 0
        var high = self.outstanding.count - 1
        while low <= high {
            let middle = (low + high) / 2
            let value = self.outstanding[middle].offset
            if value == offset { return middle }
            if value < offset { low = middle + 1 } else { high = middle - 1 }
        }
        return nil
    }
}
