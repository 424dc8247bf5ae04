import CancelCore
import Testing

@Suite("GCRA rate limiter (manual time)")
struct RateLimiterTests {
    let start = ContinuousClock.now

    @Test("10/s: no 11 calls within any second, whatever the arrival pattern")
    func neverAboveTheRate() {
        var limiter = RateLimiter<String>(limit: RateLimit(requestsPerSecond: 10), start: self.start)
        var calls: [ContinuousClock.Instant] = []
        // 500 commands arrive at once, then more trickle in.
        for _ in 0..<500 { calls.append(limiter.reserve("u", now: self.start)!.at) }
        for index in 0..<100 { calls.append(limiter.reserve("u", now: self.start + .milliseconds(index * 7))!.at) }
        calls.sort()
        for (index, call) in calls.enumerated() where index + 10 < calls.count {
            #expect(calls[index + 10] - call >= .seconds(1), "11 calls within a second at \(index)")
        }
        #expect(calls.first! == self.start + .milliseconds(100), "a user first seen waits one interval after the start")
    }

    @Test("a rate-limit answer slows the user down by half, at most 3×, and the pace recovers over a minute")
    func slowdownAfterRateLimit() {
        var limiter = RateLimiter<String>(limit: RateLimit(requestsPerSecond: 10), start: self.start - .seconds(10))
        #expect(limiter.interval(for: "u", now: self.start) == .milliseconds(100))
        let pausedUntil = self.start + .seconds(1)
        limiter.pause("u", until: pausedUntil)
        #expect(limiter.interval(for: "u", now: pausedUntil) == .milliseconds(150))
        #expect(
            limiter.interval(for: "other", now: pausedUntil) == .milliseconds(100), "only the user told to slow down")
        #expect(
            limiter.interval(for: "u", now: pausedUntil + .seconds(30)) == .milliseconds(125),
            "half recovered after 30 s")
        #expect(
            limiter.interval(for: "u", now: pausedUntil + .seconds(60)) == .milliseconds(100),
            "recovered after a minute")
        for _ in 0..<10 { limiter.pause("u", until: pausedUntil) }
        #expect(limiter.slowdown(for: "u", now: pausedUntil) == RateLimiter<String>.maxSlowdown)
        // Calls booked after the pause are spaced by the stretched interval.
        let first = limiter.reserve("u", now: pausedUntil)!.at
        let second = limiter.reserve("u", now: pausedUntil)!.at
        #expect(second - first >= .milliseconds(290))
    }

    @Test("users are independent; a throttled user does not delay another")
    func independentUsers() {
        var limiter = RateLimiter<String>(limit: RateLimit(requestsPerSecond: 10), start: self.start - .seconds(10))
        for _ in 0..<50 { _ = limiter.reserve("busy", now: self.start) }
        #expect(limiter.reserve("quiet", now: self.start)!.at == self.start)
        #expect(limiter.throttledUsers(now: self.start) == 1)
    }

    @Test("burst allows b calls at once only after credit builds up, never at first sight")
    func burst() {
        var limiter = RateLimiter<String>(
            limit: RateLimit(requestsPerSecond: 10, burst: 5), start: self.start - .seconds(10))
        let first = (0..<3).map { _ in limiter.reserve("u", now: self.start)!.at }
        #expect(
            first == [self.start, self.start + .milliseconds(100), self.start + .milliseconds(200)],
            "no burst credit at first")
        let later = self.start + .seconds(10)
        let burst = (0..<6).map { _ in limiter.reserve("u", now: later)!.at }
        #expect(burst.prefix(5).allSatisfy { $0 == later })
        #expect(burst[5] == later + .milliseconds(100))
    }

    @Test(
        "review finding: with a burst b, any n + b consecutive calls of an n/s user span at least a second",
        arguments: [1, 3, 10])
    func burstWindow(burst: Int) {
        var limiter = RateLimiter<String>(
            limit: RateLimit(requestsPerSecond: 10, burst: burst), start: self.start - .seconds(10))
        var sent: [ContinuousClock.Instant] = []
        // Calls arrive in clumps with pauses that rebuild the burst credit; each is sent as soon
        // as `acquire` lets it.
        var now = self.start
        for clump in 0..<40 {
            for _ in 0..<(clump % 7 + 1) {
                while let wait = limiter.acquire("u", now: now) { now = wait }
                sent.append(now)
            }
            now += .milliseconds(clump % 3 == 0 ? 900 : 40)
        }
        for index in sent.indices where index + 10 + burst - 1 < sent.count {
            #expect(
                sent[index + 10 + burst - 1] - sent[index] >= .seconds(1), "n + b calls within a second at \(index)")
        }
        if burst > 1 {
            let tighter = sent.indices.contains { $0 + 10 < sent.count && sent[$0 + 10] - sent[$0] < .seconds(1) }
            #expect(tighter, "a burst lets n + 1 calls leave within a second: the docs say n + b")
        }
    }

    @Test("a call that woke late does not squeeze the next one closer than the limit")
    func lateWakeUp() {
        var limiter = RateLimiter<String>(limit: RateLimit(requestsPerSecond: 10), start: self.start - .seconds(10))
        let first = limiter.reserve("u", now: self.start)!
        let second = limiter.reserve("u", now: self.start)!
        #expect(second.at - first.at == .milliseconds(100))
        // The first call's task is scheduled 60 ms late; the second wakes on time.
        #expect(limiter.acquire("u", now: first.at + .milliseconds(60)) == nil)
        let wait = limiter.acquire("u", now: second.at)
        #expect(
            wait == first.at + .milliseconds(160), "the second call waits for a full interval after the first was sent")
        #expect(limiter.acquire("u", now: wait!) == nil)
    }

    @Test("a deadline that cannot be met books nothing")
    func deadline() {
        var limiter = RateLimiter<String>(limit: RateLimit(requestsPerSecond: 1), start: self.start - .seconds(10))
        _ = limiter.reserve("u", now: self.start)
        #expect(limiter.reserve("u", now: self.start, notAfter: self.start + .milliseconds(500)) == nil)
        #expect(
            limiter.reserve("u", now: self.start)!.at == self.start + .seconds(1),
            "the refused call did not take the slot")
    }

    @Test("pause holds calls booked earlier and moves new bookings after it")
    func pause() {
        var limiter = RateLimiter<String>(limit: RateLimit(requestsPerSecond: 10), start: self.start - .seconds(10))
        let booked = limiter.reserve("u", now: self.start)!
        limiter.pause("u", until: self.start + .seconds(2))
        #expect(
            limiter.acquire("u", now: booked.at) == self.start + .seconds(2), "the earlier booking waits for the pause")
        let rebooked = limiter.reserve("u", now: self.start + .milliseconds(1))!
        #expect(rebooked.at == self.start + .seconds(2))
        #expect(limiter.acquire("u", now: self.start + .seconds(2)) == nil)
        limiter.prune(now: self.start + .seconds(5))
        #expect(limiter.trackedUsers == 0)
    }
}

