import CancelCore
import Foundation
import Testing

/// `cancel-worker cancel … --wait`: one cancel through CancelClient, its outcome printed.
@Suite("cancel --wait: a cancel and its outcome from the command line", .serialized, .timeLimit(.minutes(3)))
struct CancelOrderCommandTests {
    @Test("no worker yet: exit 75, the cancel may still complete; with a worker: the outcome, exit 0")
    func waitForTheOutcome() async throws {
        try await ProcessFleet.with { fleet in
            let order = ["--provider", "fastpod", "--account", "demo-1", "--order-id", "CLI-1"]
            let brokers = ["--brokers", fleet.cluster.bootstrapServers]
            let early = try await runCancelWorker(["cancel", "--wait", "--timeout", "2s"] + order + brokers)
            #expect(early.status == 75, "\(early.status) \(early.errors)")
            #expect(early.errors.contains("no outcome for fastpod-CLI-1 within 2s; the cancel may still complete"))
            #expect(early.output.isEmpty)

            let worker = try ChildProcess(fleet.arguments(workerID: "cli-worker", ledgerURL: "memory:"))
            let waited = try await runCancelWorker(["cancel", "--wait", "--timeout", "60s"] + order + brokers)
            _ = try await worker.stop()
            #expect(waited.status == 0, "\(waited.status) \(waited.errors)")
            let outcome = try CancelOutcome.decode(Array(waited.output.trimmingCharacters(in: .newlines).utf8))
            #expect(outcome.idempotencyKey == "fastpod-CLI-1" && outcome.status == .cancelled)
            // Run again once the worker is gone: the key's outcome was published already, and is printed.
            let again = try await runCancelWorker(["cancel", "--wait", "--timeout", "30s"] + order + brokers)
            #expect(again.status == 0, "\(again.status) \(again.errors)")
            #expect(
                try CancelOutcome.decode(Array(again.output.trimmingCharacters(in: .newlines).utf8)).outcomeID
                    == outcome.outcomeID)
            // Review finding (CancelClient): another account's order of the same id has the same
            // default key; with no worker to reject it, its run printed demo-1's `cancelled`, read
            // from the topic's beginning. Only an outcome that answers it counts: none yet.
            let other = try await runCancelWorker(
                [
                    "cancel", "--wait", "--timeout", "5s", "--provider", "fastpod", "--account", "demo-2", "--order-id",
                    "CLI-1",
                ] + brokers)
            #expect(other.status == 75 && other.output.isEmpty, "\(other.status) \(other.output) \(other.errors)")
            #expect(
                fleet.sandbox.requests(provider: .fastpod, orderID: "CLI-1").count == 1,
                "three runs with one idempotency key, one provider call")

            let sent = try await runCancelWorker(
                ["cancel", "--provider", "fungies", "--account", "demo-2", "--order-id", "CLI-2"] + brokers)
            #expect(sent.status == 0 && sent.output.hasPrefix("sent fungies-CLI-2 "), "\(sent.output) \(sent.errors)")
        }
    }

    @Test("bad arguments exit 64 with the usage; unreachable brokers exit 69 within 10 s")
    func usageAndUnreachable() async throws {
        let missing = try await runCancelWorker(["cancel", "--wait"])
        #expect(missing.status == 64 && missing.errors.contains("Usage: cancel-worker cancel"), "\(missing.errors)")
        let notAnID = try await runCancelWorker([
            "cancel", "--provider", "futures", "--account", "a", "--order-id", "12abc", "--wait",
        ])
        #expect(notAnID.status == 64 && notAnID.errors.contains("64-bit integer"), "\(notAnID.errors)")
        let unreachable = try await runCancelWorker(
            [
                "cancel", "--provider", "fastpod", "--account", "a", "--order-id", "F1", "--wait", "--brokers",
                "127.0.0.1:1",
            ],
            timeout: .seconds(30))
        #expect(unreachable.status == 69 && unreachable.elapsed < .seconds(10), "\(unreachable.errors)")
        #expect(unreachable.errors.contains("no Kafka broker answered"))
    }
}
