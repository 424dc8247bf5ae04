import Foundation
import Synchronization

/// The processes of one benchmark scenario: started, stopped one by one while it runs (members
/// joining and leaving), and their CPU and peak memory, a stopped process's as last read before
/// its SIGTERM (its drain after that is not counted).
final class BenchFleet: Sendable {
    private struct State {
        var running: [WorkerProcess] = []
        var stopped: [WorkerProcess] = []
        var stoppedCPU = 0.0
        var stoppedPeakRSS = 0.0
    }

    private let state = Mutex(State())

    func add(_ worker: WorkerProcess) { self.state.withLock { $0.running.append(worker) } }

    var running: [WorkerProcess] { self.state.withLock { $0.running } }

    /// The running processes' ids.
    var pids: [Int32] { self.running.map(\.process.processIdentifier) }

    /// How many processes were started so far.
    var started: Int { self.state.withLock { $0.running.count + $0.stopped.count } }

    /// SIGTERM to the most recently started running process (it drains, commits, leaves).
    @discardableResult
    func stopNewest() -> WorkerProcess? {
        self.state.withLock { state in
            guard let worker = state.running.popLast() else { return nil }
            if let stats = worker.stats {
                state.stoppedCPU += stats.cpuSeconds
                state.stoppedPeakRSS = max(state.stoppedPeakRSS, stats.peakRSSMegabytes)
            }
            worker.signal(SIGTERM)
            state.stopped.append(worker)
            return worker
        }
    }

    /// CPU seconds (user + system) of every process started, so far.
    var cpuSeconds: Double {
        let (running, stopped) = self.state.withLock { ($0.running, $0.stoppedCPU) }
        return stopped + running.compactMap(\.stats).map(\.cpuSeconds).reduce(0, +)
    }

    /// The highest peak resident set of any process started.
    var peakRSSMegabytes: Double {
        let (running, stopped) = self.state.withLock { ($0.running, $0.stoppedPeakRSS) }
        return running.compactMap(\.stats).map(\.peakRSSMegabytes).reduce(stopped, max)
    }

    /// SIGTERM to every running process, then waits until all have exited, for `within` at
    /// most: a process still running then is killed, and described in the result (a worker
    /// that does not stop on SIGTERM is a defect; the figures were measured before).
    func terminateAll(within: Duration) async -> [String] {
        while self.stopNewest() != nil {}
        let stopped = self.state.withLock { $0.stopped }
        return await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                for worker in stopped { _ = await worker.process.exited() }
                return true
            }
            group.addTask {
                try? await Task.sleep(for: within)
                return false
            }
            defer { group.cancelAll() }
            guard await group.next() == false else { return [] }
            // Killed, the stragglers end the wait above.
            return stopped.filter(\.isRunning).map { worker in
                let tail = worker.logTail
                worker.signal(SIGKILL)
                return "\(worker.id) did not exit within \(within) of SIGTERM (killed); its log ends:\n\(tail)"
            }
        }
    }

    /// Each process started: its id, whether it still runs, and the end of its log.
    func describe() -> String {
        self.state.withLock { $0.running + $0.stopped }.map { worker in
            let state = worker.isRunning ? "running" : "exited \(worker.process.terminationStatus)"
            return "\(worker.id) (\(state)), its log ends:\n\(worker.logTail)"
        }.joined(separator: "\n")
    }

    func killAll() {
        for worker in self.state.withLock({ $0.running + $0.stopped }) { worker.signal(SIGKILL) }
    }
}