@Suite("Retry policy")
struct RetryPolicyTests {
    @Test("exponential backoff with full jitter, capped, never shorter than Retry-After")
    func backoff() {
        let policy = RetryPolicy()
        #expect(policy.backoff(afterAttempt: 1, providerAsked: nil, random: 0.999) < .milliseconds(200))
        #expect(policy.backoff(afterAttempt: 3, providerAsked: nil, random: 0.5) == .milliseconds(400))
        #expect(policy.backoff(afterAttempt: 30, providerAsked: nil, random: 0.999) <= policy.maxInProcessBackoff)
        #expect(policy.backoff(afterAttempt: 1, providerAsked: .seconds(3), random: 0) == .seconds(3))
    }

    @Test("tiers in order, the last one repeats; durations parse")
    func tiers() {
        let policy = RetryPolicy()
        #expect(policy.tier(forRound: 0)?.name == "5s")
        #expect(policy.tier(forRound: 1)?.delay == .seconds(60))
        #expect(policy.tier(forRound: 9)?.name == "10m")
        #expect(Duration(humanReadable: "250ms") == .milliseconds(250))
        #expect(Duration(humanReadable: "2h") == .seconds(7200))
        #expect(Duration(humanReadable: "1.5") == .milliseconds(1500))
        #expect(Duration(humanReadable: "soon") == nil)
    }
}
