import CancelCore
import Kafka
import Logging

/// Outcomes read from the outcomes topic, from a chosen position: every outcome
/// (`CancelClient.outcomes(from:)`, endless), or those of some idempotency keys
/// (`CancelClient.outcomes(for:from:)`, which ends once each key has a terminal outcome).
///
/// Iterating starts a consumer of its own (a group of its own that commits nothing); it stops
/// when the iteration ends, the iterator is dropped or the task is cancelled. Outcomes come in
/// partition order. The worker may publish a byte-identical copy after a crash: the keyed form
/// drops copies, the endless one hands them out (dedupe by `outcomeID`).
public struct CancelOutcomes: AsyncSequence, Sendable {
    public typealias Element = ReceivedOutcome
    public typealias Failure = CancelClientError

    let configuration: CancelClientConfiguration
    let position: OutcomePosition
    /// nil: every outcome.
    let keys: Set<String>?
    let logger: Logger

    public struct AsyncIterator: AsyncIteratorProtocol, Sendable {
        public typealias Element = ReceivedOutcome
        public typealias Failure = CancelClientError

        let sequence: CancelOutcomes
        var source: OutcomeSource?
        /// Keys still without a terminal outcome (keyed form only).
        var open: Set<String>?
        /// Outcome ids handed out (keyed form only, so bounded by the keys).
        var handedOut: Set<String> = []

        public mutating func next() async throws(CancelClientError) -> ReceivedOutcome? {
            if let open = self.open, open.isEmpty {
                self.finish()
                return nil
            }
            if self.source == nil {
                self.source = try await OutcomeSource.open(
                    self.sequence.configuration, from: self.sequence.position, purpose: "outcomes",
                    logger: self.sequence.logger)
            }
            guard let source = self.source else { return nil }
            var messages = source.consumer.messages.makeAsyncIterator()
            while true {
                let message: KafkaConsumerMessage
                do {
                    guard let next = try await messages.next() else { return nil }
                    message = next
                } catch {
                    throw .kafka(error, "reading \(source.topic)")
                }
                guard let received = source.outcome(of: message, logger: self.sequence.logger) else { continue }
                guard let keys = self.sequence.keys else { return received }
                let outcome = received.outcome
                guard keys.contains(outcome.idempotencyKey), self.handedOut.insert(outcome.outcomeID).inserted else {
                    continue
                }
                if outcome.status.isTerminal { self.open?.remove(outcome.idempotencyKey) }
                return received
            }
        }

        public mutating func next(
            isolation actor: isolated (any Actor)?
        ) async throws(CancelClientError)
            -> ReceivedOutcome?
        {
            try await self.next()
        }

        private mutating func finish() {
            self.source?.consumer.close()
            self.source = nil
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(sequence: self, open: self.keys)
    }
}
