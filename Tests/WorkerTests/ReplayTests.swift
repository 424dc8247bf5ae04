import CancelCore
import CancelWorkerTesting
import Foundation
import Kafka
import Sandbox
import Synchronization
import Testing

@testable import OperatorTools
@testable import Worker

@Suite("Replay of dead letters, end to end", .timeLimit(.minutes(4)))
struct ReplayTests {
    func options(_ harness: WorkerHarness) -> ReplayOptions {
        var options = ReplayOptions(
            kafka: KafkaClientOptions(bootstrapServers: harness.cluster.bootstrapServers), topics: harness.topics)
        options.group = "replay-\(UUID().uuidString.prefix(6))"
        options.timeout = .seconds(60)
        return options
    }

    /// The replayed records on the commands topic: their DLQ offsets (provenance).
    func replayedOrigins(_ harness: WorkerHarness) async throws -> [String] {
        try await TopicSnapshot(
            options: KafkaClientOptions(bootstrapServers: harness.cluster.bootstrapServers),
            topic: harness.topics.commands, logger: harnessLogger
        )
        .read()
        .compactMap { message in
            guard message.headers.string(WorkerHeaders.replayID) != nil else { return nil }
            return
                "\(message.headers.string(WorkerHeaders.replayOriginPartition)!)@\(message.headers.string(WorkerHeaders.replayOriginOffset)!)"
        }
    }

