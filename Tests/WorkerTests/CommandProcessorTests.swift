import CancelCore
import CancelWorkerTesting
import Foundation
import Kafka
import Logging
import Testing

@testable import Worker

/// The command pipeline without a broker: `CommandProcessor` with a recording producer, the
/// in-memory ledger and a scripted provider. Each row is one record and what the worker must
/// produce for it: the records it sends (outcome, retry, dead letter), the provider calls it
/// makes, and whether the record's offset may be committed.
@Suite("Command pipeline without a broker (recording producer, scripted provider)", .timeLimit(.minutes(1)))
struct CommandProcessorTests {
    /// A processor over a recording producer, with fast in-process retries.
    struct Pipeline {
        let producer = RecordingProducer()
        /// The ledger the processor writes to, recording its operations.
        let recording = RecordingLedger()
        var ledger: InMemoryLedger { self.recording.inner }
        let provider: ScriptedProvider
        let configuration: WorkerConfiguration
        let processor: CommandProcessor
        let scope: PartitionScope

        init(
            script: [String: [CancelClassification]] = [:], inProcessAttempts: Int = 3, maxAttempts: Int = 10,
            rateLimits: [ProviderID: RateLimit] = WorkerConfiguration(bootstrapServers: "unused:9092").rateLimits,
            clock: any WorkerClock = SystemClock(), connecting: OneShot<Void>? = nil
        ) {
            var configuration = WorkerConfiguration(bootstrapServers: "unused:9092")
            configuration.rateLimits = rateLimits
            configuration.workerID = "unit"
            configuration.retry.inProcessAttempts = inProcessAttempts
            configuration.retry.baseBackoff = .milliseconds(1)
            configuration.retry.maxAttempts = maxAttempts
            configuration.retry.tiers = [RetryTier("1s")!]
            self.configuration = configuration
            self.provider = ScriptedProvider(.fastpod, script: script, connecting: connecting)
            let logger = Logger(label: "unit") { _ in SwiftLogNoOpLogHandler() }
            let router = RecordRouter(producer: self.producer, configuration: configuration, logger: logger)
            self.processor = CommandProcessor(
                configuration: configuration, ledger: self.recording, providers: [.fastpod: self.provider],
                router: router, gate: ProviderGate(), keyLocks: KeyLocks(), metrics: WorkerMetrics(),
                published: PublishedMarks(
                    ledger: self.recording, clock: clock, metrics: WorkerMetrics(), logger: logger),
                decoder: CommandDecoder(maxRecordBytes: configuration.maxCommandBytes), logger: logger, clock: clock)
            self.scope = PartitionScope(
                partition: KafkaTopicPartition(topic: configuration.topics.commands, partition: 0), generation: 1,
                limits: configuration.rateLimits, clock: clock)
        }

        var topics: TopicNames { self.configuration.topics }

        /// A record of the commands topic on the partition its key belongs to.
        func record(_ value: [UInt8], key: String = "fastpod:acct", offset: Int64 = 0) -> KafkaConsumerMessage {
            let partition = KafkaPartitioner.partition(forKey: Array(key.utf8), partitionCount: 6)
            return KafkaConsumerMessage(
                topic: self.topics.commands, partition: partition, offset: offset, key: Array(key.utf8), value: value)
        }

        func process(_ message: KafkaConsumerMessage) async -> Bool {
            await self.processor.process(message, scope: self.scope)
        }

        /// The retry tiers' relay, as the worker makes it: a record it cannot move on is
        /// answered by this processor.
        func relay() -> RetryRelay {
            let logger = Logger(label: "unit") { _ in SwiftLogNoOpLogHandler() }
            return RetryRelay(
                configuration: self.configuration,
                router: RecordRouter(producer: self.producer, configuration: self.configuration, logger: logger),
                logger: logger, pause: { _ in }, resume: { _ in },
                answerRefused: self.processor.answerRefusedRetry)
        }

        var outcomes: [CancelOutcome] {
            self.producer.records(topic: self.topics.outcomes).compactMap { try? CancelOutcome.decode($0.value) }
        }

        var deadLetterClasses: [String] {
            self.producer.records(topic: self.topics.deadLetters).compactMap {
                $0.headers.string(WorkerHeaders.errorClass)
            }
        }

