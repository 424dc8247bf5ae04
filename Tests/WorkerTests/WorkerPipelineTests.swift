import CancelCore
import CancelWorkerTesting
import Foundation
import Kafka
import OperatorTools
import Testing

@testable import Worker

@Suite("Worker pipeline on the mock cluster (scripted provider)", .timeLimit(.minutes(3)))
struct WorkerPipelineTests {
    @Test("duplicates, poison, invalid, unknown account, deadline, transient failures, exhaustion")
    func routing() async throws {
        let harness = try await WorkerHarness(partitions: 2)
        let provider = ScriptedProvider(
            .fastpod,
            script: [
                "flaky": [.unknown, .retryLater(after: .milliseconds(50), scope: .account), .cancelled],
                "broken": [.unknown],
                "badkey": [.configuration],
                "gone": [.notFound],
            ])
        var configuration = harness.configuration()
        configuration.retry.maxAttempts = 4
        let worker = CancelWorker(
            configuration: configuration, providers: [.fastpod: provider], ledger: InMemoryLedger(),
            logger: harnessLogger)

        try await harness.withWorkers([worker]) {
            try await harness.waitUntilAssigned([worker])
            let duplicate = command(order: "dup-1", key: "same-key")
            try await harness.send(Array(repeating: duplicate, count: 5))
            try await harness.sendRaw("this is not json", key: "fastpod:acct")
            try await harness.sendRaw(
                #"{"command_id":"c","idempotency_key":"bad-provider","provider":"paypal","account":"acct","order":{},"requested_at":"2026-01-01T00:00:00Z"}"#,
                key: "paypal:acct")
            try await harness.send([
                command(account: "stranger", order: "o-stranger"),
                command(order: "late", deadline: Date().addingTimeInterval(-1)),
                command(order: "flaky"),
                command(order: "broken"),
                command(order: "badkey"),
                command(order: "gone"),
            ])
            let outcomes = try await harness.outcomes(atLeast: 8)
            let byKey = Dictionary(grouping: outcomes, by: \.idempotencyKey)
            #expect(byKey["same-key"]?.map(\.status) == [.cancelled], "five copies, one outcome")
            #expect(provider.callCount("dup-1") == 1, "five copies, one call")
            #expect(byKey["bad-provider"]?.map(\.status) == [.rejected])
            #expect(byKey["fastpod-o-stranger"]?.first?.reason.contains("no credentials") == true)
            #expect(
                byKey["fastpod-o-stranger"]?.first?.errorClass == "configuration",
                "a configuration dead letter, replayable")
            #expect(byKey["fastpod-late"]?.map(\.status) == [.expired])
            #expect(provider.callCount("late") == 0, "no call after the deadline")
            #expect(byKey["fastpod-flaky"]?.map(\.status) == [.cancelled])
            #expect(byKey["fastpod-flaky"]?.first?.attempts == 3)
            #expect(byKey["fastpod-gone"]?.map(\.status) == [.notFound])
            #expect(byKey["fastpod-badkey"]?.map(\.status) == [.failed])
            #expect(byKey["fastpod-badkey"]?.first?.errorClass == "configuration")
            #expect(byKey["fastpod-broken"]?.map(\.status) == [.failed])
            #expect(byKey["fastpod-broken"]?.first?.errorClass == "retries_exhausted")
            #expect(provider.callCount("broken") == 4, "maxAttempts calls, across in-process retries and tiers")

            let deadLetters = try await harness.deadLetters(atLeast: 4)
            let classes = deadLetters.map { $0.headers.string(WorkerHeaders.errorClass) ?? "-" }.sorted()
            #expect(classes == ["configuration", "configuration", "invalid_command", "retries_exhausted"])
            let poison = try #require(
                deadLetters.first { $0.headers.string(WorkerHeaders.errorClass) == "invalid_command" })
            #expect(String(decoding: poison.value, as: UTF8.self) == "this is not json", "the original bytes are kept")
            #expect(poison.headers.string(WorkerHeaders.errorMessage) == "not a JSON object")
            #expect(poison.headers.string(WorkerHeaders.originTopic) == harness.topics.commands)
            let exhausted = try #require(
                deadLetters.first { $0.headers.string(WorkerHeaders.errorClass) == "retries_exhausted" })
            #expect(exhausted.headers.string(WorkerHeaders.attempts) == "4")
            #expect(exhausted.headers.string(WorkerHeaders.idempotencyKey) == "fastpod-broken")
            #expect(exhausted.headers.string(WorkerHeaders.retryRound) != nil, "it went through a retry tier")
        }
        let all = try await harness.all(topic: harness.topics.outcomes)
        #expect(all.count == 8, "nothing more was published")
    }
}

