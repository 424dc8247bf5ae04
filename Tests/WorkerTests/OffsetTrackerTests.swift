import Testing

@testable import Worker

@Suite("Offset tracker")
struct OffsetTrackerTests {
    @Test("only the contiguous finished prefix is committable")
    func contiguous() {
        var tracker = OffsetTracker()
        for offset in [10, 11, 12, 14, 15] as [Int64] {
            let accepted = tracker.begin(offset)
            #expect(accepted)
        }
        #expect(tracker.committable == nil)
        tracker.finish(11)
        tracker.finish(14)
        #expect(tracker.committable == nil, "10 is still in flight")
        tracker.finish(10)
        #expect(tracker.committable == 12, "10 and 11 done; 12 holds back 14")
        tracker.finish(12)
        #expect(tracker.committable == 15, "gaps in offsets (13) are skipped")
        #expect(tracker.inFlight == 1)
        tracker.finish(15)
        #expect(tracker.committable == 16)
        #expect(tracker.pending == 0)
    }

    @Test("repeated or older offsets are refused; unknown finishes are ignored")
    func ordering() {
        var tracker = OffsetTracker()
        let first = tracker.begin(5)
        let repeated = tracker.begin(5)
        let older = tracker.begin(3)
        #expect(first && !repeated && !older)
        tracker.finish(99)
        #expect(tracker.committable == nil)
        tracker.finish(5)
        #expect(tracker.committable == 6)
    }
}
