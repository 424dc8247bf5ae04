/// One sample of a Prometheus text exposition: a series (name and labels) and its value.
public struct MetricSample: Sendable, Hashable {
    public var name: String
    public var labels: [String: String]
    public var value: Double

    public init(name: String, labels: [String: String] = [:], value: Double) {
        self.name = name
        self.labels = labels
        self.value = value
    }

    /// The series this sample belongs to.
    public var series: MetricSeries { MetricSeries(name: self.name, labels: self.labels) }
}

/// A metric name with one set of label values.
public struct MetricSeries: Sendable, Hashable {
    public var name: String
    public var labels: [String: String]

    public init(name: String, labels: [String: String] = [:]) {
        self.name = name
        self.labels = labels
    }
}

/// Reads the Prometheus text format (version 0.0.4) that the workers' `/metrics` serves:
/// comments are skipped, label values unescaped, `+Inf`/`-Inf`/`NaN` understood, timestamps
/// ignored. A line it cannot read is skipped, not fatal: one odd series must not blank a page.
public enum PrometheusText {
    public static func parse(_ text: String) -> [MetricSample] {
        text.split(separator: "\n").compactMap { Self.sample(Substring($0)) }
    }

    static func sample(_ line: Substring) -> MetricSample? {
        let line = line.drop { $0 == " " }
        guard let first = line.first, first != "#" else { return nil }
        let name = line.prefix { $0.isLetter || $0.isNumber || $0 == "_" || $0 == ":" }
        guard !name.isEmpty else { return nil }
        var rest = line.dropFirst(name.count)
        var labels: [String: String] = [:]
        if rest.first == "{" {
            rest = rest.dropFirst()
            while true {
                rest = rest.drop { $0 == " " || $0 == "," }
                if rest.first == "}" {
                    rest = rest.dropFirst()
                    break
                }
                let label = rest.prefix { $0 != "=" }
                rest = rest.dropFirst(label.count)
                guard rest.first == "=", rest.dropFirst().first == "\"" else { return nil }
                rest = rest.dropFirst(2)
                var value = ""
                var escaped = false
                var closed = false
                while let character = rest.first {
                    rest = rest.dropFirst()
                    if escaped {
                        value.append(character == "n" ? "\n" : character)
                        escaped = false
                    } else if character == "\\" {
                        escaped = true
                    } else if character == "\"" {
                        closed = true
                        break
                    } else {
                        value.append(character)
                    }
                }
                guard closed else { return nil }
                labels[label.trimmingSpaces] = value
            }
        }
        guard let valueText = rest.split(separator: " ").first, let value = Self.number(valueText) else { return nil }
        return MetricSample(name: String(name), labels: labels, value: value)
    }

    static func number(_ text: Substring) -> Double? {
        switch text {
        case "+Inf", "Inf": .infinity
        case "-Inf": -.infinity
        case "NaN": .nan
        default: Double(text)
        }
    }
}

extension Substring {
    fileprivate var trimmingSpaces: String {
        String(self.drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
    }
}