@Suite("Worker answers that need care (scripted provider)", .timeLimit(.minutes(3)))
struct WorkerCarefulAnswerTests {
    @Test("a not_found after a call whose result was unknown says so: the order may be cancelled by our own call")
    func notFoundAfterUnknownIsMarked() async throws {
        let harness = try await WorkerHarness(partitions: 1)
        let provider = ScriptedProvider(
            .futures,
            script: [
                "33308749002645001": [.unknown, .notFound],
                "33308749002645002": [.notFound],
            ])
        let worker = CancelWorker(
            configuration: harness.configuration(), providers: [.futures: provider], ledger: InMemoryLedger(),
            logger: harnessLogger)
        try await harness.withWorkers([worker]) {
            try await harness.waitUntilAssigned([worker])
            try await harness.send([
                command(.futures, order: "33308749002645001"), command(.futures, order: "33308749002645002"),
            ])
            let outcomes = Dictionary(grouping: try await harness.outcomes(atLeast: 2), by: \.idempotencyKey)
            let lost = try #require(outcomes["futures-33308749002645001"]?.first)
            #expect(lost.status == .notFound)
            #expect(lost.uncertainAttempts == 1)
            #expect(lost.reason.contains("may have been cancelled by our own earlier call"), "\(lost.reason)")
            let plain = try #require(outcomes["futures-33308749002645002"]?.first)
            #expect(plain.status == .notFound)
            #expect(plain.uncertainAttempts == nil)
            #expect(!plain.reason.contains("earlier call"))
        }
    }

    @Test(
        "an order the provider takes only later waits alone, without using an attempt; the account's other orders go on"
    )
    func orderWaitsAlone() async throws {
        let harness = try await WorkerHarness(partitions: 1)
        let provider = ScriptedProvider(.feee)
        var configuration = harness.configuration()
        configuration.retry.maxInProcessBackoff = .seconds(4)  // young-long (6 s) goes through a retry tier
        let worker = CancelWorker(
            configuration: configuration, providers: [.feee: provider], ledger: InMemoryLedger(), logger: harnessLogger)
        try await harness.withWorkers([worker]) {
            try await harness.waitUntilAssigned([worker])
            let sent = ContinuousClock.now
            let now = Date()
            provider.dueTimes.withLock {
                $0 = ["young-short": now.addingTimeInterval(3), "young-long": now.addingTimeInterval(6)]
            }
            try await harness.send([
                command(.feee, order: "young-long"), command(.feee, order: "young-short"), command(.feee, order: "old"),
            ])
            let outcomes = Dictionary(
                grouping: try await harness.outcomes(atLeast: 3, timeout: .seconds(30)), by: \.idempotencyKey)
            for key in ["feee-young-long", "feee-young-short", "feee-old"] {
                #expect(outcomes[key]?.map(\.status) == [.cancelled], "\(key)")
                #expect(outcomes[key]?.first?.attempts == 1, "\(key): one call, the wait used no attempt")
            }
            let elapsed = { (order: String) in (provider.calledAt(order).first ?? sent) - sent }
            // Had "old" waited behind the account's waiting orders, its call would come after
            // theirs: an order, not a duration, so a loaded machine cannot fake or hide it.
            #expect(
                provider.callCount("old") == 1 && elapsed("old") < elapsed("young-short"),
                "the account's other order did not wait: \(elapsed("old")), young-short \(elapsed("young-short"))")
            #expect(
                provider.callCount("young-short") == 1 && elapsed("young-short") >= .milliseconds(2_900),
                "\(elapsed("young-short"))")
            #expect(
                provider.callCount("young-long") == 1 && elapsed("young-long") >= .milliseconds(5_900),
                "\(elapsed("young-long"))")
        }
    }

    @Test("an order due only after its deadline expires without a call")
    func dueAfterDeadlineExpires() async throws {
        let harness = try await WorkerHarness(partitions: 1)
        let provider = ScriptedProvider(.feee, dueTimes: ["too-late": Date().addingTimeInterval(60)])
        let worker = CancelWorker(
            configuration: harness.configuration(), providers: [.feee: provider], ledger: InMemoryLedger(),
            logger: harnessLogger)
        try await harness.withWorkers([worker]) {
            try await harness.waitUntilAssigned([worker])
            try await harness.send([command(.feee, order: "too-late", deadline: Date().addingTimeInterval(20))])
            let outcome = try #require(try await harness.outcomes(atLeast: 1).first)
            #expect(outcome.status == .expired)
            #expect(provider.callCount("too-late") == 0)
        }
    }
}

