/// A consumer's state in its group's join protocol, as librdkafka 2.0 logs it (the
/// `CGRPJOINSTATE` lines of its `cgrp` debug context: `changed join state wait-join -> ...`).
///
/// librdkafka 2.0 sends an offset commit whatever the join state, with the generation it has.
/// A commit sent while this member's JoinGroup is pending reaches the coordinator after the
/// group moved to the next generation (a coordinator handles a connection's requests in
/// order, the JoinGroup first), is answered `ILLEGAL_GENERATION`, and librdkafka takes that
/// for a lost assignment: the member gives up every partition and joins again (librdkafka
/// #4059, fixed in 2.10 by ignoring that answer while rebalancing). A member that commits only
/// when not `isRebalancing` avoids it.
struct GroupJoinState: Sendable, Hashable {
    /// librdkafka's name of the state (`init`, `wait-join`, `wait-sync`, `steady`, ...).
    let name: String

    static let initial = GroupJoinState(name: "init")

    init(name: String) {
        self.name = name
    }

    /// The state a `CGRPJOINSTATE` log line says the group changed to; nil for another line.
    init?(logLine: String) {
        guard let arrow = logLine.range(of: "changed join state ") else { return nil }
        let change = logLine[arrow.upperBound...]
        guard let to = change.range(of: " -> ") else { return nil }
        let name = change[to.upperBound...].prefix { $0 != " " }
        guard !name.isEmpty else { return nil }
        self.name = String(name)
    }

    /// A join, a sync or an assignment change is under way (librdkafka's own
    /// `RD_KAFKA_CGRP_REBALANCING`, less its "joined" detail): every state but `init` and
    /// `steady`.
    var isRebalancing: Bool { self.name != "init" && self.name != "steady" }
}
