import Foundation
import Synchronization

/// Where a worker's CPU goes, by thread, from /proc/<pid>/task (Linux): a profile of every
/// benchmark run without `perf`. Threads are grouped by the names their owners give them.
enum ThreadGroup: String, CaseIterable, Codable, Sendable {
    /// Swift's cooperative pool (libdispatch's `…default-qos` threads): the pipeline's tasks.
    case tasks
    /// SwiftNIO's event loops (`NIO-…`): the providers' HTTP connections.
    case http
    /// libdispatch's overcommit threads (`…overcommit`): the SQLite ledger's writer queue.
    case ledger
    /// librdkafka's threads (`rdk:…`) and the Kafka layer's poll threads (`kafka-…`).
    case kafka
    /// Any other thread (the main thread, a PostgreSQL client's, …).
    case other

    /// The group of a thread named `name` (Linux keeps its first 15 bytes; libdispatch's long
    /// names show their last ones, e.g. `oot.default-qos`).
    init(threadNamed name: String) {
        if name.contains("overcommit") {
            self = .ledger
        } else if name.contains("default-qos") {
            self = .tasks
        } else if name.hasPrefix("NIO-") {
            self = .http
        } else if name.hasPrefix("rdk:") || name.hasPrefix("kafka-") {
            self = .kafka
        } else {
            self = .other
        }
    }

    var label: String {
        switch self {
        case .tasks: "tasks"
        case .http: "HTTP event loops"
        case .ledger: "SQLite writer"
        case .kafka: "Kafka"
        case .other: "other"
        }
    }

    /// `micros` (µs per command by group raw value) as the bench prints it: the groups in order,
    /// each that used half a µs or more, e.g. `tasks 68, HTTP event loops 35`.
    static func summary(_ micros: [String: Double]) -> String {
        Self.allCases.compactMap { group -> String? in
            guard let value = micros[group.rawValue], value >= 0.5 else { return nil }
            return String(format: "%@ %.0f", group.label, value)
        }
        .joined(separator: ", ")
    }

    /// A thread's CPU seconds from its `/proc/…/task/<tid>/schedstat` (time on a CPU, in ns,
    /// first): `stat`'s clock ticks (10 ms each, rounded per thread) lose a quiet thread's
    /// milliseconds in a short run.
    static func cpuSeconds(schedstat: String) -> Double? {
        guard let first = schedstat.split(separator: " ").first, let nanoseconds = Double(first) else { return nil }
        return nanoseconds / 1_000_000_000
    }
}

/// Samples the threads of a run's processes and sums what each group used since `begin`. A
/// thread that exits counts up to its last sample, so the sampler samples every fraction of a
/// second while the run lasts.
final class ThreadSampler: Sendable {
    private struct Key: Hashable {
        let pid: Int32
        let tid: Int32
    }

    private struct Seen {
        var group: ThreadGroup
        var atBegin: Double
        var latest: Double
    }

    private let threads = Mutex<[Key: Seen]>([:])

    /// Reads every thread of `pids` now; what they used so far does not count.
    func begin(_ pids: [Int32]) {
        let now = self.read(pids)
        self.threads.withLock { threads in
            threads = now.mapValues { Seen(group: $0.group, atBegin: $0.seconds, latest: $0.seconds) }
        }
    }

    /// Reads every thread of `pids`: a thread first seen now counts from 0.
    func sample(_ pids: [Int32]) {
        let now = self.read(pids)
        self.threads.withLock { threads in
            for (key, thread) in now {
                threads[key, default: Seen(group: thread.group, atBegin: 0, latest: 0)].latest = thread.seconds
            }
        }
    }

    /// CPU seconds per group since `begin`.
    var seconds: [ThreadGroup: Double] {
        self.threads.withLock { threads in
            threads.values.reduce(into: [:]) { sums, thread in
                sums[thread.group, default: 0] += max(0, thread.latest - thread.atBegin)
            }
        }
    }

    private func read(_ pids: [Int32]) -> [Key: (group: ThreadGroup, seconds: Double)] {
        var found: [Key: (group: ThreadGroup, seconds: Double)] = [:]
        for pid in pids {
            let directory = "/proc/\(pid)/task"
            for entry in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] {
                guard let tid = Int32(entry),
                    let name = try? String(contentsOfFile: "\(directory)/\(entry)/comm", encoding: .utf8),
                    let schedstat = try? String(contentsOfFile: "\(directory)/\(entry)/schedstat", encoding: .utf8),
                    let seconds = ThreadGroup.cpuSeconds(schedstat: schedstat)
                else { continue }
                found[Key(pid: pid, tid: tid)] = (
                    ThreadGroup(threadNamed: name.trimmingCharacters(in: .newlines)), seconds
                )
            }
        }
        return found
    }
}
