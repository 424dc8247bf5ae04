public import Foundation

/// RFC 3339 timestamps as commands and outcomes carry them: UTC, with milliseconds when
/// encoding (`2026-11-22T14:00:00.123Z`); with or without fractional seconds and with any
/// offset when decoding.
///
/// Every command parses one or two and every outcome writes one or two, so the usual shapes
/// are read and written here, by arithmetic on the bytes (issue 14, `make microbench`:
/// `ISO8601FormatStyle` parses in 0.55 µs and formats in 0.25 µs, this in 0.02 and 0.07). Anything
/// else goes to `ISO8601FormatStyle`, which also stays the definition: `TimestampTests` holds
/// the two equal on random timestamps of every shape the fast path reads, but for one
/// deliberate difference: a time read from milliseconds is written back as it was read
/// (see `formatCommon`).
public enum Timestamp {
    private static let withFraction = Date.ISO8601FormatStyle(includingFractionalSeconds: true)
    private static let withoutFraction = Date.ISO8601FormatStyle()

    /// The date of an RFC 3339 `date-time`; nil for any other text, or a field out of its range
    /// (`T25:00`, 31 April, an offset of `+00:60`, no leap second). Foundation's parser, which
    /// reads the shapes the fast path declines, is lenient (it read `T25:00:00Z` as 01:00 the
    /// next day, ignored trailing text): the text is checked before it gets there.
    public static func parse(_ text: String) -> Date? {
        guard text.utf8.count <= 64 else { return nil }
        if let date = Self.parseCommon(text) { return date }
        guard Self.isDateTime(text) else { return nil }
        return Self.parseFoundation(text)
    }

    /// Whether `text` is an RFC 3339 `date-time` (§5.6: `T` or `t`, an optional fraction, `Z`,
    /// `z` or `±hh:mm`) with every field in its range; seconds 00–59.
    package static func isDateTime(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        let count = bytes.count
        guard
            bytes.withUnsafeBufferPointer({ Self.dateAndTime($0, separators: [UInt8(ascii: "T"), UInt8(ascii: "t")]) })
                != nil
        else { return false }
        func digits(_ at: Int, _ length: Int) -> Int? {
            guard at + length <= count else { return nil }
            return bytes.withUnsafeBufferPointer { Self.number($0, at: at, length: length) }
        }
        var index = 19
        if bytes[index] == UInt8(ascii: ".") {
            index += 1
            let start = index
            while index < count, digits(index, 1) != nil { index += 1 }
            guard index > start else { return false }
        }
        guard index < count else { return false }
        if bytes[index] == UInt8(ascii: "Z") || bytes[index] == UInt8(ascii: "z") { return index + 1 == count }
        guard bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-"), index + 6 == count,
            let offsetHours = digits(index + 1, 2), bytes[index + 3] == UInt8(ascii: ":"),
            let offsetMinutes = digits(index + 4, 2)
        else { return false }
        return offsetHours < 24 && offsetMinutes < 60
    }

    /// `parse` through Foundation alone (the reference the fast path is tested against).
    package static func parseFoundation(_ text: String) -> Date? {
        if let date = try? Self.withFraction.parse(text) { return date }
        return try? Self.withoutFraction.parse(text)
    }

    public static func format(_ date: Date) -> String {
        Self.formatCommon(date) ?? Self.withFraction.format(date)
    }

    /// `format` through Foundation alone (the reference the fast path is tested against).
    package static func formatFoundation(_ date: Date) -> String {
        Self.withFraction.format(date)
    }

    /// Milliseconds since the epoch, the unit of Kafka timestamps and of our headers.
    public static func milliseconds(_ date: Date) -> Int64 {
        Int64((date.timeIntervalSince1970 * 1000).rounded())
    }

    public static func date(milliseconds: Int64) -> Date {
        Date(timeIntervalSince1970: Double(milliseconds) / 1000)
    }

    // MARK: The common shapes

    /// `YYYY-MM-DDTHH:MM:SS`, then `.` and 1–6 digits or nothing, then `Z` (as `format` and
    /// `CancelClient` write them); every field in its range (no leap second, no 24:00), years
    /// 2002–9999 (before 2001 Foundation adds the parts in another order). Nil for anything else,
    /// which Foundation then reads or refuses.
    static func parseCommon(_ text: String) -> Date? {
        var text = text
        return text.withUTF8 { bytes -> Date? in
            let count = bytes.count
            @inline(__always) func digits(_ at: Int, _ length: Int) -> Int? {
                Self.number(bytes, at: at, length: length)
            }
            guard
                let (year, month, day, hour, minute, second) = Self.dateAndTime(bytes, separators: [UInt8(ascii: "T")]),
                year >= 2002
            else { return nil }
            var index = 19
            var nanoseconds = 0
            if bytes[index] == UInt8(ascii: ".") {
                index += 1
                let start = index
                var scale = 100_000_000
                while index < count, let digit = digits(index, 1) {
                    nanoseconds += digit * scale
                    scale /= 10
                    index += 1
                }
                // Beyond microseconds Foundation's sum differs from this one in the last bit
                // now and then (3 in 300,000 random timestamps): it decides those.
                guard index > start, index - start <= 6 else { return nil }
            }
            // UTC only: with an offset Foundation's sum differs from any order of these additions
            // in the last bit now and then (1 in 300,000 random timestamps); it decides those.
            guard index < count, bytes[index] == UInt8(ascii: "Z") else { return nil }
            index += 1
            guard index == count else { return nil }
            let days = Self.daysSinceEpoch(year: year, month: month, day: day)
            let seconds = days * 86_400 + hour * 3600 + minute * 60 + second
            // As Foundation adds them: whole seconds since 2001, then the fraction.
            return Date(
                timeIntervalSinceReferenceDate: Double(seconds - Self.referenceOffset) + Double(nanoseconds) / 1e9)
        }
    }