@Suite("Retry tiers never hold one record up behind another (scripted provider)", .timeLimit(.minutes(3)))
struct RetryTierHeadOfLineTests {
    @Test("regression: a record due far beyond its tier's delay does not stall the tier for the records behind it")
    func farFutureRecordDoesNotStallTier() async throws {
        let harness = try await WorkerHarness(partitions: 1)  // tiers 1s and 2s
        let provider = ScriptedProvider(
            .fastpod,
            script: [
                // Asked to wait 12 s: longer than every tier.
                "far": [.retryLater(after: .seconds(12), scope: .order), .cancelled],
                // Three quick failures per delivery: through the 1 s tier, then into the 2 s tier.
                "quick": [.unknown, .unknown, .unknown, .unknown, .unknown, .unknown, .cancelled],
            ])
        var configuration = harness.configuration()
        configuration.retry.maxInProcessBackoff = .milliseconds(500)
        let worker = CancelWorker(
            configuration: configuration, providers: [.fastpod: provider], ledger: InMemoryLedger(),
            logger: harnessLogger)
        try await harness.withWorkers([worker]) {
            try await harness.waitUntilAssigned([worker])
            let sent = ContinuousClock.now
            try await harness.send([command(order: "far")])
            try await Task.sleep(for: .milliseconds(500))
            try await harness.send([command(order: "quick")])
            let quick = try await harness.outcomes(atLeast: 1, timeout: .seconds(30)).first {
                $0.idempotencyKey == "fastpod-quick"
            }
            let quickDoneAt = ContinuousClock.now
            #expect(quick?.status == .cancelled)
            let all = try await harness.outcomes(atLeast: 2, timeout: .seconds(30))
            let far = all.first { $0.idempotencyKey == "fastpod-far" }
            #expect(far?.status == .cancelled)
            let farCalls = provider.calledAt("far")
            // Stalled behind far in the 2 s tier, quick would leave it only once far is due (12 s)
            // and finish after far's second call: an order, not a duration (~6.5 s nominal), so
            // a loaded machine cannot fake or hide it.
            #expect(
                farCalls.count == 2 && quickDoneAt < farCalls[1],
                "quick waited behind far in the 2 s tier: done after \(quickDoneAt - sent), far's retry at \(farCalls.map { $0 - sent })"
            )
            #expect(
                farCalls.count == 2 && farCalls[1] - farCalls[0] >= .seconds(11),
                "far waited what it was asked: \(farCalls)")
        }
    }
}

