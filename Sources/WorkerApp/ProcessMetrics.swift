import Foundation

/// The standard `process_*` metrics of a Prometheus client (CPU time, memory, file
/// descriptors, start time), read from `/proc/self` at scrape time: nothing runs between
/// scrapes. On a system without `/proc` the series are left out.
enum ProcessMetrics {
    /// The exposition text of the process metrics, `# HELP` and `# TYPE` lines included.
    static func exposition() -> String {
        var lines: [String] = []
        func add(_ name: String, _ type: String, _ help: String, _ value: Double?) {
            guard let value else { return }
            lines.append("# HELP \(name) \(help)")
            lines.append("# TYPE \(name) \(type)")
            lines.append("\(name) \(Self.format(value))")
        }
        let stat = Self.stat()
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        let pageSize = Double(sysconf(Int32(_SC_PAGESIZE)))
        add(
            "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.",
            stat.map { ($0.utime + $0.stime) / ticks })
        add("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", stat.map { $0.rss * pageSize })
        add("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", stat.map { $0.vsize })
        add(
            "process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.",
            stat.flatMap { stat in Self.bootTime().map { $0 + stat.startTicks / ticks } })
        add(
            "process_open_fds", "gauge", "Number of open file descriptors.",
            (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")).map { Double($0.count) })
        add("process_max_fds", "gauge", "Maximum number of open file descriptors.", Self.maxOpenFiles())
        add("process_threads", "gauge", "Number of OS threads in the process.", stat.map { $0.threads })
        return lines.isEmpty ? "" : lines.joined(separator: "\n") + "\n"
    }

    struct Stat {
        var utime: Double
        var stime: Double
        var threads: Double
        var startTicks: Double
        var vsize: Double
        var rss: Double
    }

    /// `/proc/self/stat`; the fields after the command name (which may contain spaces and
    /// parentheses, so parsing starts after its last `)`), numbered as in proc(5).
    static func stat(_ text: String? = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8)) -> Stat? {
        guard let text, let close = text.lastIndex(of: ")") else { return nil }
        // After ")": field 3 (state) is at index 0, so field n is at index n - 3.
        let fields = text[text.index(after: close)...].split(separator: " ")
        func field(_ number: Int) -> Double? { fields.indices.contains(number - 3) ? Double(fields[number - 3]) : nil }
        guard let utime = field(14), let stime = field(15), let threads = field(20), let start = field(22),
            let vsize = field(23), let rss = field(24)
        else { return nil }
        return Stat(utime: utime, stime: stime, threads: threads, startTicks: start, vsize: vsize, rss: rss)
    }

    private static func bootTime() -> Double? {
        guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8) else { return nil }
        let line = text.split(separator: "\n").first { $0.hasPrefix("btime ") }
        return line.flatMap { Double($0.dropFirst(6).trimmingCharacters(in: .whitespaces)) }
    }

    private static func maxOpenFiles() -> Double? {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return nil }
        return Double(limit.rlim_cur)
    }

    private static func format(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
    }
}

/// Adds `# HELP` lines to an exposition: before each metric's `# TYPE` line, the help text
/// `help` has for it (swift-metrics carries no help text to the registry).
enum MetricsHelp {
    static func annotate(_ exposition: String, help: [String: String]) -> String {
        guard !help.isEmpty else { return exposition }
        var out = ""
        out.reserveCapacity(exposition.utf8.count + help.count * 80)
        for line in exposition.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("# TYPE ") {
                let name = line.dropFirst(7).prefix { $0 != " " }
                if let text = help[String(name)] { out += "# HELP \(name) \(text)\n" }
            }
            out += line
            out += "\n"
        }
        if out.hasSuffix("\n\n") { out.removeLast() }
        return out
    }
}
