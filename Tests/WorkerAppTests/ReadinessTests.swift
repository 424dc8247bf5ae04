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
}
