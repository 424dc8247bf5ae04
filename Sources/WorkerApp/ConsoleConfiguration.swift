public import CancelCore
public import Foundation

/// The `console.*` settings: where `cancel-worker console` listens, its access token, the
/// workers whose `/metrics` it reads, and the pace of the replays it starts.
public struct ConsoleConfiguration: Sendable {
    /// Loopback by default: the console is an operator's tool, not a public site.
    public var host = "127.0.0.1"
    public var port = 9465
    /// Bearer token, or basic-auth password. Nil: the console refuses to start.
    public var token: Secret?
    /// Each worker's `/metrics` URL.
    public var workers: [URL] = [URL(string: "http://127.0.0.1:9464/metrics")!]
    public var scrapeInterval: Duration = .seconds(5)
    /// Records per second a console replay sends, at most.
    public var replayRate: Double = 20
    /// Replays of one command before it is parked (as `replay --max-replays`).
    public var maxReplays = 3

    public init() {}

    /// `workers` as the setting is written: `host:port` for a plain `http://host:port/metrics`.
    public var workersText: String {
        self.workers.map { url in
            guard url.scheme == "http", url.path == "/metrics", let host = url.host, let port = url.port else {
                return url.absoluteString
            }
            return "\(host):\(port)"
        }.joined(separator: ",")
    }

    /// `host:port`, `http://host:port` or a full URL, as the `/metrics` URL it names.
    public static func metricsURL(_ text: String) -> URL? {
        let withScheme = text.contains("://") ? text : "http://\(text)"
        guard var components = URLComponents(string: withScheme),
            components.scheme == "http" || components.scheme == "https",
            let host = components.host, !host.isEmpty
        else { return nil }
        if components.path.isEmpty || components.path == "/" { components.path = "/metrics" }
        return components.url
    }
}
