import CancelCore
import Foundation
import OperatorTools

/// The Replay pages: choose filters → dry run → confirm with the count → progress → result.
enum ReplayPages {
    /// The filter form; it leads to the dry run.
    static func form(
        query: DeadLetterQuery, fromBeginning: Bool, jobs: [ReplayJobs.Job], options: ReplayOptions
    )
        -> String
    {
        let recent = jobs.reversed().prefix(10).map { job in
            [
                #"<a href="/replay/jobs/\#(Page.urlEncode(job.id))">\#(Page.escape(job.id))</a>"#,
                Page.escape(job.operatorName), Page.escape(Timestamp.format(job.requestedAt)),
                Page.escape(job.query.summary), Page.escape(Self.stateText(job)),
            ]
        }
        return """
            <h1>Replay dead letters</h1>
            <p>A replay sends the selected dead letters back to <code>\(Page.escape(options.topics.commands))</code> with the
            same checks as <code>cancel-worker replay</code>: keys the ledger completed are skipped, commands replayed
            \(options.maxReplays) times are parked, undecodable input is not replayed, at most \(Page.number(options.rate ?? 0))
            records per second. It reads the dead letters in the replay group <code>\(Page.escape(options.group))</code>,
            from where the last replay stopped (whatever its filters) unless "from the beginning" is ticked.
            First comes a dry run: nothing is sent until you confirm it.</p>
            <form class="filters" method="get" action="/replay/preview" id="replay-filters">
            \(query.fields(includeKey: true))
            <label>from the beginning <input type="checkbox" name="from_beginning" id="from_beginning" value="1"\(fromBeginning ? " checked" : "")></label>
            <label>at most <input name="limit" id="limit" size="5" inputmode="numeric"></label>
            <button type="submit" id="dry-run">Dry run</button>
            </form>
            <h2>Recent replays</h2>
            \(Page.table(id: "replays", columns: ["replay", "operator", "confirmed at", "filters", "state"], rows: Array(recent), empty: "none since the console started"))
            """
    }

    /// The dry run's table, and the confirmation form with the one-time CSRF token.
    static func preview(_ preview: ReplayJobs.Preview) -> String {
        let report = preview.report
        let count = report.replayed.count
        let confirm =
            count == 0
            ? #"<p id="nothing">Nothing to replay with these filters.</p>"#
            : """
            <form method="post" action="/replay/start" id="confirm">
            <input type="hidden" name="preview" value="\(Page.escape(preview.id))">
            <input type="hidden" name="csrf" value="\(Page.escape(preview.csrf))">
            <p>This sends <b id="would-replay">\(count)</b> dead letter\(count == 1 ? "" : "s") back to the commands topic.
            To confirm, type that number: <input name="count" id="count" size="6" autocomplete="off" inputmode="numeric">
            <button type="submit" class="danger" id="confirm-replay">Replay \(count) dead letter\(count == 1 ? "" : "s")</button></p>
            </form>
            """
        return """
            <h1>Dry run (\(Page.escape(preview.query.summary)))</h1>
            <pre id="summary">\(Page.escape(report.summary))</pre>
            \(Page.table(id: "decisions", columns: ReplayReport.detailColumns, rows: report.detailRows.map { $0.map(Page.escape) }, empty: "no dead letter read"))
            \(confirm)
            <p><a href="/replay\(Page.query(preview.query.pairs))">change the filters</a></p>
            """
    }

    static func stateText(_ job: ReplayJobs.Job) -> String {
        switch job.state {
        case .queued: "waiting to start"
        case .running(let report):
            report.map { "running: read \($0.read), replayed \($0.replayed.count), skipped \($0.skipped.count)" }
                ?? "running: joining the replay group"
        case .finished(let report): "finished: replayed \(report.replayed.count), skipped \(report.skipped.count)"
        case .failed(let message): "failed: \(message)"
        }
    }

    /// A replay's progress, then its result and what became of each replayed command (from the
    /// ledger). `outcomes`: key → ledger state or outcome status. Final once the replay ended
    /// and every replayed command has its terminal outcome.
    static func job(_ job: ReplayJobs.Job, outcomes: [String: String]) -> String {
        var html = """
            <h1>Replay <span id="replay-id">\(Page.escape(job.id))</span></h1>
            <p>confirmed by <b>\(Page.escape(job.operatorName))</b> at \(Page.escape(Timestamp.format(job.requestedAt)))
            · filters: \(Page.escape(job.query.summary)) · previewed: \(job.previewed)</p>
            <p id="state">\(Page.escape(Self.stateText(job)))</p>
            """
        guard case .finished(let report) = job.state else {
            if case .failed = job.state { html += "<p data-final></p>" }
            return html
        }
        let rows = report.replayed.map { item -> [String] in
            let outcome = outcomes[item.key] ?? "waiting for the worker"
            return [
                Page.escape(item.position), Page.escape(item.provider), Page.escape(item.account),
                Page.escape(item.key),
                #"<span class="outcome">\#(Page.escape(outcome))</span>"#,
            ]
        }
        let done = report.replayed.allSatisfy { outcomes[$0.key].map(Self.isTerminal) ?? false }
        html += """
            <h2>Result</h2>
            <pre id="summary">\(Page.escape(report.summary))</pre>
            \(Page.table(id: "decisions", columns: ReplayReport.detailColumns, rows: report.detailRows.map { $0.map(Page.escape) }))
            <h2>Replayed commands: their outcome now</h2>
            \(Page.table(id: "replayed", columns: ["position", "provider", "account", "key", "outcome"], rows: rows, empty: "nothing was replayed"))
            <p id="progress-note">\(done ? "Every replayed command has its terminal outcome." : "Waiting for the workers (this page refreshes).")</p>
            """
        if done { html += "<p data-final></p>" }
        return html
    }

    /// A ledger state or outcome status that ends a command's story.
    static func isTerminal(_ text: String) -> Bool {
        OutcomeStatus(rawValue: text) != nil || text == Self.deadLetteredAgain
    }

    /// A replayed command that failed again (`ConsoleServer.outcomes`): its story ends among
    /// the dead letters, until another replay.
    static let deadLetteredAgain = "dead-lettered again"
}
