public import CancelCore
import Kafka
public import Logging
import OperatorTools
public import WorkerApp

extension ConsoleServer {
    /// Shorter tokens are refused: the token is the only thing between a browser and a replay.
    public static let minimumTokenLength = 16

    /// The configured token, if it is long enough; `AppConfiguration.Invalid` otherwise.
    public static func token(_ console: ConsoleConfiguration) throws -> Secret {
        guard let token = console.token, token.reveal().count >= Self.minimumTokenLength else {
            throw AppConfiguration.Invalid(
                key: "console.token",
                message:
                    "the console needs a token of \(Self.minimumTokenLength) characters at least (e.g. `openssl rand -hex 24`): no anonymous access"
            )
        }
        return token
    }

    /// The console `cancel-worker console` runs, from the same configuration as the workers:
    /// their Kafka, topics, consumer group, ledger (`ledger`, already opened) and retention, and
    /// the `console.*` settings. Throws `AppConfiguration.Invalid` without a usable token.
    public static func make(
        configuration: AppConfiguration, ledger: any IdempotencyLedger, logger: Logger
    ) throws -> ConsoleServer {
        let token = try Self.token(configuration.console)
        let worker = configuration.worker
        // The commands topic in the workers' group, the retry tiers in theirs (`retryGroupID`).
        let lag = try LagReader(
            options: worker.kafka,
            groups: [(worker.groupID, [worker.topics.commands]), (worker.retryGroupID, worker.retryTopics)],
            logger: logger)
        let lagTopics = lag.topics
        let monitor = FlowMonitor(
            workers: configuration.console.workers, interval: configuration.console.scrapeInterval, lag: lag,
            logger: logger)
        var replay = ReplayOptions(kafka: worker.kafka, topics: worker.topics)
        replay.rate = configuration.console.replayRate
        replay.maxReplays = configuration.console.maxReplays
        replay.ledgerRetention = configuration.ledgerRetention
        return ConsoleServer(
            token: token, monitor: monitor,
            inspector: DeadLetterInspector(options: worker.kafka, topic: worker.topics.deadLetters, logger: logger),
            jobs: ReplayJobs(base: replay, ledger: ledger, logger: logger), lagTopics: lagTopics, logger: logger)
    }
}
