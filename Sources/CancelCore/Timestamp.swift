public import Foundation

/// RFC 3339 timestamps as commands and outcomes carry them: UTC, with milliseconds when
/// encoding (`2026-11-22T14:00:00.123Z`); with or without fractional seconds and with any
/// offset when decoding.
public enum Timestamp {
    private static let withFraction = Date.ISO8601FormatStyle(includingFractionalSeconds: true)
    private static let withoutFraction = Date.ISO8601FormatStyle()

    public static func parse(_ text: String) -> Date? {
        guard text.utf8.count <= 64 else { return nil }
        if let date = try? Self.withFraction.parse(text) { return date }
        return try? Self.withoutFraction.parse(text)
    }

    public static func format(_ date: Date) -> String {
        Self.withFraction.format(date)
    }

    /// Milliseconds since the epoch, the unit of Kafka timestamps and of our headers.
    public static func milliseconds(_ date: Date) -> Int64 {
        Int64((date.timeIntervalSince1970 * 1000).rounded())
    }

    public static func date(milliseconds: Int64) -> Date {
        Date(timeIntervalSince1970: Double(milliseconds) / 1000)
    }
}
