import Foundation
import Logging
import Testing

@testable import WorkerApp

@Suite("Metrics exposition and typed log values")
struct MetricsExpositionTests {
    @Test("HELP lines go before each known metric's TYPE line; unknown metrics are left alone")
    func help() {
        let exposition = """
            # TYPE cancel_worker_in_flight gauge
            cancel_worker_in_flight 0
            # TYPE other_metric counter
            other_metric 3

            """
        let annotated = MetricsHelp.annotate(exposition, help: ["cancel_worker_in_flight": "Commands in flight."])
        #expect(
            annotated == """
                # HELP cancel_worker_in_flight Commands in flight.
                # TYPE cancel_worker_in_flight gauge
                cancel_worker_in_flight 0
                # TYPE other_metric counter
                other_metric 3

                """)
    }

    @Test("/proc/self/stat parses past a command name with spaces and parentheses")
    func stat() throws {
        // Fields 3… of proc(5): state ppid pgrp session tty tpgid flags minflt cminflt majflt
        // cmajflt utime(14) stime(15) cutime cstime priority nice num_threads(20) itrealvalue
        // starttime(22) vsize(23) rss(24) …
        let line =
            "4242 (cancel (worker) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 7 0 12345 987654321 2048 18446744073709551615"
        let stat = try #require(ProcessMetrics.stat(line))
        #expect(stat.utime == 250 && stat.stime == 50 && stat.threads == 7)
        #expect(stat.startTicks == 12345 && stat.vsize == 987_654_321 && stat.rss == 2048)
        #expect(ProcessMetrics.stat("garbage") == nil)
        // This process: real figures.
        let text = ProcessMetrics.exposition()
        #expect(text.contains("# HELP process_cpu_seconds_total ") && text.contains("\nprocess_resident_memory_bytes "))
    }

    @Test("log values keep their JSON types: numbers, booleans, durations in seconds, arrays")
    func typedValues() throws {
        let fields: [String: Logger.Metadata.Value] = [
            "port": .stringConvertible(9464), "drained": .stringConvertible(true),
            "drain_time": .stringConvertible(Duration.milliseconds(1500)),
            "offset": .stringConvertible(Int64(42)), "name": "9464", "partitions": .array(["a[0]", "a[1]"]),
        ]
        #expect(
            String(decoding: JSONLogHandler.line(fields), as: UTF8.self)
                == #"{"drain_time":1.5,"drained":true,"name":"9464","offset":42,"partitions":["a[0]","a[1]"],"port":9464}"#
        )
    }
}