    @Test(
        "an outage's dead letters replay to cancelled, each key called once; dry run changes nothing; resumable; completed keys skipped; poison not replayable"
    )
    func outageReplay() async throws {
        let harness = try await WorkerHarness(partitions: 2)
        try await SandboxProviders.with(timeout: .seconds(2), logger: harnessLogger) { sandbox in
            let keys = (0..<5).map { "out-\($0)" }
            sandbox.sandbox.seed(keys.map { SandboxOrder(provider: .fastpod, id: $0) })
            sandbox.sandbox.addFault(
                SandboxFault(.status(code: 503, retryAfterSeconds: nil), provider: .fastpod, orderPattern: "out-*"))
            var configuration = harness.configuration()
            configuration.retry.maxAttempts = 2
            let ledger = InMemoryLedger()
            let worker = CancelWorker(
                configuration: configuration, providers: sandbox.registry.providers, ledger: ledger,
                logger: harnessLogger)
            try await harness.withWorkers([worker]) {
                try await harness.waitUntilAssigned([worker])
                try await harness.send(keys.map { command(.fastpod, account: "demo-1", order: $0) })
                try await harness.sendRaw("garbage", key: "fastpod:demo-1")
                let failed = try await harness.outcomes(atLeast: 5)
                #expect(failed.allSatisfy { $0.status == .failed && $0.errorClass == "retries_exhausted" })
                _ = try await harness.deadLetters(atLeast: 6)

                // Dry run: a report, and nothing else.
                var dry = self.options(harness)
                dry.dryRun = true
                let commandsBefore = try await TopicSnapshot(
                    options: KafkaClientOptions(bootstrapServers: harness.cluster.bootstrapServers),
                    topic: harness.topics.commands, logger: harnessLogger
                ).read().count
                let preview = try await Replayer(options: dry, ledger: ledger, logger: harnessLogger).run()
                #expect(preview.replayed.count == 5 && preview.count("not replayable") == 1, "\(preview.summary)")
                #expect(preview.details.contains("would replay"))
                let commandsAfter = try await TopicSnapshot(
                    options: KafkaClientOptions(bootstrapServers: harness.cluster.bootstrapServers),
                    topic: harness.topics.commands, logger: harnessLogger
                ).read().count
                #expect(commandsAfter == commandsBefore, "a dry run produces nothing")
                let probe = try KafkaConsumer(
                    configuration: KafkaConsumerConfiguration(
                        bootstrapServers: harness.cluster.bootstrapServers, groupID: dry.group), topics: [],
                    logger: harnessLogger)
                let committed = try await probe.committed(
                    (0..<2).map { KafkaTopicPartition(topic: harness.topics.deadLetters, partition: $0) })
                probe.close()
                #expect(committed.allSatisfy { $0.offset < 0 }, "a dry run commits nothing: \(committed)")

                // The provider recovers; replay in two runs (the first stops at --limit).
                sandbox.sandbox.clearFaults()
                sandbox.sandbox.resetStats()
                var real = self.options(harness)
                real.limit = 2
                let first = try await Replayer(options: real, ledger: ledger, logger: harnessLogger).run()
                #expect(first.replayed.count == 2 && first.stoppedAtLimit)
                real.limit = nil
                let second = try await Replayer(options: real, ledger: ledger, logger: harnessLogger).run()
                #expect(second.replayed.count == 3, "\(second.summary)")
                let origins = try await self.replayedOrigins(harness)
                #expect(
                    origins.count == 5 && Set(origins).count == 5,
                    "every dead letter replayed exactly once across both runs: \(origins)")

                let outcomes = try await harness.outcomes(atLeast: 10)
                let terminal = outcomes.filter { $0.status.isTerminal }
                #expect(Set(terminal.map(\.idempotencyKey)) == Set(keys.map { "fastpod-\($0)" }))
                #expect(terminal.allSatisfy { $0.status == .cancelled })
                for key in keys {
                    #expect(sandbox.calls(.fastpod, key).count == 1, "\(key) was called once after the outage")
                }

                // Everything is done now: a rerun from the beginning replays nothing.
                var again = self.options(harness)
                again.fromBeginning = true
                let rerun = try await Replayer(options: again, ledger: ledger, logger: harnessLogger).run()
                #expect(rerun.replayed.isEmpty)
                #expect(
                    rerun.count("completed in the ledger") == 5 && rerun.count("not replayable") == 1,
                    "\(rerun.summary)")
            }
        }
    }

    /// Dead letters written directly, with the documented headers.
    func deadLetter(
        _ harness: WorkerHarness, key: String, provider: String, account: String, errorClass: String, at: Date,
        replays: Int = 0, partition: Int32? = nil
    ) async throws {
        let command = CancelCommand(
            commandID: UUID().uuidString, idempotencyKey: key, provider: ProviderID(rawValue: provider) ?? .fastpod,
            account: account,
            order: .fastpod(id: key), requestedAt: Date()
        )
        var headers = [
            KafkaHeader(name: WorkerHeaders.errorClass, string: errorClass),
            KafkaHeader(name: WorkerHeaders.errorMessage, string: "test"),
            KafkaHeader(name: WorkerHeaders.idempotencyKey, string: key),
            KafkaHeader(name: WorkerHeaders.provider, string: provider),
            KafkaHeader(name: WorkerHeaders.account, string: account),
            KafkaHeader(name: WorkerHeaders.deadLetteredAt, string: String(Timestamp.milliseconds(at))),
        ]
        if replays > 0 { headers.append(KafkaHeader(name: WorkerHeaders.replayCount, string: String(replays))) }
        _ = try await harness.producer.send(
            KafkaProducerMessage(
                topic: harness.topics.deadLetters, partition: partition, key: Array("\(provider):\(account)".utf8),
                value: command.encoded(), headers: headers))
    }

    @Test("filters select exactly what they say; records replayed too often are parked unless --force")
    func filtersAndParking() async throws {
        let harness = try await WorkerHarness(partitions: 2)
        let old = Date(timeIntervalSinceNow: -7200)
        let recent = Date(timeIntervalSinceNow: -60)
        try await self.deadLetter(
            harness, key: "a", provider: "fastpod", account: "shop-1", errorClass: "retries_exhausted", at: old)
        try await self.deadLetter(
            harness, key: "b", provider: "fastpod", account: "shop-2", errorClass: "configuration", at: recent)
        try await self.deadLetter(
            harness, key: "c", provider: "fungies", account: "shop-1", errorClass: "retries_exhausted", at: recent)
        try await self.deadLetter(
            harness, key: "d", provider: "futures", account: "trader", errorClass: "configuration", at: old, replays: 3)
        let ledger = InMemoryLedger()
        func selected(_ filter: DeadLetterFilter, force: Bool = false) async throws -> Set<String> {
            var options = self.options(harness)
            options.dryRun = true
            options.filter = filter
            options.force = force
            return Set(
                try await Replayer(options: options, ledger: ledger, logger: harnessLogger).run().replayed.map(\.key))
        }
        #expect(try await selected(DeadLetterFilter()) == ["a", "b", "c"], "d is parked (replayed 3 times)")
        #expect(try await selected(DeadLetterFilter(), force: true) == ["a", "b", "c", "d"])
        #expect(try await selected(DeadLetterFilter(provider: "fastpod")) == ["a", "b"])
        #expect(try await selected(DeadLetterFilter(account: "shop-1")) == ["a", "c"])
        #expect(try await selected(DeadLetterFilter(errorClass: "configuration"), force: true) == ["b", "d"])
        #expect(try await selected(DeadLetterFilter(key: "c")) == ["c"])
        #expect(try await selected(DeadLetterFilter(since: Date(timeIntervalSinceNow: -3600))) == ["b", "c"])
        #expect(
            try await selected(DeadLetterFilter(until: Date(timeIntervalSinceNow: -3600)), force: true) == ["a", "d"])

        // Review finding: a real run commits past what it skips, so its summary's "--force replays
        // them" sent the operator to a run that replays nothing; it names the way back now.
        var real = self.options(harness)
        let first = try await Replayer(options: real, ledger: ledger, logger: harnessLogger).run()
        #expect(
            first.summary.contains("(parked; --force --from-beginning, or --force with another --group, replays them)"),
            "\(first.summary)")
        real.force = true
        let forced = try await Replayer(options: real, ledger: ledger, logger: harnessLogger).run()
        #expect(forced.replayed.isEmpty, "the group's position is past the parked record")
        real.fromBeginning = true
        let again = try await Replayer(options: real, ledger: ledger, logger: harnessLogger).run()
        #expect(again.replayed.map(\.key).contains("d"), "\(again.summary)")
    }

    /// Another member of the replay's group `group`, as another operator's replay would be.
    func member(_ harness: WorkerHarness, group: String) -> KafkaConsumerConfiguration {
        var member = KafkaConsumerConfiguration(bootstrapServers: harness.cluster.bootstrapServers, groupID: group)
        member.sessionTimeout = .seconds(6)
        return member
    }

    /// `count` dead letters of one account on a DLQ of two partitions (alternating), keys
    /// `prefix0`, `prefix1`, …, and replay options at 4 records per second.
    func twoPartitions(_ count: Int, prefix: String) async throws -> (WorkerHarness, ReplayOptions) {
        let harness = try await WorkerHarness(partitions: 2)
        for index in 0..<count {
            try await self.deadLetter(
                harness, key: "\(prefix)\(index)", provider: "fastpod", account: "shop",
                errorClass: "retries_exhausted", at: Date(), partition: Int32(index % 2))
        }
        var options = self.options(harness)
        options.rate = 4
        return (harness, options)
    }

    /// Runs a member of the DLQ's consumer group `configuration` for `duration`, then closes it.
    func runMember(
        _ configuration: KafkaConsumerConfiguration, of harness: WorkerHarness, for duration: Duration
    )
        async throws
    {
        let member = try KafkaConsumer(
            configuration: configuration, topics: [harness.topics.deadLetters], rebalanceListener: nil,
            logger: harnessLogger)
        try await withThrowingTaskGroup(of: Void.self) { running in
            running.addTask { try await member.run() }
            try await Task.sleep(for: duration)
            member.close()
            try await running.waitForAll()
        }
    }

    /// Dead letters of one account, keys `prefix0`, `prefix1`, …
    func deadLetters(_ harness: WorkerHarness, prefix: String, count: Int) async throws {
        for index in 0..<count {
            try await self.deadLetter(
                harness, key: "\(prefix)\(index)", provider: "fastpod", account: "shop",
                errorClass: "retries_exhausted", at: Date())
        }
    }

    /// Runs a replay and, once it has replayed `records`, `alongside` beside it; `interrupting`:
    /// the replay is cancelled when `alongside` returns.
    func replay(
        _ options: ReplayOptions, ledger: InMemoryLedger, after records: Int, interrupting: Bool,
        alongside: @escaping @Sendable () async throws -> Void
    ) async throws -> ReplayReport {
        let progress = ProgressProbe()
        return try await withThrowingTaskGroup(of: ReplayReport?.self) { group in
            group.addTask {
                try await Replayer(options: options, ledger: ledger, logger: harnessLogger).run {
                    progress.set($0.replayed.count)
                }
            }
            group.addTask {
                while progress.value < records { try await Task.sleep(for: .milliseconds(20)) }
                try await alongside()
                return nil
            }
            var result: ReplayReport?
            while let next = try await group.next() {
                if let report = next { result = report } else if interrupting { group.cancelAll() }
            }
            return result!
        }
    }

    @Test("an interrupted replay, resumed, neither repeats nor skips a record")
    func interrupted() async throws {
        let harness = try await WorkerHarness(partitions: 1)
        try await self.deadLetters(harness, prefix: "k", count: 8)
        var options = self.options(harness)
        options.rate = 2
        let ledger = InMemoryLedger()
        // Interrupted while replaying (2 records per second), after the third.
        let partial = try await self.replay(options, ledger: ledger, after: 3, interrupting: true) {}
        #expect(
            partial.replayed.count >= 3 && partial.replayed.count < 8, "interrupted mid-run: \(partial.replayed.count)")
        options.rate = nil
        let rest = try await Replayer(options: options, ledger: ledger, logger: harnessLogger).run()
        #expect(partial.replayed.count + rest.replayed.count == 8)
        let origins = try await self.replayedOrigins(harness)
        #expect(origins.count == 8 && Set(origins).count == 8, "\(origins)")
    }

    @Test(
        "regression: a member joining the replay's group mid-replay does not fail the replay; every record is replayed")
    func joinMidReplay() async throws {
        let harness = try await WorkerHarness(partitions: 1)
        try await self.deadLetters(harness, prefix: "j", count: 12)
        var options = self.options(harness)
        options.rate = 4
        // A second member of the replay's group (another operator's replay, say) joins after
        // the third record: the join round (5 s on the mock coordinator) outlasts the remaining
        // records at 4/s, so the replay commits while its group rebalances. The coordinator
        // refuses those commits (REBALANCE_IN_PROGRESS), which failed the replay. A commit that
        // crossed the join (ILLEGAL_GENERATION, librdkafka #4059) costs the member its assignment
        // for a round, and the records after its last commit come again: replayed twice then,
        // which the worker's ledger keeps to one call per key, never lost.
        let joining = self.member(harness, group: options.group)
        let report = try await self.replay(options, ledger: InMemoryLedger(), after: 3, interrupting: false) {
            try await self.runMember(joining, of: harness, for: .seconds(8))
        }
        let origins = try await self.replayedOrigins(harness)
        #expect(Set(origins).count == 12, "every record replayed: \(origins)")
        #expect(report.replayed.count >= 12 && origins.count == report.replayed.count, "\(origins)")
    }
}

