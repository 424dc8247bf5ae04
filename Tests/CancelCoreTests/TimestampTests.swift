import CancelWorkerTesting
import Foundation
import Testing

@testable import CancelCore

/// `Timestamp` reads and writes the common RFC 3339 shapes itself (issue 14) and leaves the
/// rest to Foundation's `ISO8601FormatStyle`, which stays the definition: the two must agree
/// on everything the fast path accepts, and the fast path must hand over what it does not.
@Suite("Timestamps: the fast path agrees with ISO8601FormatStyle")
struct TimestampTests {
    /// A random timestamp: mostly shapes the fast path reads, the rest close to them.
    static func text(_ random: inout SeededGenerator) -> String {
        let year = Int.random(in: 1970...2400, using: &random)
        let month = Int.random(in: 1...12, using: &random)
        let day = Int.random(in: 1...28, using: &random) + (Bool.random(using: &random) ? 0 : 3)
        let hour = Int.random(in: 0...23, using: &random)
        let minute = Int.random(in: 0...59, using: &random)
        let second = Int.random(in: 0...59, using: &random)
        var text = String(format: "%04d-%02d-%02dT%02d:%02d:%02d", year, month, min(day, 31), hour, minute, second)
        let digits = Int.random(in: 0...7, using: &random)
        if digits > 0 {
            text += "." + String((0..<digits).map { _ in Character(String(Int.random(in: 0...9, using: &random))) })
        }
        switch Int.random(in: 0..<3, using: &random) {
        case 0, 1: text += "Z"
        default:
            let sign = Bool.random(using: &random) ? "+" : "-"
            text += String(
                format: "%@%02d:%02d", sign, Int.random(in: 0...14, using: &random),
                [0, 30, 45].randomElement(using: &random)!)
        }
        return text
    }

