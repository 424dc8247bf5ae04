import CancelCore
import CancelWorkerTesting
import Foundation
import Logging
import Testing
import Worker

@testable import WorkerApp

@Suite("Readiness: each check answers within its timeout")
struct ReadinessTests {
    /// Review finding (WorkerApp): the ledger check's timeout waited for the check to end, and
    /// a PostgreSQL statement does not end on cancellation (it waits for its answer, up to the
    /// statement timeout + 1 s). With the database silent, `/health/ready` and `/metrics` (which
    /// includes the readiness gauges) took ~11 s: longer than Prometheus's scrape timeout, so
    /// every series went absent and the wrong alert fired.
    @Test("review finding: a ledger that stops answering, deaf to cancellation, fails readiness within the timeout")
    func stalledLedger() async throws {
        let ledger = RecordingLedger()
        ledger.entryStall.withLock { $0 = .seconds(4) }
        let worker = CancelWorker(
            configuration: WorkerConfiguration(bootstrapServers: "127.0.0.1:1"), providers: [:], ledger: ledger,
            logger: Logger(label: "readiness") { _ in SwiftLogNoOpLogHandler() })
        let started = ContinuousClock.now
        let checks = await WorkerApplication.readiness(worker: worker, ledger: ledger, timeout: .milliseconds(300))
        let took = ContinuousClock.now - started
        #expect(took < .seconds(2), "readiness answered after \(took)")
        #expect(checks.first { $0.name == "ledger" }?.ok == false)
    }
    /// Review finding (WorkerApp): the graceful budget was `drain-timeout` + 15 s, its comment
    /// counting 5 s to flush outcomes where the worker flushes for 10 s after leaving its groups
    /// (up to 10 s): a slow broker at SIGTERM ran it out, and the process ended in
    /// swift-service-lifecycle's fatal error instead of exiting 0.
    @Test("review finding: the graceful shutdown budget covers the drain, leaving the groups and the outcome flush")
    func shutdownBudget() {
        let drain = Duration.seconds(20)
        let budget = WorkerApplication.shutdownBudget(drainTimeout: drain)
        #expect(budget.graceful >= drain + .seconds(10) + CancelWorker.outcomeFlushTimeout, "\(budget.graceful)")
    }
}