extension ReplayTests {
    /// Review finding: `dlq list`, `dlq stats`, `dlq show` and the console's pages read the
    /// dead-letter topic with `TopicSnapshot.read`, which returned what it had when its timeout
    /// passed: wrong totals, or "no dead letter at …" for one that exists, without a word.
    @Test("regression: a topic read that does not reach every partition's end in time throws, never a partial list")
    func incompleteReadThrows() async throws {
        let harness = try await WorkerHarness(partitions: 2)
        try await self.deadLetters(harness, prefix: "r", count: 4)
        let snapshot = TopicSnapshot(
            options: KafkaClientOptions(bootstrapServers: harness.cluster.bootstrapServers),
            topic: harness.topics.deadLetters, logger: harnessLogger)
        await #expect(throws: TopicSnapshot.Incomplete.self) { try await snapshot.read(timeout: .milliseconds(1)) }
        #expect(try await snapshot.read().count == 4)
    }

    /// Review finding: with `--from-beginning`, every assignment sought to the beginning, so a
    /// partition that came back after a rebalance (another member joined the replay's group: a
    /// console dry run uses the same default group) was replayed again from its first record,
    /// records committed long before included. Only the first assignment of a partition in a run
    /// starts at the beginning; one that comes back continues from the group's committed offset
    /// (the records after the last commit before the rebalance can come twice, as without
    /// `--from-beginning`, and the worker's ledger keeps them to one call per key).
    @Test("regression: --from-beginning starts each partition at its beginning once; one that comes back continues")
    func fromBeginningOnce() async throws {
        let (harness, base) = try await self.twoPartitions(40, prefix: "b")
        var options = base
        options.fromBeginning = true
        let joining = self.member(harness, group: options.group)
        _ = try await self.replay(options, ledger: InMemoryLedger(), after: 3, interrupting: false) {
            try await self.runMember(joining, of: harness, for: .seconds(7))
        }
        let origins = try await self.replayedOrigins(harness)
        var counts: [String: Int] = [:]
        for origin in origins { counts[origin, default: 0] += 1 }
        let twice = counts.filter { $0.value > 1 }.keys.sorted()
        #expect(Set(origins).count == 40, "every record replayed: \(origins)")
        // Each partition's first record was replayed and committed before the member joined.
        #expect(!twice.contains("0@0") && !twice.contains("1@0"), "replayed again from the beginning: \(twice)")
    }