        var retries: [KafkaProducerMessage] {
            self.producer.records.filter { $0.topic.hasPrefix(self.topics.commands + ".retry") }
        }
    }

    struct Row: Sendable, CustomTestStringConvertible {
        let name: String
        let answers: [CancelClassification]
        let inProcessAttempts: Int
        let deadline: TimeInterval?
        /// The outcome published (nil: none).
        let status: OutcomeStatus?
        let deadLetter: String?
        let retryRecords: Int
        let calls: Int
        /// The ledger writes, in order (`RecordingLedger`).
        let ledger: [String]

        var testDescription: String { self.name }
    }

    static let rows: [Row] = [
        Row(
            name: "cancelled at once", answers: [.cancelled], inProcessAttempts: 3, deadline: nil, status: .cancelled,
            deadLetter: nil, retryRecords: 0, calls: 1, ledger: ["claim+sent", "complete"]),
        Row(
            name: "already cancelled is terminal", answers: [.alreadyCancelled], inProcessAttempts: 3, deadline: nil,
            status: .alreadyCancelled, deadLetter: nil, retryRecords: 0, calls: 1, ledger: ["claim+sent", "complete"]),
        Row(
            name: "not found is terminal", answers: [.notFound], inProcessAttempts: 3, deadline: nil,
            status: .notFound, deadLetter: nil, retryRecords: 0, calls: 1, ledger: ["claim+sent", "complete"]),
        Row(
            name: "unknown, then cancelled: retried in process", answers: [.unknown, .cancelled],
            inProcessAttempts: 3, deadline: nil, status: .cancelled, deadLetter: nil, retryRecords: 0, calls: 2,
            ledger: ["claim+sent", "mark_sent", "complete"]),
        Row(
            name: "unknown beyond the in-process attempts: handed to a retry tier, no outcome yet",
            answers: [.unknown], inProcessAttempts: 2, deadline: nil, status: nil, deadLetter: nil, retryRecords: 1,
            calls: 2, ledger: ["claim+sent", "mark_sent", "release"]),
        Row(
            name: "configuration: a dead letter with a failed outcome", answers: [.configuration],
            inProcessAttempts: 3, deadline: nil, status: .failed, deadLetter: "configuration", retryRecords: 0,
            calls: 1, ledger: ["claim+sent", "release"]),
        Row(
            name: "deadline already passed: expired without a call", answers: [.cancelled], inProcessAttempts: 3,
            deadline: -5, status: .expired, deadLetter: nil, retryRecords: 0, calls: 0, ledger: ["claim", "complete"]),
    ]