    @Test("20,000 random timestamps of the common shapes read alike; invalid days read as nothing")
    func parsesAlike() async {
        var random = SeededGenerator(seed: 0x7157)
        var fast = 0
        var ticker = CooperativeTicker()
        for _ in 0..<20_000 {
            await ticker.tick()
            let text = Self.text(&random)
            let reference = Timestamp.parseFoundation(text)
            let common = Timestamp.parseCommon(text)
            if let common {
                fast += 1
                #expect(
                    common == reference,
                    "\(text): \(common.timeIntervalSince1970) vs \(String(describing: reference?.timeIntervalSince1970))"
                )
            }
            // Declined: Foundation reads a date-time, and nothing reads a day out of its month
            // (31 April, which Foundation reads as 1 May).
            #expect(Timestamp.parse(text) == (Timestamp.isDateTime(text) ? reference : nil), "\(text)")
        }
        #expect(fast > 9_000, "most of them take the fast path")
    }

    @Test(
        "20,000 random instants from 1970 to 9999 are written as Foundation writes them, but a hair below a millisecond"
    )
    func formatsAlike() async {
        var random = SeededGenerator(seed: 0x7158)
        var ticker = CooperativeTicker()
        var rounded = 0
        for index in 0..<20_000 {
            await ticker.tick()
            let seconds: Double =
                index < 10_000
                ? Double.random(in: 1.7e9...1.9e9, using: &random)
                : Double.random(in: 0..<253_402_300_799, using: &random)
            if Self.expectFoundationsText(Date(timeIntervalSince1970: seconds)) { rounded += 1 }
        }
        // Two steps of a Double in ~1 ms: 0.02 % of dates in 2026, up to 3 % near the year 9999.
        #expect(rounded < 1_000, "\(rounded) written otherwise than Foundation writes them")
        for edge in [0, 0.0005, 0.9999, 951_782_400, 4_107_542_399.999, 253_402_300_799.999] {
            Self.expectFoundationsText(Date(timeIntervalSince1970: edge))
        }
    }

    /// `format` writes Foundation's text for `date`, but for a date within two steps of its
    /// `Double` below a millisecond, which it writes as that millisecond (true then).
    @discardableResult
    static func expectFoundationsText(_ date: Date, sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
        let text = Timestamp.format(date)
        #expect(Timestamp.formatCommon(date) == text, sourceLocation: sourceLocation)
        let foundation = Timestamp.formatFoundation(date)
        guard text != foundation else { return false }
        let reference = date.timeIntervalSinceReferenceDate
        let step = max(reference.magnitude.ulp, date.timeIntervalSince1970.magnitude.ulp)
        let read = Timestamp.parseFoundation(text)?.timeIntervalSinceReferenceDate ?? 0
        #expect(
            read >= reference && read - reference <= 2.5 * step, "\(reference): \(text), Foundation \(foundation)",
            sourceLocation: sourceLocation)
        return true
    }

    /// `2026-11-28T21:40:18.075Z` is read as the `Date` nearest to it, which lies a hair below
    /// it; Foundation's writer truncates, and wrote it back as `.074Z`. Every command's
    /// `requested_at` comes back in its outcome, so a time must survive being read and written.
    @Test("a time with milliseconds, read and written again, keeps its text (1970–9999, both readers)")
    func millisecondsRoundTrip() async {
        var random = SeededGenerator(seed: 0x7159)
        var ticker = CooperativeTicker()
        var texts = ["2026-11-28T21:40:18.075Z", "2001-01-01T00:00:00.001Z", "1970-01-01T00:00:00.999Z"]
        for index in 0..<20_000 {
            let seconds =
                index < 10_000
                ? Int.random(in: 1_700_000_000...1_900_000_000, using: &random)
                : Int.random(in: 0..<253_402_300_799, using: &random)
            let whole = Timestamp.format(Date(timeIntervalSince1970: Double(seconds)))
            texts.append(String(whole.dropLast(4)) + String(format: "%03dZ", Int.random(in: 0...999, using: &random)))
        }
        for text in texts {
            await ticker.tick()
            guard let date = Timestamp.parse(text), let foundation = Timestamp.parseFoundation(text) else {
                Issue.record("\(text) not read")
                continue
            }
            #expect(Timestamp.format(date) == text)
            #expect(Timestamp.format(foundation) == text)
            #expect(Timestamp.format(Timestamp.date(milliseconds: Timestamp.milliseconds(date))) == text)
        }
    }

    @Test("a command's requested_at comes back in its outcome as it was sent")
    func requestedAtEcho() throws {
        let json = #"""
            {"command_id":"c1","idempotency_key":"k1","provider":"fastpod","account":"a",
             "order":{"id":"F237-120723-000001"},"requested_at":"2026-11-28T21:40:18.075Z"}
            """#
        guard case .valid(let command) = CommandDecoder().decode(Array(json.utf8)) else {
            Issue.record("not decoded")
            return
        }
        let outcome = CancelOutcome(
            outcomeID: "oc_1", identity: command.identity, status: .cancelled, reason: "cancelled", attempts: 1,
            completedAt: Date(timeIntervalSince1970: 1_795_902_018.075), workerID: "w")
        let text = String(decoding: outcome.encoded(), as: UTF8.self)
        #expect(text.contains(#""requested_at":"2026-11-28T21:40:18.075Z""#), "\(text)")
        #expect(text.contains(#""completed_at":"2026-11-28T21:40:18.075Z""#), "\(text)")
    }

    @Test(
        "shapes the fast path leaves to Foundation, and what nothing reads",
        arguments: [
            ("2026-11-22T14:00:00+01:00", true), ("2026-11-22T14:00:00.1234567Z", true),
            ("2001-11-22T14:00:00Z", true), ("2026-11-22t14:00:00z", false), ("1969-12-31T23:59:59Z", true),
            ("2026-11-22T14:00:00.1234567890Z", false), ("2026-11-22T14:00:00+0100", false),
            ("2026-11-22 14:00:00Z", false), ("2026-02-30T00:00:00Z", false), ("2026-11-22T24:00:00Z", false),
            ("2026-11-22T14:00:60Z", false), ("2026-11-22T14:00Z", false), ("2026-11-22", false), ("", false),
            ("2026-11-22T14:00:00.Z", false), ("2026-11-22T14:00:00+01", false), ("२०२६-11-22T14:00:00Z", false),
        ])
    func otherShapes(_ text: String, read: Bool) {
        #expect(Timestamp.parseCommon(text) == nil, "the fast path hands \(text) over")
        #expect(Timestamp.parse(text) == (read ? Timestamp.parseFoundation(text) : nil))
        if read { #expect(Timestamp.parse(text) != nil, "\(text)") }
    }

    /// Review finding (CancelCore): what the fast path declined went to Foundation's parser,
    /// which is lenient: `T25:00:00Z` read as 01:00 the next day, 31 April as 1 May, trailing
    /// junk ignored. A command's `deadline` moved by a day without a word.
    @Test(
        "review finding: text that is not an RFC 3339 date-time, or a field out of its range, reads as nothing",
        arguments: [
            "2026-01-01T25:00:00Z", "2026-01-01T99:99:99Z", "2026-01-01T00:60:00Z", "2026-04-31T00:00:00Z",
            "2026-01-01T1:2:3Z", "2026-001-01T00:00:00Z", "2026-01-01T00:00:00+00:60", "2026-01-01T00:00:00GMT",
            "2026-01-01T00:00:00Zjunk", "99999-01-01T00:00:00Z", "2026-02-29T00:00:00Z", "2026-01-01T00:00:00+24:00",
            "2026-01-01T00:00:00.Z", "2026-01-01T00:00:00+0100", "2026-01-01 00:00:00Z",
        ])
    func notRFC3339(_ text: String) {
        #expect(Timestamp.parse(text) == nil, "\(text) read as \(String(describing: Timestamp.parse(text)))")
    }

    @Test("review finding: a command whose deadline is not a time is invalid, not moved")
    func commandDeadlineOutOfRange() throws {
        let text =
            #"{"schema":"cancel-command.v1","command_id":"c","idempotency_key":"k","provider":"fastpod","account":"a","order":{"id":"o"},"requested_at":"2026-01-01T00:00:00Z","deadline":"2026-01-01T25:00:00Z"}"#
        guard case .invalid(_, let reason) = CommandDecoder(maxRecordBytes: 65_536).decode(Array(text.utf8)) else {
            Issue.record("decoded as valid")
            return
        }
        #expect(reason.contains("deadline"), "\(reason)")
    }

    @Test("the days arithmetic round-trips over 10,000 years")
    func civilDays() async {
        var ticker = CooperativeTicker(every: 256)
        for days in stride(from: 0, to: 2_932_897, by: 1) where days % 97 == 0 || days < 1500 {
            await ticker.tick()
            let (year, month, day) = Timestamp.civil(daysSinceEpoch: days)
            #expect(Timestamp.daysSinceEpoch(year: year, month: month, day: day) == days)
        }
    }
}
