import CancelCore
import Foundation
import Hummingbird
import OperatorTools

/// The filters of the Dead letters page (and of a replay): error class, provider, account,
/// and an age bucket of `dlq stats`.
struct DeadLetterQuery: Sendable, Hashable {
    var errorClass: String?
    var provider: String?
    var account: String?
    /// One of `ages`' codes.
    var age: String?
    var key: String?

    static let classes = ["invalid_command", "configuration", "retries_exhausted", "undeliverable"]
    /// Code → the age bucket of `dlq stats` it selects.
    static let ages: [(code: String, bucket: String)] = zip(
        ["1h", "1d", "7d", "older"], DeadLetterInspector.ageBuckets.map(\.name)
    ).map { ($0, $1) }

    init(
        errorClass: String? = nil, provider: String? = nil, account: String? = nil, age: String? = nil,
        key: String? = nil
    ) {
        self.errorClass = errorClass
        self.provider = provider
        self.account = account
        self.age = age
        self.key = key
    }

    /// From query or form parameters; unknown values are refused with a message.
    init(_ parameters: [String: String]) throws {
        func value(_ name: String) -> String? {
            parameters[name].map { $0.trimmingCharacters(in: .whitespaces) }.flatMap { $0.isEmpty ? nil : $0 }
        }
        self.errorClass = value("class")
        self.provider = value("provider")
        self.account = value("account")
        self.age = value("age")
        self.key = value("key")
        if let errorClass, !Self.classes.contains(errorClass) {
            throw ConsoleProblem(.badRequest, "unknown error class \(errorClass)")
        }
        if let provider, ProviderID(rawValue: provider) == nil {
            throw ConsoleProblem(.badRequest, "unknown provider \(provider)")
        }
        if let age, !Self.ages.contains(where: { $0.code == age }) {
            throw ConsoleProblem(.badRequest, "unknown age \(age)")
        }
    }

    /// The filter the inspector and the replayer apply; the age bucket becomes a time range.
    func filter(now: Date = Date()) -> DeadLetterFilter {
        var filter = DeadLetterFilter(
            provider: self.provider, account: self.account, errorClass: self.errorClass, key: self.key)
        if let age, let index = Self.ages.firstIndex(where: { $0.code == age }) {
            let buckets = DeadLetterInspector.ageBuckets
            let below = buckets[index].below
            let from = index == 0 ? 0 : buckets[index - 1].below
            if below.isFinite { filter.since = now.addingTimeInterval(-below) }
            if from > 0 { filter.until = now.addingTimeInterval(-from) }
        }
        return filter
    }

    var pairs: [(String, String?)] {
        [
            ("class", self.errorClass), ("provider", self.provider), ("account", self.account), ("age", self.age),
            ("key", self.key),
        ]
    }

    /// Shown to people and written to the audit log: `provider=fastpod class=…`, or `all`.
    var summary: String {
        let set = self.pairs.compactMap { name, value in value.map { "\(name)=\($0)" } }
        return set.isEmpty ? "all" : set.joined(separator: " ")
    }

    /// The filter form's fields.
    func fields(includeKey: Bool) -> String {
        var html = """
            <label>error class \(Page.select(name: "class", options: Self.classes.map { ($0, $0) }, selected: self.errorClass))</label>
            <label>provider \(Page.select(name: "provider", options: ProviderID.allCases.map { ($0.rawValue, $0.rawValue) }, selected: self.provider))</label>
            <label>account <input name="account" id="account" value="\(Page.escape(self.account ?? ""))" size="12"></label>
            <label>age \(Page.select(name: "age", options: Self.ages.map { ($0.code, $0.bucket) }, selected: self.age))</label>
            """
        if includeKey {
            html +=
                #"<label>idempotency key <input name="key" id="key" value="\#(Page.escape(self.key ?? ""))" size="16"></label>"#
        }
        return html
    }
}

/// An answer other than 200, with what to tell the operator.
struct ConsoleProblem: Error {
    var status: HTTPResponse.Status
    var message: String

    init(_ status: HTTPResponse.Status, _ message: String) {
        self.status = status
        self.message = message
    }
}

/// The Dead letters page: `dlq stats` for the selection, then a paged `dlq list`.
struct DeadLetterListPage {
    var query: DeadLetterQuery
    var records: [DeadLetterRecord]
    var page: Int
    var pageSize = 50
    var now = Date()

