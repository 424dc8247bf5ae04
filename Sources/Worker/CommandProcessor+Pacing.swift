import CancelCore
import Foundation
import Kafka
import Logging

/// Pacing: the user's rate-limit slot, provider pauses kept in the ledger, and the send-time
/// guard's verdict right before a call's bytes go out.
extension CommandProcessor {
    // MARK: Pacing

    /// Keeps a provider's pause in the ledger, so the next owner of the account's partition
    /// (after a rebalance, a restart) waits it out too. Best effort: if the ledger cannot take
    /// it, this worker still honours the pause, and a new owner starts with its hand-over delay.
    func keepPause(_ provider: ProviderID, account: String?, after: Duration) async {
        let now = self.clock.date
        do {
            try await self.ledger.recordPause(
                PacingPause(
                    provider: provider.rawValue, account: account, until: now.addingTimeInterval(after.timeInterval)),
                now: now)
        } catch {
            self.log(
                .warning,
                "could not keep a provider's pause in the ledger; a new owner of the partition will not know it",
                [
                    "provider": "\(provider)", "error": "\(error)",
                ])
        }
    }

    enum Pace {
        case go, abandoned
        case ended(DeliveryEnding)
    }

    /// Waits for the account's booked slot at the provider (rate limit, its pauses,
    /// provider-wide pauses), as `DeliveryRules.pace` decides. Every wait ends early if the
    /// partition is revoked.
    @inline(never)
    func pace(
        _ command: CancelCommand, deadline: ContinuousClock.Instant?, state: DeliveryState, scope: PartitionScope
    ) async -> Pace {
        let provider = command.provider
        let now = self.clock.now
        let booking = scope.pacer.book(provider, account: command.account, now: now, notAfter: deadline)
        switch DeliveryRules.pace(
            booking: booking?.at, gateOpensAt: self.gate.openAt(provider, now: now), deadline: deadline, now: now,
            provider: provider, state: state)
        {
        case .call:
            return .go
        case .wait(let target):
            self.metrics.rateLimitWait(provider, for: target - self.clock.now)
            return await scope.sleep(until: target) ? .go : .abandoned
        case .end(let ending):
            return .ended(ending)
        }
    }

    /// The send-time guard, run by the provider once the call holds its connection, right
    /// before the request is written: the partition is still ours (and the process was not
    /// frozen for seconds just now, `FreezeWatch`), the deadline has not passed,
    /// the provider is not paused, the claim is current (renewed when the wait ate into its
    /// lease: a claim lost meanwhile stops the call), and the user's rate-limit slot is taken
    /// now — a slot booked before a long wait for a connection would let queued calls leave
    /// together.
    @inline(never)
    func sendVerdict(
        _ command: CancelCommand, deadline: ContinuousClock.Instant?, call: CallState, scope: PartitionScope
    ) async -> SendVerdict {
        let now = self.clock.now
        if let stop = self.standing(command, deadline: deadline, call: call, scope: scope, now: now) { return stop }
        // Renew unless the lease was written in the last second (markSent, usually).
        if now - call.leaseWritten > .seconds(1) {
            do {
                _ = try await self.ledger.renew(
                    key: command.idempotencyKey, owner: self.owner, fence: call.fence,
                    lease: self.configuration.claimLease, now: self.clock.date)
                call.renewed(at: now)
            } catch LedgerError.leaseLost {
                return call.stop(.leaseLost)
            } catch {
                // The ledger is unreachable: never send on an unknown claim.
                return call.stop(.wait(until: self.clock.now + .seconds(1)))
            }
            // The renewal awaited the ledger: the partition may have been revoked (a drain), the
            // provider paused or the deadline passed meanwhile.
            let renewed = self.clock.now
            if let stop = self.standing(command, deadline: deadline, call: call, scope: scope, now: renewed) {
                return stop
            }
        }
        if let wait = scope.pacer.acquire(command.provider, account: command.account, now: self.clock.now) {
            return call.stop(.wait(until: wait))
        }
        // The slot is taken: the account's next command may start toward its own.
        CommandLanes.departing()
        return .send
    }

    /// The guard's checks that need no ledger: the partition is still ours, the process was not
    /// just frozen, the deadline has not passed, the provider is not paused. Nil: the call may go on.
    private func standing(
        _ command: CancelCommand, deadline: ContinuousClock.Instant?, call: CallState, scope: PartitionScope,
        now: ContinuousClock.Instant
    ) -> SendVerdict? {
        if scope.isRevoked { return call.stop(.revoked) }
        // Frozen for seconds: the partition may be another member's by now (`FreezeWatch`).
        // The watch reads the real clock, whatever clock the pipeline runs on (a manual one in tests).
        let real = ContinuousClock.now
        if let held = self.freezes?.heldUntil(now: real) { return call.stop(.wait(until: now + (held - real))) }
        if let deadline, now >= deadline { return call.stop(.expired) }
        if let open = self.gate.openAt(command.provider, now: now) { return call.stop(.wait(until: open)) }
        return nil
    }
}