    /// The fields of `YYYY-MM-DDTHH:MM:SS` at the start of `bytes` (at least 20 of them, with `T`
    /// one of `separators`), every field in its range (no 24:00, no leap second); nil otherwise.
    @inline(__always)
    static func dateAndTime(
        _ bytes: UnsafeBufferPointer<UInt8>, separators: [UInt8]
    ) -> (year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int)? {
        guard bytes.count >= 20, bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-"),
            separators.contains(bytes[10]), bytes[13] == UInt8(ascii: ":"), bytes[16] == UInt8(ascii: ":"),
            let year = Self.number(bytes, at: 0, length: 4), let month = Self.number(bytes, at: 5, length: 2),
            let day = Self.number(bytes, at: 8, length: 2), let hour = Self.number(bytes, at: 11, length: 2),
            let minute = Self.number(bytes, at: 14, length: 2), let second = Self.number(bytes, at: 17, length: 2),
            (1...12).contains(month), day >= 1, day <= Self.daysIn(month: month, year: year),
            hour < 24, minute < 60, second < 60
        else { return nil }
        return (year, month, day, hour, minute, second)
    }

    /// The decimal number of `length` digits at `at` (within `bytes`); nil if one is not a digit.
    @inline(__always)
    static func number(_ bytes: UnsafeBufferPointer<UInt8>, at: Int, length: Int) -> Int? {
        var value = 0
        for index in at..<(at + length) {
            let digit = Int(bytes[index]) &- 48
            guard digit >= 0 && digit <= 9 else { return nil }
            value = value &* 10 &+ digit
        }
        return value
    }

    /// `YYYY-MM-DDTHH:MM:SS.mmmZ` for dates from 1970 to 9999; nil outside them.
    ///
    /// As Foundation writes them, the fraction's milliseconds are truncated, not rounded, with
    /// one exception: a date less than two of its `Double`'s steps below a millisecond is written
    /// as that millisecond. `….075Z` is read as the `Date` nearest to it, which may lie a hair
    /// below it (a step is 119 ns in 2026), and Foundation wrote it back as `.074Z`; a
    /// command's `requested_at`, echoed in its outcome, must come back as it was sent
    /// (`TimestampTests`). Only such dates are written otherwise than Foundation writes them.
    static func formatCommon(_ date: Date) -> String? {
        let reference = date.timeIntervalSinceReferenceDate
        var whole = reference.rounded(.down)
        guard whole >= -Double(Self.referenceOffset), whole < 253_402_300_800 - Double(Self.referenceOffset) else {
            return nil
        }
        let fraction = (reference - whole) * 1000
        var milliseconds = min(Int(fraction), 999)
        // The steps of the date's two `Double`s: since 2001 (how it is read) and since 1970 (how
        // `date(milliseconds:)` and Kafka's timestamps make it).
        let step = max(reference.magnitude.ulp, date.timeIntervalSince1970.magnitude.ulp, 1e-12)
        if Double(milliseconds + 1) - fraction < 2 * step * 1000 {
            milliseconds += 1
            if milliseconds == 1000 {
                milliseconds = 0
                whole += 1
                guard whole < 253_402_300_800 - Double(Self.referenceOffset) else { return nil }
            }
        }
        let seconds = Int(whole) + Self.referenceOffset
        let secondOfDay = seconds % 86_400
        let (year, month, day) = Self.civil(daysSinceEpoch: seconds / 86_400)
        return String(unsafeUninitializedCapacity: 24) { buffer in
            @inline(__always) func put(_ value: Int, _ at: Int, _ width: Int) {
                var value = value
                for index in stride(from: at + width - 1, through: at, by: -1) {
                    buffer[index] = UInt8(truncatingIfNeeded: 48 + value % 10)
                    value /= 10
                }
            }
            put(year, 0, 4)
            buffer[4] = UInt8(ascii: "-")
            put(month, 5, 2)
            buffer[7] = UInt8(ascii: "-")
            put(day, 8, 2)
            buffer[10] = UInt8(ascii: "T")
            put(secondOfDay / 3600, 11, 2)
            buffer[13] = UInt8(ascii: ":")
            put(secondOfDay / 60 % 60, 14, 2)
            buffer[16] = UInt8(ascii: ":")
            put(secondOfDay % 60, 17, 2)
            buffer[19] = UInt8(ascii: ".")
            put(milliseconds, 20, 3)
            buffer[23] = UInt8(ascii: "Z")
            return 24
        }
    }

    /// Seconds from 1970-01-01 to 2001-01-01, `Date`'s reference date.
    private static let referenceOffset = 978_307_200

    private static func isLeap(_ year: Int) -> Bool { year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) }

    private static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: Self.isLeap(year) ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    /// Days from 1970-01-01 to a proleptic Gregorian date (the "days from civil" arithmetic:
    /// years counted from March, so the leap day ends a year).
    static func daysSinceEpoch(year: Int, month: Int, day: Int) -> Int {
        let shiftedYear = month <= 2 ? year - 1 : year
        let era = shiftedYear / 400
        let yearOfEra = shiftedYear - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    /// The inverse of `daysSinceEpoch`, for days ≥ 0.
    static func civil(daysSinceEpoch days: Int) -> (year: Int, month: Int, day: Int) {
        let shifted = days + 719_468
        let era = shifted / 146_097
        let dayOfEra = shifted - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}