    @Test(
        "regression: a replay whose partition moves for good to another member of its group ends with its own partitions, and names the one it left"
    )
    func partitionMovedAway() async throws {
        let (harness, options) = try await self.twoPartitions(60, prefix: "m")
        // Another member joins the replay's group after the third record (another operator's
        // replay under the same group, say) and stays: one of the two partitions is its own
        // from then on. The replay waited for that partition until it was interrupted. Sixty
        // records at 4/s outlast the join round (the replay learns of it at its next heartbeat,
        // and the mock coordinator holds the round ~5 s), so the partition moves mid-replay.
        let joining = self.member(harness, group: options.group)
        let dlq = harness.topics.deadLetters
        let progress = ProgressProbe()
        let replayEnded = OneShot<Void>()
        let memberLeftFirst = OneShot<Void>()
        let replaying = options
        let report = try await withThrowingTaskGroup(of: ReplayReport?.self) { group in
            group.addTask {
                defer { replayEnded.set(()) }
                return try await Replayer(options: replaying, ledger: InMemoryLedger(), logger: harnessLogger).run {
                    progress.set($0.replayed.count)
                }
            }
            group.addTask {
                while progress.value < 3 { try await Task.sleep(for: .milliseconds(20)) }
                let member = try KafkaConsumer(
                    configuration: joining, topics: [dlq], rebalanceListener: nil, logger: harnessLogger)
                try await withThrowingTaskGroup(of: Void.self) { running in
                    running.addTask { try await member.run() }
                    if await replayEnded.wait(timeout: .seconds(60)) == nil {
                        memberLeftFirst.set(())
                    }
                    member.close()
                    try await running.waitForAll()
                }
                return nil
            }
            var report: ReplayReport?
            while let next = try await group.next() { if let next { report = next } }
            return report!
        }
        #expect(memberLeftFirst.value == nil, "the replay ended while the other member held its partition")
        #expect(report.leftToOthers.count == 1, "\(report.summary)")
        #expect(report.summary.contains("left to another member"))
        let origins = try await self.replayedOrigins(harness)
        let kept = Int32(1) - (report.leftToOthers.first ?? 0)
        #expect(
            (0..<30).allSatisfy { origins.contains("\(kept)@\($0)") },
            "every record of the partition it kept is replayed: \(origins)")
        #expect(origins.count < 60 && origins.count == report.replayed.count, "\(origins)")
    }
}

