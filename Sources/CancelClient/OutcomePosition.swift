public import Foundation

/// Where reading the outcomes topic starts.
///
/// A service that wants the outcomes of cancels it enqueued before a restart keeps a position
/// from before the enqueue — `CancelClient.listenerStart`, or the time — and reads from there
/// with `CancelClient.outcomes(for:from:)`.
public enum OutcomePosition: Sendable, Hashable {
    /// Everything the topic still retains.
    case beginning
    /// Only outcomes published from now on.
    case end
    /// The next offset to read, per partition of the outcomes topic; a partition not listed is
    /// read from its beginning.
    case offsets([Int32: Int64])
    /// Outcomes whose record timestamp is at or after this instant. Reads the retained log from
    /// the beginning and skips older records, so on a long-retention topic prefer `.offsets`.
    /// The timestamp is set by the worker's host: allow for clock skew (e.g. a minute earlier).
    case time(Date)
}