@Suite("One idempotency key, one command (scripted provider)", .timeLimit(.minutes(3)))
struct IdempotencyKeyReuseTests {
    @Test("regression: a different command under a used key is rejected as a reuse, and the first one's outcome stands")
    func keyReusedForAnotherOrder() async throws {
        let harness = try await WorkerHarness(partitions: 1)
        let provider = ScriptedProvider(.fastpod)
        try await harness.withScriptedWorker(provider) { _ in
            try await harness.send([command(order: "first", key: "shared-key")])
            _ = try await harness.outcomes(atLeast: 1)
            try await harness.send([command(order: "second", key: "shared-key")])
            let outcomes = try await harness.outcomes(atLeast: 2)
            let statuses = outcomes.map(\.status)
            #expect(statuses == [.cancelled, .rejected], "\(statuses)")
            let reuse = try #require(outcomes.last)
            #expect(reuse.reason.hasPrefix("idempotency_key_reused"), "\(reuse.reason)")
            #expect(reuse.outcomeID != outcomes[0].outcomeID, "the reuse has its own outcome id")
            #expect(reuse.order?["id"] == .string("second"))
            #expect(provider.callCount("first") == 1 && provider.callCount("second") == 0)
        }
        let all = try await harness.all(topic: harness.topics.outcomes)
        #expect(all.count == 2)
    }

    @Test("regression: an invalid first version does not use up the key; the corrected resend is cancelled")
    func invalidDoesNotBurnTheKey() async throws {
        let harness = try await WorkerHarness(partitions: 1)
        let provider = ScriptedProvider(.fastpod)
        let worker = CancelWorker(
            configuration: harness.configuration(), providers: [.fastpod: provider], ledger: InMemoryLedger(),
            logger: harnessLogger)
        try await harness.withWorkers([worker]) {
            try await harness.waitUntilAssigned([worker])
            // The order id is missing: invalid.
            try await harness.sendRaw(
                #"{"command_id":"c1","idempotency_key":"fix-me","provider":"fastpod","account":"acct","order":{},"requested_at":"2026-01-01T00:00:00Z"}"#,
                key: "fastpod:acct")
            let first = try #require(try await harness.outcomes(atLeast: 1).first)
            #expect(first.status == .rejected)
            try await harness.send([command(order: "fixed", key: "fix-me")])
            let outcomes = try await harness.outcomes(atLeast: 2)
            #expect(outcomes.map(\.status) == [.rejected, .cancelled], "\(outcomes.map(\.status))")
            #expect(outcomes[0].outcomeID != outcomes[1].outcomeID)
            #expect(provider.callCount("fixed") == 1)
        }
    }

    @Test("regression: an unknown account is a configuration dead letter, replayable, not a terminal refusal")
    func unknownAccountIsConfiguration() async throws {
        let harness = try await WorkerHarness(partitions: 1)
        let provider = ScriptedProvider(.fastpod)
        let worker = CancelWorker(
            configuration: harness.configuration(), providers: [.fastpod: provider], ledger: InMemoryLedger(),
            logger: harnessLogger)
        try await harness.withWorkers([worker]) {
            try await harness.waitUntilAssigned([worker])
            try await harness.send([command(account: "stranger", order: "o-stranger")])
            let outcome = try #require(try await harness.outcomes(atLeast: 1).first)
            #expect(
                outcome.status == .failed && outcome.errorClass == "configuration",
                "\(outcome.status) \(outcome.reason)")
            let deadLetter = try #require(try await harness.deadLetters(atLeast: 1).first)
            #expect(deadLetter.headers.string(WorkerHeaders.errorClass) == "configuration")
        }
    }
}