/// The replayed count the progress callback last reported.
final class ProgressProbe: Sendable {
    private let count = Mutex(0)
    func set(_ value: Int) { self.count.withLock { $0 = value } }
    var value: Int { self.count.withLock { $0 } }
}

@Suite("Replay budget and retention", .timeLimit(.minutes(3)))
struct ReplayBudgetTests {
    @Test("regression: a replayed retries_exhausted command gets a fresh budget of attempts")
    func replayGetsAFreshBudget() async throws {
        let harness = try await WorkerHarness(partitions: 1)
        let provider = ScriptedProvider(.fastpod, script: ["stubborn": [.unknown]])
        var configuration = harness.configuration()
        configuration.retry.maxAttempts = 2
        let worker = CancelWorker(
            configuration: configuration, providers: [.fastpod: provider], ledger: InMemoryLedger(),
            logger: harnessLogger)
        try await harness.withWorkers([worker]) {
            try await harness.waitUntilAssigned([worker])
            try await harness.send([command(order: "stubborn")])
            let deadLetter = try #require(try await harness.deadLetters(atLeast: 1).first)
            #expect(provider.callCount("stubborn") == 2)
            // The operator replays it (what `cancel-worker replay` produces).
            let replay = ReplayDecision.replayMessage(
                of: DeadLetterRecord(deadLetter), topic: harness.topics.commands, partition: nil, replayID: "r1")
            _ = try await harness.producer.send(replay)
            let failed = try await harness.outcomes(atLeast: 2, timeout: .seconds(30))
            #expect(failed.map(\.status) == [.failed, .failed])
            #expect(provider.callCount("stubborn") == 4, "the replay made its own 2 attempts")
            #expect(failed.last?.uncertainAttempts == 4, "every call's result was unknown")
        }
    }

