import Foundation

/// CPU time and memory of a process, from /proc (Linux).
struct ProcessStats: Sendable {
    var cpuSeconds: Double
    var peakRSSMegabytes: Double

    static func read(pid: Int32) -> ProcessStats? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        else { return nil }
        // Fields after the command name (which may contain spaces) start after ") ".
        let fields = stat.components(separatedBy: ") ").last?.split(separator: " ") ?? []
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        let user = fields.count > 12 ? Double(fields[11]) ?? 0 : 0
        let system = fields.count > 12 ? Double(fields[12]) ?? 0 : 0
        let hwm =
            status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") }?.split(separator: " ").dropFirst().first
            .flatMap { Double($0) } ?? 0
        return ProcessStats(cpuSeconds: (user + system) / ticks, peakRSSMegabytes: hwm / 1024)
    }
}
