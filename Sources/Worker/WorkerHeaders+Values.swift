import CancelCore
public import Foundation
public import Kafka

/// Reading the values of the `cw.*` headers. A worker writes them on the records it produces,
/// but an upstream producer can set them too: a value no worker writes reads as if the header
/// were absent, so that no arithmetic on it can trap and no wait on it can last for ever.
extension WorkerHeaders {
    /// The largest count a worker writes (calls, rounds, replays): far above any retry budget.
    public static let largestCount = 1_000_000

    /// A count header (`attempts`, `attemptsBase`, `uncertainAttempts`, `retryRound`,
    /// `replayCount`): nil unless a whole number from 0 to `largestCount`.
    public static func count(_ name: String, in headers: [KafkaHeader]) -> Int? {
        headers.string(name).flatMap(Int.init).flatMap { (0...Self.largestCount).contains($0) ? $0 : nil }
    }

    /// A time header (epoch milliseconds: `retryDueAt`, `lastFailureAt`): nil unless from 1970 to
    /// `latest`.
    public static func time(_ name: String, in headers: [KafkaHeader], latest: @autoclosure () -> Date) -> Date? {
        guard let milliseconds = headers.string(name).flatMap(Int64.init), milliseconds >= 0,
            Double(milliseconds) <= latest().timeIntervalSince1970 * 1000
        else { return nil }
        return Timestamp.date(milliseconds: milliseconds)
    }
}