    /// Review finding: a dead letter whose value was shortened to be stored was replayed (and
    /// came straight back as an invalid command), and a replay carried an earlier console
    /// replay's operator and time next to its own replay id.
    @Test("regression: a shortened dead letter is not replayable; a replay drops an earlier replay's requester")
    func truncatedAndRequester() {
        let command = command(order: "cut")
        func letter(_ extra: [KafkaHeader]) -> DeadLetterRecord {
            DeadLetterRecord(
                KafkaConsumerMessage(
                    topic: "cancel.commands.dlq", partition: 0, offset: 3, key: Array("fastpod:acct".utf8),
                    value: Array(command.encoded().prefix(20)),
                    headers: [
                        KafkaHeader(name: WorkerHeaders.errorClass, string: "retries_exhausted"),
                        KafkaHeader(name: WorkerHeaders.idempotencyKey, string: command.idempotencyKey),
                    ] + extra))
        }
        let cut = letter([
            KafkaHeader(name: WorkerHeaders.valueTruncated, string: "true"),
            KafkaHeader(name: WorkerHeaders.valueOriginalBytes, string: "70000"),
        ])
        let decision = ReplayDecision.decide(cut, entry: nil, maxReplays: 3, force: true)
        #expect(decision.label == "not replayable", "\(decision)")
        #expect("\(decision)".contains("70000 bytes originally"), "\(decision)")
        let replayed = ReplayDecision.replayMessage(
            of: letter([
                KafkaHeader(name: ReplayDecision.requestedByHeader, string: "alice"),
                KafkaHeader(name: ReplayDecision.requestedAtHeader, string: "2026-11-29T03:00:00Z"),
            ]), topic: "cancel.commands", partition: 0, replayID: "r2")
        #expect(replayed.headers.string(ReplayDecision.requestedByHeader) == nil)
        #expect(replayed.headers.string(ReplayDecision.requestedAtHeader) == nil)
        #expect(replayed.headers.string(WorkerHeaders.replayID) == "r2")
    }

