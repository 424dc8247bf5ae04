public import CancelCore
import Foundation
public import Logging
public import OperatorTools
public import ServiceLifecycle
import Synchronization

/// The console's replays: a dry run makes a preview (the table `replay --dry-run` prints) with
/// a one-time CSRF token; confirming it with that token and the count shown starts the real
/// run with the same `Replayer`, filters and limits. One replay (dry or not) runs at a time —
/// they share the replay consumer group. Each confirmed replay is audited: who, when, filters
/// and counts in the log, and who and when on every replayed record.
public final class ReplayJobs: Service, Sendable {
    /// A dry run waiting for its confirmation.
    struct Preview: Sendable {
        var id: String
        var csrf: String
        var operatorName: String
        var query: DeadLetterQuery
        var filter: DeadLetterFilter
        var fromBeginning: Bool
        var limit: Int?
        var report: ReplayReport
        var createdAt: Date
    }

    /// A confirmed replay.
    struct Job: Sendable {
        enum State: Sendable {
            case queued
            case running(ReplayReport?)
            case finished(ReplayReport)
            case failed(String)
        }

        var id: String
        var operatorName: String
        var query: DeadLetterQuery
        /// The preview's filter (its age bucket as fixed times), so the run selects what the preview did.
        var filter: DeadLetterFilter
        var fromBeginning: Bool
        var limit: Int?
        var previewed: Int
        /// How far the preview read each dead-letter partition: the run reads no further.
        var ends: [Int32: Int64]
        var requestedAt: Date
        var state: State

        var isOver: Bool {
            switch self.state {
            case .finished, .failed: true
            case .queued, .running: false
            }
        }
    }

    /// The replay settings every console replay shares (Kafka, topics, group, rate, max replays, retention).
    public let base: ReplayOptions
    public let ledger: any IdempotencyLedger
    let logger: Logger
    /// How long a preview can be confirmed.
    let previewLifetime: TimeInterval = 600
    private let gate = AsyncSemaphore(permits: 1)
    private let state = Mutex<(previews: [String: Preview], jobs: [Job])>(([:], []))
    private let requests: AsyncStream<String>
    private let continuation: AsyncStream<String>.Continuation

    public init(base: ReplayOptions, ledger: any IdempotencyLedger, logger: Logger) {
        self.base = base
        self.ledger = ledger
        self.logger = logger
        (self.requests, self.continuation) = AsyncStream.makeStream(of: String.self)
    }

    /// Runs confirmed replays one after the other until shutdown; a replay in progress is
    /// stopped after its current record and what it did is committed (as `replay` on SIGINT).
    public func run() async throws {
        await cancelWhenGracefulShutdown {
            for await id in self.requests {
                if Task.isCancelled { break }
                await self.execute(id)
            }
        }
    }

    var jobs: [Job] { self.state.withLock { $0.jobs } }

    func job(_ id: String) -> Job? { self.state.withLock { state in state.jobs.first { $0.id == id } } }

    var busy: Bool { self.state.withLock { state in state.jobs.contains { !$0.isOver } } }

    /// A dry run of this selection, remembered for confirmation.
    func preview(
        query: DeadLetterQuery, fromBeginning: Bool, limit: Int?, operatorName: String, now: Date = Date()
    ) async throws -> Preview {
        guard !self.busy else { throw ConsoleProblem(.conflict, "a replay is running; wait until it ends") }
        var options = self.base
        options.dryRun = true
        options.filter = query.filter(now: now)
        options.fromBeginning = fromBeginning
        options.limit = limit
        try await self.gate.acquire()
        defer { self.gate.release() }
        let report = try await Replayer(options: options, ledger: self.ledger, logger: self.logger).run()
        let preview = Preview(
            id: Self.randomHex(8), csrf: Self.randomHex(32), operatorName: operatorName, query: query,
            filter: options.filter, fromBeginning: fromBeginning, limit: limit, report: report, createdAt: now)
        self.remember(preview, now: now)
        return preview
    }

    /// Keeps a preview for its confirmation (and forgets expired ones).
    func remember(_ preview: Preview, now: Date = Date()) {
        self.state.withLock { state in
            state.previews = state.previews.filter { now.timeIntervalSince($0.value.createdAt) < self.previewLifetime }
            state.previews[preview.id] = preview
        }
    }

