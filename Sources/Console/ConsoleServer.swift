public import CancelCore
import Foundation
public import Hummingbird
public import Logging
import NIOCore
public import OperatorTools
public import ServiceLifecycle

/// The console's web application: the routes of the Flow, Dead letters and Replay pages
/// behind `ConsoleAccess`, over a `FlowMonitor`, a `DeadLetterInspector` and `ReplayJobs`.
public struct ConsoleServer: Sendable {
    public let token: Secret
    public let monitor: FlowMonitor
    public let inspector: DeadLetterInspector
    public let jobs: ReplayJobs
    /// The commands topic, then the retry tiers: the topics whose lag the Flow page shows.
    public let lagTopics: [String]
    let logger: Logger

    public init(
        token: Secret, monitor: FlowMonitor, inspector: DeadLetterInspector, jobs: ReplayJobs, lagTopics: [String],
        logger: Logger
    ) {
        self.token = token
        self.monitor = monitor
        self.inspector = inspector
        self.jobs = jobs
        self.lagTopics = lagTopics
        self.logger = logger
    }

    /// Every route; all of them need the token.
    public func router() -> Router<ConsoleContext> {
        let router = Router(context: ConsoleContext.self)
        router.add(middleware: ConsoleAccess(token: self.token))
        router.get("/") { _, _ in Response(status: .seeOther, headers: [.location: "/flow"]) }
        router.get("/console.css") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/css; charset=utf-8", .cacheControl: "no-store"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: Page.stylesheet)))
        }
        router.get("/console.js") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/javascript; charset=utf-8", .cacheControl: "no-store"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: Page.script)))
        }
        router.get("/flow") { request, context in
            let page = FlowPage(history: self.monitor.history, topics: self.lagTopics).html
            return Self.page(request, context, .flow, title: "Flow", refresh: 2, main: page)
        }
        router.get("/dead-letters") { request, context in
            await self.answer(context, .deadLetters) {
                let parameters = Self.fields(request.uri.query ?? "")
                let query = try DeadLetterQuery(parameters)
                let records = try await self.inspector.records(filter: query.filter())
                let page = DeadLetterListPage(
                    query: query, records: records, page: parameters["page"].flatMap { Int($0) } ?? 1)
                return Self.page(request, context, .deadLetters, title: "Dead letters", main: page.html)
            }
        }
        router.get("/dead-letters/:position") { request, context in
            await self.answer(context, .deadLetters) {
                let position = context.parameters.get("position") ?? ""
                guard let record = try await self.inspector.records().first(where: { $0.position == position }) else {
                    throw ConsoleProblem(.notFound, "no dead letter at \(position)")
                }
                let page = DeadLetterRecordPage(record: record)
                return Self.page(request, context, .deadLetters, title: "Dead letter \(position)", main: page.html)
            }
        }
        router.get("/replay") { request, context in
            await self.answer(context, .replay) {
                let parameters = Self.fields(request.uri.query ?? "")
                let page = ReplayPages.form(
                    query: try DeadLetterQuery(parameters), fromBeginning: parameters["from_beginning"] == "1",
                    jobs: self.jobs.jobs, options: self.jobs.base)
                return Self.page(request, context, .replay, title: "Replay", main: page)
            }
        }
        router.get("/replay/preview") { request, context in
            await self.answer(context, .replay) {
                let parameters = Self.fields(request.uri.query ?? "")
                let limit = try parameters["limit"].flatMap { text -> Int? in
                    guard !text.isEmpty else { return nil }
                    guard let limit = Int(text), limit >= 1 else {
                        throw ConsoleProblem(.badRequest, "at most: expected a positive number, got \(text)")
                    }
                    return limit
                }
                let preview = try await self.jobs.preview(
                    query: try DeadLetterQuery(parameters), fromBeginning: parameters["from_beginning"] == "1",
                    limit: limit, operatorName: context.operatorName)
                return Self.page(request, context, .replay, title: "Dry run", main: ReplayPages.preview(preview))
            }
        }
        router.post("/replay/start") { request, context in
            await self.answer(context, .replay) {
                let body = try await request.body.collect(upTo: context.maxUploadSize)
                let form = Self.fields(String(buffer: body))
                let job = try self.jobs.confirm(
                    previewID: form["preview"] ?? "", csrf: form["csrf"] ?? "", count: form["count"] ?? "",
                    operatorName: context.operatorName)
                return Response(status: .seeOther, headers: [.location: "/replay/jobs/\(job.id)"])
            }
        }
        router.get("/replay/jobs/:id") { request, context in
            await self.answer(context, .replay) {
                let id = context.parameters.get("id") ?? ""
                guard let job = self.jobs.job(id) else { throw ConsoleProblem(.notFound, "no replay \(id)") }
                let outcomes = await self.outcomes(of: job)
                return Self.page(
                    request, context, .replay, title: "Replay \(id)", refresh: 2,
                    main: ReplayPages.job(job, outcomes: outcomes))
            }
        }
        return router
    }

    /// The page, or (`?fragment=1`, the refresh script) only its `main` content.
    static func page(
        _ request: Request, _ context: ConsoleContext, _ section: Page.Section, title: String, refresh: Int? = nil,
        main: String
    ) -> Response {
        if Self.fields(request.uri.query ?? "")["fragment"] == "1" { return Page.response(html: main) }
        return Page.response(
            html: Page.layout(section, title: title, operatorName: context.operatorName, refresh: refresh, main: main))
    }

    /// Runs a page's work; a `ConsoleProblem` becomes its status and message, any other error
    /// (Kafka or the ledger did not answer) a 503 that says so.
    func answer(
        _ context: ConsoleContext, _ section: Page.Section, _ body: () async throws -> Response
    ) async -> Response {
        do {
            return try await body()
        } catch let problem as ConsoleProblem {
            return Page.problem(problem.status, section, operatorName: context.operatorName, message: problem.message)
        } catch {
            self.logger.warning("console page failed", metadata: ["error": "\(error)"])
            return Page.problem(
                .serviceUnavailable, section, operatorName: context.operatorName,
                message: "Kafka or the ledger did not answer: \(error)")
        }
    }

    /// Each replayed command's terminal outcome status, or its ledger state while it has none.
    func outcomes(of job: ReplayJobs.Job) async -> [String: String] {
        guard case .finished(let report) = job.state else { return [:] }
        var outcomes: [String: String] = [:]
        for item in report.replayed.prefix(500) {
            guard let entry = try? await self.jobs.ledger.entry(for: item.key) else { continue }
            if entry.isDone, let bytes = entry.outcome, let outcome = try? CancelOutcome.decode(bytes) {
                outcomes[item.key] = outcome.status.rawValue
            } else if entry.owner == nil && entry.deadLetters > item.deadLettersAtDecision {
                // Failed again: its `failed` outcome is published, the command back among the dead letters.
                outcomes[item.key] = ReplayPages.deadLetteredAgain
            } else {
                outcomes[item.key] = "in progress (ledger: \(entry.state.rawValue))"
            }
        }
        return outcomes
    }

    /// `application/x-www-form-urlencoded` fields (a query string or a form body): `+` is a
    /// space, `%XX` a byte; the first of repeated names wins.
    static func fields(_ text: String) -> [String: String] {
        var fields: [String: String] = [:]
        for pair in text.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ part: Substring) -> String {
                let spaced = part.replacingOccurrences(of: "+", with: " ")
                return spaced.removingPercentEncoding ?? spaced
            }
            let name = decode(parts[0])
            if fields[name] == nil { fields[name] = parts.count > 1 ? decode(parts[1]) : "" }
        }
        return fields
    }

    /// The Hummingbird application on `host:port`, with the monitor, the replay runner and
    /// `services` (the ledger's) in its service group; `onRunning` gets the bound port.
    public func application(
        host: String, port: Int, services: [any Service], onRunning: @escaping @Sendable (Int) -> Void
    ) -> some ApplicationProtocol {
        Application(
            router: self.router(),
            configuration: .init(address: .hostname(host, port: port), serverName: "cancel-worker-console"),
            services: services + [self.monitor, self.jobs],
            onServerRunning: { channel in onRunning(channel.localAddress?.port ?? port) },
            logger: self.logger
        )
    }
}