    @Test("each answer leads to the records the worker must produce", arguments: rows)
    func decisions(row: Row) async throws {
        let pipeline = Pipeline(script: ["7001": row.answers], inProcessAttempts: row.inProcessAttempts)
        let command = command(order: "7001", deadline: row.deadline.map { Date().addingTimeInterval($0) })
        let committable = await pipeline.process(pipeline.record(command.encoded()))
        #expect(committable, "every record it produced was acknowledged")
        #expect(pipeline.provider.callCount("7001") == row.calls)
        #expect(pipeline.outcomes.map(\.status) == (row.status.map { [$0] } ?? []))
        #expect(pipeline.outcomes.allSatisfy { $0.idempotencyKey == command.idempotencyKey })
        #expect(pipeline.deadLetterClasses == (row.deadLetter.map { [$0] } ?? []))
        #expect(pipeline.retries.count == row.retryRecords)
        #expect(
            pipeline.recording.operations.withLock { $0 } == row.ledger,
            "a new key whose call leaves at once is claimed and marked sent in one write")
    }

    @Test("the same command twice: one call, one outcome; the second finds the key done")
    func duplicate() async throws {
        let pipeline = Pipeline()
        let command = command(order: "7002")
        #expect(await pipeline.process(pipeline.record(command.encoded(), offset: 0)))
        #expect(await pipeline.process(pipeline.record(command.encoded(), offset: 1)))
        #expect(pipeline.provider.callCount("7002") == 1)
        #expect(pipeline.outcomes.map(\.status) == [.cancelled])
    }

    @Test("issue 14: only a new key whose call leaves at once is claimed and marked sent in one write")
    func claimAndSend() async throws {
        // The duplicate finds the key done: a plain claim, no second write.
        let plain = Pipeline()
        let first = command(order: "7101")
        #expect(await plain.process(plain.record(first.encoded(), offset: 0)))
        #expect(await plain.process(plain.record(first.encoded(), offset: 1)))
        #expect(plain.recording.operations.withLock { $0 } == ["claim+sent", "complete", "claim"])
        #expect(plain.outcomes.map(\.attempts) == [1])

        // A provider with a rate limit: the command may wait for its slot, so the key is marked
        // sent only when the slot is there.
        let paced = Pipeline(rateLimits: [.fastpod: RateLimit(requestsPerSecond: 10)])
        #expect(await paced.process(paced.record(command(order: "7102").encoded())))
        #expect(paced.recording.operations.withLock { $0 } == ["claim", "mark_sent", "complete"])
        #expect(paced.outcomes.map(\.attempts) == [1])

        // The account is paused (the provider asked it to slow down): the same.
        let paused = Pipeline()
        paused.scope.pacer.pause(.fastpod, account: "acct", until: .now + .milliseconds(50))
        #expect(await paused.process(paused.record(command(order: "7103").encoded())))
        #expect(paused.recording.operations.withLock { $0 } == ["claim", "mark_sent", "complete"])

        // A key another worker held and left sent (it died mid-call): taken over with a plain
        // claim, its earlier call counted and reported uncertain.
        let takeover = Pipeline()
        let orphan = command(order: "7104")
        let past = Date().addingTimeInterval(-60)
        _ = try await takeover.ledger.claim(
            key: orphan.idempotencyKey, owner: "dead", fingerprint: OutcomeID.fingerprint(of: orphan.identity),
            lease: .seconds(1), now: past)
        _ = try await takeover.ledger.markSent(
            key: orphan.idempotencyKey, owner: "dead", fence: 1, lease: .seconds(1), now: past)
        #expect(await takeover.process(takeover.record(orphan.encoded())))
        #expect(takeover.recording.operations.withLock { $0 } == ["claim", "mark_sent", "complete"])
        #expect(takeover.outcomes.map(\.attempts) == [2])
        #expect(takeover.outcomes.map(\.uncertainAttempts) == [1])
    }

    /// Regression (chaos under load): offsets not committed before partitions moved brought a
    /// dead-lettered command back again and again; each delivery called the provider once more
    /// beyond the attempt budget and dead-lettered it again ("gave up after 10, 11, 12, 13
    /// attempts"; 105 dead letters for 5 commands).
    @Test("regression: a dead-lettered command delivered again is not called or dead-lettered again; its replay is")
    func deadLetteredRedelivery() async throws {
        let pipeline = Pipeline(script: ["7005": [.configuration, .cancelled]])
        let command = command(order: "7005")
        let original = pipeline.record(command.encoded(), offset: 0)
        #expect(await pipeline.process(original))
        #expect(pipeline.deadLetterClasses == ["configuration"])
        #expect(pipeline.provider.callCount("7005") == 1)

        // The same record again (its offset was never committed).
        #expect(await pipeline.process(original))
        #expect(pipeline.provider.callCount("7005") == 1, "no second call")
        #expect(pipeline.deadLetterClasses == ["configuration"], "no second dead letter")

        // The operator replays the dead letter: that delivery is processed.
        let letter = try #require(pipeline.producer.records(topic: pipeline.topics.deadLetters).first)
        var replayed = pipeline.record(command.encoded(), offset: 1)
        replayed.headers = letter.headers.filter { $0.name != WorkerHeaders.errorClass }
        replayed.headers.set(WorkerHeaders.replayCount, "1")
        replayed.headers.removeAll { $0.name == WorkerHeaders.attempts }
        #expect(await pipeline.process(replayed))
        #expect(pipeline.provider.callCount("7005") == 2)
        #expect(pipeline.outcomes.map(\.status).last == .cancelled)
        // And the replayed delivery, delivered twice, is called once.
        #expect(await pipeline.process(replayed))
        #expect(pipeline.provider.callCount("7005") == 2)
    }

    @Test("an undecodable record is dead-lettered as invalid_command: no call, no outcome")
    func undecodable() async throws {
        let pipeline = Pipeline()
        #expect(await pipeline.process(pipeline.record(Array("{not json".utf8))))
        #expect(pipeline.provider.totalCalls == 0)
        #expect(pipeline.outcomes.isEmpty)
        #expect(pipeline.deadLetterClasses == ["invalid_command"])
    }

    @Test("a record on the wrong partition for its key is moved there and not processed here")
    func misplaced() async throws {
        let pipeline = Pipeline()
        let command = command(order: "7003")
        let right = KafkaPartitioner.partition(forKey: Array("fastpod:acct".utf8), partitionCount: 6)
        let wrong = KafkaConsumerMessage(
            topic: pipeline.topics.commands, partition: (right + 1) % 6, offset: 0, key: Array("fastpod:acct".utf8),
            value: command.encoded())
        #expect(await pipeline.process(wrong))
        #expect(pipeline.provider.totalCalls == 0)
        let moved = pipeline.producer.records(topic: pipeline.topics.commands)
        #expect(moved.map(\.partition) == [right])
        #expect(moved.first?.value == command.encoded())
    }

    @Test("an outcome the producer refuses for a while is sent again until acknowledged")
    func transientProduceFailure() async throws {
        let pipeline = Pipeline()
        pipeline.producer.refuseNext(
            Array(
                repeating: KafkaError(
                    code: KafkaError.Code.messageTimedOut, name: "_MSG_TIMED_OUT", message: "broker down",
                    isRetriable: true),
                count: 3))
        #expect(await pipeline.process(pipeline.record(command(order: "7004").encoded())))
        #expect(pipeline.provider.callCount("7004") == 1)
        #expect(pipeline.outcomes.map(\.status) == [.cancelled])
    }

    // MARK: On a manual clock (no real sleep)

    @Test("a deadline reached while the command waits for its rate slot: expired, no call")
    func deadlineWhileWaitingForSlot() async throws {
        let clock = ManualClock()
        // One call a second: the account's first slot is one interval after the assignment.
        let pipeline = Pipeline(rateLimits: [.fastpod: RateLimit(requestsPerSecond: 1)], clock: clock)
        let command = command(order: "7101", deadline: clock.date.addingTimeInterval(1))
        let processing = Task { await pipeline.process(pipeline.record(command.encoded())) }
        await clock.waitForSleepers()
        #expect(pipeline.outcomes.isEmpty, "waiting for its slot")
        clock.advance(by: .seconds(1))
        #expect(await processing.value)
        #expect(pipeline.provider.callCount("7101") == 0)
        #expect(pipeline.outcomes.map(\.status) == [.expired])
        #expect(
            pipeline.outcomes.first?.reason == "the deadline passed before the call could be sent; no call was made")
    }

    @Test("review finding: a partition revoked while the guard renews the claim gets no call")
    func revokedDuringRenewal() async throws {
        let clock = ManualClock()
        // The call's connection takes 1.5 s, so its guard renews the claim marked sent before it.
        let connecting = OneShot<Void>()
        let pipeline = Pipeline(clock: clock, connecting: connecting)
        pipeline.recording.renewDelay.withLock { $0 = .milliseconds(300) }
        let processing = Task { await pipeline.process(pipeline.record(command(order: "7105").encoded())) }
        #expect(try await eventually { pipeline.recording.operations.withLock { $0.contains("claim+sent") } })
        clock.advance(by: .milliseconds(1_500))
        connecting.set(())
        #expect(try await eventually { pipeline.recording.operations.withLock { $0.contains("renew") } })
        pipeline.scope.revoke()
        #expect(await processing.value == false, "a revoked partition's command is not done")
        #expect(pipeline.provider.callCount("7105") == 0, "called after its partition was revoked")
        #expect(pipeline.outcomes.isEmpty)
    }

    /// Review finding (the worker's flow control): a copy of a command waiting for its key, in a
    /// partition revoked meanwhile, claimed the key and marked it sent before the send-time guard
    /// stopped it: the next owner counted a call in doubt that was never made.
    @Test("review finding: a copy that gets its key after its partition was revoked leaves the ledger alone")
    func revokedWhileWaitingForTheKey() async throws {
        let connecting = OneShot<Void>()
        let pipeline = Pipeline(connecting: connecting)
        let first = Task { await pipeline.process(pipeline.record(command(order: "7109").encoded())) }
        #expect(try await eventually { pipeline.recording.operations.withLock { $0.contains("claim+sent") } })
        let copy = Task { await pipeline.process(pipeline.record(command(order: "7109").encoded(), offset: 1)) }
        try await Task.sleep(for: .milliseconds(100))  // the copy waits for the key
        pipeline.scope.revoke()
        connecting.set(())
        let (firstDone, copyDone) = (await first.value, await copy.value)
        #expect(!firstDone && !copyDone, "revoked: neither is done")
        #expect(pipeline.provider.callCount("7109") == 0)
        let operations = pipeline.recording.operations.withLock { $0 }
        #expect(operations.filter { $0.hasPrefix("claim") || $0 == "mark_sent" } == ["claim+sent"], "\(operations)")
    }

    /// Left alone last sitting, now mended: a call marked sent (by its claim or `markSent`) and
    /// then stopped by the send-time guard at a revoke left the ledger counting it. The next owner
    /// read it as a call in doubt and said so on the outcome ("the order may have been cancelled
    /// by our own earlier call") although no byte had left.
    @Test("a call the guard stopped at a revoke is given back: the next owner sees no call in doubt")
    func guardStoppedCallIsNotCounted() async throws {
        let connecting = OneShot<Void>()
        let pipeline = Pipeline(script: ["7111": [.notFound]], connecting: connecting)
        let message = pipeline.record(command(order: "7111").encoded())
        let first = Task { await pipeline.process(message) }
        #expect(try await eventually { pipeline.recording.operations.withLock { $0.contains("claim+sent") } })
        pipeline.scope.revoke()
        connecting.set(())
        #expect(await first.value == false, "revoked: not done")
        #expect(pipeline.provider.callCount("7111") == 0)
        let key = command(order: "7111").idempotencyKey
        let given = try #require(await pipeline.ledger.entry(for: key))
        #expect(given.attempts == 0 && given.state == .claimed && given.owner == nil, "\(given)")
        // The partition's next owner.
        let next = PartitionScope(
            partition: pipeline.scope.partition, generation: 2, limits: pipeline.configuration.rateLimits)
        #expect(await pipeline.processor.process(message, scope: next))
        #expect(pipeline.provider.callCount("7111") == 1)
        let outcome = try #require(pipeline.outcomes.first)
        #expect(outcome.status == .notFound && outcome.attempts == 1, "\(outcome)")
        #expect(!outcome.reason.contains("earlier call"), "a call in doubt that never left: \(outcome.reason)")
    }

    /// Review finding (SQLite ledger): the guard renews a lease older than a second before the
    /// call; it took the lease's age from when the claim *returned*. A claim answered 2 s late
    /// (behind a saturated writer) sent on a lease 2 s spent, without a renewal.
    @Test("review finding: a claim answered 2 s after it was written is renewed before the call")
    func lateClaimAnswerIsRenewed() async throws {
        let clock = ManualClock()
        let pipeline = Pipeline(clock: clock)
        pipeline.recording.afterClaim.withLock { $0 = { clock.advance(by: .seconds(2)) } }
        #expect(await pipeline.process(pipeline.record(command(order: "7107").encoded())))
        #expect(pipeline.provider.callCount("7107") == 1)
        let operations = pipeline.recording.operations.withLock { $0 }
        #expect(operations.prefix(2) == ["claim+sent", "renew"], "\(operations)")
    }

    /// The architecture's promise: "a command whose own next record is refused … is answered
    /// then". The relay turned the refusal into an undeliverable dead letter and finished the
    /// tier record: the command never came back, and nobody answered it.
    @Test(
        "review finding: a retry refused for good on its way back to the commands topic is answered failed, its key dead-lettered"
    )
    func retryRefusedOnItsWayBack() async throws {
        let pipeline = Pipeline(script: ["7106": [.unknown]], inProcessAttempts: 1)
        #expect(await pipeline.process(pipeline.record(command(order: "7106").encoded())))
        let parked = try #require(pipeline.retries.first, "parked in its tier")
        var due = parked.headers
        due.set(WorkerHeaders.retryDueAt, String(Timestamp.milliseconds(Date())))
        let tier = KafkaTopicPartition(topic: parked.topic, partition: 0)
        let message = KafkaConsumerMessage(
            topic: tier.topic, partition: 0, offset: 0, key: parked.key, value: parked.value, headers: due)
        pipeline.producer.refuseNext([KafkaError(code: 10, name: "MSG_SIZE_TOO_LARGE", message: "too large")])
        let scope = PartitionScope(partition: tier, generation: 1, limits: [:])
        #expect(await pipeline.relay().process(message, scope: scope))
        #expect(pipeline.deadLetterClasses == ["undeliverable"])
        let outcome = try #require(pipeline.outcomes.first, "no outcome: the command was lost")
        #expect(outcome.status == .failed && outcome.errorClass == "undeliverable", "\(outcome.reason)")
        #expect(outcome.attempts == 1 && outcome.reason.contains("too large"), "\(outcome)")
        let entry = try #require(await pipeline.ledger.entry(for: outcome.idempotencyKey))
        #expect(entry.deadLetters == 1 && entry.owner == nil, "released as dead-lettered, replayable: \(entry)")
    }

    /// Review finding (the worker's flow control): held in process until due, the command kept
    /// an in-flight permit and its partition's committed offset for as long (up to the 2 days a
    /// due time may be ahead). It is parked instead, its due time kept; a short one waits here.
    @Test("review finding: a retry due in 10 minutes is parked until then, not held; one due in 3 s waits here")
    func retryDueLater() async throws {
        let clock = ManualClock()
        let pipeline = Pipeline(clock: clock)
        var record = pipeline.record(command(order: "7102").encoded())
        let due = String(Timestamp.milliseconds(clock.date.addingTimeInterval(600)))
        record.headers.set(WorkerHeaders.retryDueAt, due)
        #expect(await pipeline.process(record), "finished: its offset may be committed")
        #expect(pipeline.provider.callCount("7102") == 0)
        #expect(pipeline.outcomes.isEmpty)
        let parked = try #require(pipeline.retries.first, "parked")
        #expect(parked.headers.string(WorkerHeaders.retryDueAt) == due, "its due time kept")
        #expect(parked.headers.string(WorkerHeaders.attempts) == "0", "no attempt used up")

        var soon = pipeline.record(command(order: "7108").encoded(), offset: 1)
        soon.headers.set(WorkerHeaders.retryDueAt, String(Timestamp.milliseconds(clock.date.addingTimeInterval(3))))
        let processing = Task { await pipeline.process(soon) }
        await clock.waitForSleepers()
        #expect(pipeline.provider.callCount("7108") == 0)
        clock.advance(by: .seconds(3))
        #expect(await processing.value)
        #expect(pipeline.provider.callCount("7108") == 1)
        #expect(pipeline.outcomes.map(\.status) == [.cancelled])
    }

    @Test("the in-process backoff between two attempts waits on the clock (Retry-After 2 s)")
    func backoffBetweenAttempts() async throws {
        let clock = ManualClock()
        let pipeline = Pipeline(
            script: ["7103": [.retryLater(after: .seconds(2), scope: .order), .cancelled]], clock: clock)
        let processing = Task { await pipeline.process(pipeline.record(command(order: "7103").encoded())) }
        await clock.waitForSleepers()
        #expect(pipeline.provider.callCount("7103") == 1)
        clock.advance(by: .seconds(2) - .microseconds(1))
        #expect(clock.sleepers == 1, "the backoff is not over 1 µs before its end")
        #expect(pipeline.provider.callCount("7103") == 1)
        clock.advance(by: .microseconds(1))
        #expect(await processing.value)
        #expect(pipeline.provider.callCount("7103") == 2)
        #expect(pipeline.outcomes.map(\.status) == [.cancelled])
        #expect(pipeline.outcomes.first?.attempts == 2)
    }
}