    /// Starts the previewed replay if `csrf` is that preview's token and `count` the number it
    /// showed. The preview is used up either way (a new dry run makes a new token).
    func confirm(
        previewID: String, csrf: String, count: String, operatorName: String, now: Date = Date()
    ) throws -> Job {
        let preview = self.state.withLock { $0.previews.removeValue(forKey: previewID) }
        guard let preview, !csrf.isEmpty, ConsoleAccess.same(csrf, preview.csrf),
            now.timeIntervalSince(preview.createdAt) < self.previewLifetime
        else {
            throw ConsoleProblem(
                .forbidden, "missing, used or wrong CSRF token: start again from a dry run (the preview)")
        }
        let previewed = preview.report.replayed.count
        guard Int(count.trimmingCharacters(in: .whitespaces)) == previewed else {
            throw ConsoleProblem(
                .unprocessableContent,
                "to confirm, type the number of dead letters the preview would replay (\(previewed)); nothing was replayed"
            )
        }
        let job = Job(
            id: "console-\(Self.randomHex(4))", operatorName: operatorName, query: preview.query,
            filter: preview.filter, fromBeginning: preview.fromBeginning, limit: preview.limit, previewed: previewed,
            ends: preview.report.ends, requestedAt: now,
            state: .queued)
        let accepted = self.state.withLock { state -> Bool in
            guard !state.jobs.contains(where: { !$0.isOver }) else { return false }
            state.jobs.append(job)
            return true
        }
        guard accepted else { throw ConsoleProblem(.conflict, "a replay is running; wait until it ends") }
        self.logger.notice(
            "replay confirmed",
            metadata: [
                "operator": "\(operatorName)", "replay_id": "\(job.id)", "filters": "\(preview.query.summary)",
                "from_beginning": "\(preview.fromBeginning)", "limit": "\(preview.limit.map(String.init) ?? "none")",
                "previewed": "\(previewed)", "requested_at": "\(Timestamp.format(now))",
            ])
        self.continuation.yield(job.id)
        return job
    }

    private func execute(_ id: String) async {
        guard let job = self.job(id) else { return }
        var options = self.base
        options.dryRun = false
        options.filter = job.filter
        options.fromBeginning = job.fromBeginning
        // At most what the operator saw and confirmed: the dead letters the preview read, no
        // further (those that arrived since, a new outage, are left for another preview), and
        // no more of them than it counted.
        options.readUntil = job.ends
        options.limit = min(job.limit ?? job.previewed, job.previewed)
        options.replayID = job.id
        options.requestedBy = (job.operatorName, job.requestedAt)
        self.update(id) { $0.state = .running(nil) }
        do {
            try await self.gate.acquire()
        } catch {
            self.update(id) { $0.state = .failed("the console stopped before the replay started") }
            return
        }
        defer { self.gate.release() }
        let replayer = Replayer(options: options, ledger: self.ledger, logger: self.logger)
        do {
            let report = try await replayer.run { progress in self.update(id) { $0.state = .running(progress) } }
            self.update(id) { $0.state = .finished(report) }
            self.logger.notice(
                "replay finished",
                metadata: [
                    "operator": "\(job.operatorName)", "replay_id": "\(id)", "filters": "\(job.query.summary)",
                    "requested_at": "\(Timestamp.format(job.requestedAt))", "read": "\(report.read)",
                    "replayed": "\(report.replayed.count)", "skipped": "\(report.skipped.count)",
                    "completed_in_ledger": "\(report.count("completed in the ledger"))",
                    "parked": "\(report.count("replayed too often"))",
                    "not_replayable": "\(report.count("not replayable"))",
                    "older_than_retention": "\(report.count("older than the ledger's retention"))",
                    "superseded": "\(report.count("superseded by a later dead letter"))",
                    "stopped_at_limit": "\(report.stoppedAtLimit)",
                    "left_to_others": "\(report.leftToOthers.map(String.init).joined(separator: ","))",
                ])
        } catch {
            self.update(id) { $0.state = .failed("\(error)") }
            self.logger.error(
                "replay failed",
                metadata: ["operator": "\(job.operatorName)", "replay_id": "\(id)", "error": "\(error)"])
        }
    }

    private func update(_ id: String, _ change: (inout Job) -> Void) {
        self.state.withLock { state in
            if let index = state.jobs.firstIndex(where: { $0.id == id }) { change(&state.jobs[index]) }
        }
    }

    /// `bytes` random bytes as hex, from the system's cryptographic generator.
    static func randomHex(_ bytes: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<bytes).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
    }
}