@Suite("Mis-keyed producers (scripted provider)", .timeLimit(.minutes(3)))
struct MisplacedRecordTests {
    @Test(
        "regression: a record keyed wrongly, or on the wrong partition for its key, moves to its user's partition before it is processed"
    )
    func misplacedRecordsMove() async throws {
        let harness = try await WorkerHarness(partitions: 4)
        let provider = ScriptedProvider(.fastpod)
        let worker = CancelWorker(
            configuration: harness.configuration(), providers: [.fastpod: provider], ledger: InMemoryLedger(),
            logger: harnessLogger)
        let right = KafkaPartitioner.partition(forKey: Array("fastpod:acct".utf8), partitionCount: 4)
        try await harness.withWorkers([worker]) {
            try await harness.waitUntilAssigned([worker])
            let wrongKey = command(order: "wrong-key")
            _ = try await harness.producer.send(
                KafkaProducerMessage(topic: harness.topics.commands, key: Array("acct".utf8), value: wrongKey.encoded())
            )
            let wrongPartition = command(order: "wrong-partition")
            _ = try await harness.producer.send(
                KafkaProducerMessage(
                    topic: harness.topics.commands, partition: (right + 1) % 4, key: Array("fastpod:acct".utf8),
                    value: wrongPartition.encoded()
                ))
            let outcomes = try await harness.outcomes(atLeast: 2)
            #expect(Set(outcomes.map(\.status)) == [.cancelled])
            #expect(provider.callCount("wrong-key") == 1 && provider.callCount("wrong-partition") == 1)
        }
        let commands = try await TopicSnapshot(
            options: KafkaClientOptions(bootstrapServers: harness.cluster.bootstrapServers),
            topic: harness.topics.commands, logger: harnessLogger
        ).read()
        let moved = commands.filter { $0.headers.string(WorkerHeaders.reroutedFrom) != nil }
        #expect(moved.count == 2, "both records moved: \(moved.map(\.partition))")
        #expect(moved.allSatisfy { $0.partition == right && $0.key == Array("fastpod:acct".utf8) })
    }
}

@Suite("Command lanes in the worker (scripted provider)", .timeLimit(.minutes(3)))
struct WorkerLanesTests {
    /// Issue 14: commands beyond a provider's lanes (twice its connections, at least 16) wait as
    /// data, not as tasks; they still all get their outcome, and a slow provider's lanes do not
    /// hold up another provider.
    @Test("a provider's commands beyond its lanes wait as data; all end; another provider is not held up")
    func lanesBoundTheCommandsAtOnce() async throws {
        let harness = try await WorkerHarness(partitions: 2)
        let hold = OneShot<Void>()
        let slow = ScriptedProvider(.fastpod, concurrentCalls: 4, hold: hold)
        let other = ScriptedProvider(.feee)
        let worker = CancelWorker(
            configuration: harness.configuration(), providers: [.fastpod: slow, .feee: other],
            ledger: InMemoryLedger(), logger: harnessLogger)
        try await harness.withWorkers([worker]) {
            try await harness.waitUntilAssigned([worker])
            try await harness.send((0..<40).map { command(order: "held-\($0)") })
            // 16 lanes (2 × 4, at least 16) hold the provider's calls; 24 commands wait queued.
            #expect(
                try await eventually {
                    worker.status.inFlight == 40 && worker.status.queued == 24
                        && slow.callsNow.load(ordering: .relaxed) == 16
                })
            try await Task.sleep(for: .milliseconds(200))
            #expect(slow.callsNow.load(ordering: .relaxed) == 16 && worker.status.queued == 24, "and no more")
            try await harness.send([command(.feee, order: "meanwhile")])
            let first = try await harness.outcomes(atLeast: 1)
            #expect(first.map(\.idempotencyKey) == ["feee-meanwhile"])
            hold.set(())
            let outcomes = try await harness.outcomes(atLeast: 41)
            #expect(outcomes.count == 41 && Set(outcomes.map(\.status)) == [.cancelled])
            #expect(slow.mostCallsAtOnce.load(ordering: .relaxed) == 16)
            #expect(try await eventually { worker.status.inFlight == 0 && worker.status.queued == 0 })
            // A command whose key is free takes it without stepping aside: stepping aside starts
            // or wakes another lane, so doing it for every command churned a task per command.
            let started = worker.lanesBox.withLock { $0?.lanesStarted } ?? 0
            #expect(started <= 17, "16 lanes for FastPOD and one for feee.io, not one per command: \(started)")
        }
    }
}