    /// The worker skips a delivery older than the key's latest dead letter (`entry.deadLetters >
    /// replay count`): replaying the earlier one sends a command the worker drops, and the run
    /// counted it replayed.
    @Test("review finding: a dead letter a later one of its key superseded is skipped, not counted replayed")
    func supersededDeadLetters() {
        func letter(replays: Int) -> DeadLetterRecord {
            DeadLetterRecord(
                KafkaConsumerMessage(
                    topic: "cancel.commands.dlq", partition: 0, offset: Int64(replays),
                    key: Array("fastpod:acct".utf8), value: command(order: "sup").encoded(),
                    headers: [
                        KafkaHeader(name: WorkerHeaders.errorClass, string: "retries_exhausted"),
                        KafkaHeader(name: WorkerHeaders.idempotencyKey, string: "key-sup"),
                        KafkaHeader(name: WorkerHeaders.replayCount, string: String(replays)),
                    ]))
        }
        // Dead-lettered twice: first as sent (replay count 0), then its replay (count 1).
        let entry = LedgerEntry(
            key: "key-sup", state: .sent, owner: nil, leaseUntil: nil, attempts: 4, deadLetters: 2, outcome: nil,
            createdAt: Date(), updatedAt: Date())
        let first = ReplayDecision.decide(letter(replays: 0), entry: entry, maxReplays: 3, force: false)
        #expect(first.label == "superseded by a later dead letter", "\(first)")
        #expect(ReplayDecision.decide(letter(replays: 0), entry: entry, maxReplays: 3, force: true) == first)
        #expect(ReplayDecision.decide(letter(replays: 1), entry: entry, maxReplays: 3, force: false) == .replay)
        var report = ReplayReport(replayID: "r", dryRun: true)
        report.skipped = [
            ReplayReport.Item(
                position: "0@0", key: "key-sup", provider: "fastpod", account: "acct", errorClass: "retries_exhausted",
                decision: first)
        ]
        #expect(report.summary.contains("superseded by a later    1"), "\(report.summary)")
        #expect(report.details.contains("skip: superseded by the key's dead letter 2"), "\(report.details)")
    }

    @Test("regression: a dead letter older than the ledger's retention is not replayed without --force")
    func oldDeadLettersAreRefused() {
        let command = command(order: "old")
        let message = KafkaConsumerMessage(
            topic: "cancel.commands.dlq", partition: 0, offset: 7, key: Array("fastpod:acct".utf8),
            value: command.encoded(),
            headers: [
                KafkaHeader(name: WorkerHeaders.errorClass, string: "retries_exhausted"),
                KafkaHeader(name: WorkerHeaders.idempotencyKey, string: command.idempotencyKey),
                KafkaHeader(
                    name: WorkerHeaders.deadLetteredAt,
                    string: String(Timestamp.milliseconds(Date().addingTimeInterval(-8 * 86_400)))),
            ]
        )
        let record = DeadLetterRecord(message)
        let retention: Duration = .seconds(7 * 86_400)
        #expect(
            ReplayDecision.decide(record, entry: nil, maxReplays: 3, force: false, retention: retention, now: Date())
                .label == "older than the ledger's retention")
        #expect(
            ReplayDecision.decide(record, entry: nil, maxReplays: 3, force: true, retention: retention, now: Date())
                == .replay)
        #expect(
            ReplayDecision.decide(
                record, entry: nil, maxReplays: 3, force: false, retention: .seconds(30 * 86_400), now: Date())
                == .replay)
    }
}