    var html: String {
        let statistics = DeadLetterInspector.statistics(self.records, now: self.now)
        func counts(_ id: String, _ title: String, _ rows: [(name: String, count: Int)]) -> String {
            Page.table(
                id: id, columns: [title, "dead letters"],
                rows: rows.map { [Page.escape($0.name), #"<span class="num">\#($0.count)</span>"#] })
        }
        let pages = max(1, (self.records.count + self.pageSize - 1) / self.pageSize)
        let page = min(max(1, self.page), pages)
        let shown = self.records.dropFirst((page - 1) * self.pageSize).prefix(self.pageSize)
        let rows = shown.map { record -> [String] in
            [
                #"<a href="/dead-letters/\#(Page.urlEncode(record.position))">\#(Page.escape(record.position))</a>"#,
                Page.escape(record.deadLetteredAt.map(Timestamp.format) ?? "–"), Page.escape(record.errorClass),
                Page.escape(record.provider ?? "–"), Page.escape(record.account ?? "–"),
                Page.escape(record.idempotencyKey ?? "–"), String(record.attempts), String(record.replayCount),
                Page.escape(String(record.reason.prefix(80))),
            ]
        }
        func link(_ target: Int, _ label: String) -> String {
            let query = Page.query(self.query.pairs + [("page", String(target))])
            return #"<a href="/dead-letters\#(query)" id="page-\#(label.lowercased())">\#(label)</a>"#
        }
        var pager = "page \(page) of \(pages)"
        if page > 1 { pager = link(page - 1, "Previous") + " · " + pager }
        if page < pages { pager += " · " + link(page + 1, "Next") }
        return """
            <h1>Dead letters</h1>
            <form class="filters" method="get" action="/dead-letters" id="filters">
            \(self.query.fields(includeKey: false))
            <button type="submit" id="apply">Filter</button> <a href="/dead-letters">clear</a>
            </form>
            <h2>dlq stats: <span id="dlq-total">\(statistics.total)</span> dead letters (\(Page.escape(self.query.summary)))</h2>
            <div class="figures">
            \(counts("by-class", "by error class", statistics.byClass))
            \(counts("by-provider", "by provider", statistics.byProvider))
            \(counts("by-age", "by age", statistics.byAge))
            </div>
            <h2>dlq list</h2>
            \(Page.table(id: "dead-letters", columns: ["position", "dead-lettered at", "error class", "provider", "account", "key", "attempts", "replays", "reason"], rows: rows, empty: "no dead letter matches"))
            <p class="pager">\(pager) · <a href="/replay\(Page.query(self.query.pairs))" id="replay-these">replay these…</a></p>
            """
    }
}

/// One dead letter: its headers (the failure context) and its payload, the original bytes
/// shown as escaped text (or hex when they are not UTF-8).
struct DeadLetterRecordPage {
    var record: DeadLetterRecord

    var html: String {
        let message = self.record.message
        let headers = message.headers.map { header in
            [Page.escape(header.name), Page.escape(DeadLetterInspector.text(of: header))]
        }
        let utf8 = String(validating: message.value, as: UTF8.self) != nil
        let replay = self.record.idempotencyKey.map { key in
            #"<p><a href="/replay\#(Page.query([("key", key)]))" id="replay-this">replay this command…</a></p>"#
        }
        return """
            <h1>Dead letter \(Page.escape(message.topic)) <span id="position">\(Page.escape(self.record.position))</span></h1>
            <p>key: <code id="record-key">\(Page.escape(message.keyString ?? "(none)"))</code> · error class: <b id="error-class">\(Page.escape(self.record.errorClass))</b></p>
            <h2>Headers</h2>
            \(Page.table(id: "headers", columns: ["header", "value"], rows: headers))
            <h2>Payload</h2>
            <p>The original record's \(message.value.count) bytes, unchanged, \(utf8 ? "as UTF-8 text (HTML-escaped here)" : "not UTF-8: shown in hex"). Commands carry no secrets.</p>
            <pre id="payload">\(Page.escape(DeadLetterInspector.payloadText(message.value)))</pre>
            \(replay ?? "")
            <p><a href="/dead-letters">all dead letters</a></p>
            """
    }
}
