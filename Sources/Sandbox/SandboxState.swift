import CancelCore
import DequeModule
import Foundation
import Synchronization

/// The sandbox's memory: order books, faults, counters and the request log, behind one lock.
/// Every request takes the lock a couple of times for O(1) work.
final class SandboxState: Sendable {
    private struct State {
        var orders: [ProviderID: [String: SandboxOrder]] = [:]
        var aliases: [ProviderID: [String: String]] = [:]
        var faults: [Int: SandboxFault] = [:]
        var nextFaultID = 1
        var log = Deque<SandboxRequestRecord>()
        var total = 0
        var byProvider: [String: Int] = [:]
        var byAccount: [String: Int] = [:]
        var perSecond: [String: [Int64: Int]] = [:]
        var recent: [String: Deque<Date>] = [:]
        var maxRate: [String: Int] = [:]
        var violations: [String: Int] = [:]
        var results: [String: [String: Int]] = [:]
        var concurrent: [String: Int] = [:]
        var maxConcurrent: [String: Int] = [:]
        var contractViolations: [String: Int] = [:]
    }

    private let state = Mutex(State())
    let configuration: SandboxConfiguration
    /// api key → account, per provider (built once).
    private let accountByKey: [ProviderID: [String: String]]

    init(configuration: SandboxConfiguration) {
        self.configuration = configuration
        var index: [ProviderID: [String: String]] = [:]
        for (provider, accounts) in configuration.accounts {
            for (account, credentials) in accounts { index[provider, default: [:]][credentials.key.reveal()] = account }
        }
        self.accountByKey = index
    }

    func account(for key: String?, provider: ProviderID) -> String? {
        key.flatMap { self.accountByKey[provider]?[$0] }
    }

    func credentials(provider: ProviderID, account: String) -> ProviderCredentials? {
        self.configuration.accounts[provider]?[account]
    }

    // MARK: Orders

    func seed(_ orders: [SandboxOrder]) {
        self.state.withLock { state in
            for order in orders {
                state.orders[order.provider, default: [:]][order.id] = order
                if let number = order.number { state.aliases[order.provider, default: [:]][number] = order.id }
            }
        }
    }

    func order(_ provider: ProviderID, _ reference: String) -> SandboxOrder? {
        self.state.withLock { state in
            let id = state.aliases[provider]?[reference] ?? reference
            return state.orders[provider]?[id]
        }
    }

    /// Looks the order up (creating an open one when `openByDefault`) and lets `change` decide
    /// the answer and the new status, atomically.
    func transition<T>(_ provider: ProviderID, _ reference: String, _ change: (inout SandboxOrder?) -> T) -> T {
        self.state.withLock { state in
            let id = state.aliases[provider]?[reference] ?? reference
            var order = state.orders[provider]?[id]
            if order == nil, self.configuration.openByDefault {
                order = SandboxOrder(provider: provider, id: id)
            }
            let result = change(&order)
            state.orders[provider, default: [:]][id] = order
            return result
        }
    }

    // MARK: Faults

    func addFault(_ fault: SandboxFault) -> Int {
        self.state.withLock { state in
            let id = state.nextFaultID
            state.nextFaultID += 1
            state.faults[id] = fault
            return id
        }
    }

    func clearFaults() {
        self.state.withLock { $0.faults.removeAll() }
    }

    /// The first matching fault (consuming one of its `count`), if any.
    func fault(provider: ProviderID, orderID: String?, account: String?) -> SandboxFault.Kind? {
        self.state.withLock { state in
            guard !state.faults.isEmpty else { return nil }
            for id in state.faults.keys.sorted() {
                guard var fault = state.faults[id],
                    fault.matches(provider: provider, orderID: orderID, account: account)
                else { continue }
                guard fault.probability >= 1 || Double.random(in: 0..<1) < fault.probability else { continue }
                if let count = fault.count {
                    if count <= 1 {
                        state.faults[id] = nil
                    } else {
                        fault.count = count - 1
                        state.faults[id] = fault
                    }
                }
                return fault.kind
            }
            return nil
        }
    }

    // MARK: Counting

    /// Counts an arriving request for a known user and tells whether it is over `limit` per second.
    ///
    /// `now` is when the request arrived; requests reach this count in the order their handlers
    /// run, which is not always that order (each first sleeps its own jitter and latency). So
    /// arrivals are kept sorted, and the count is the densest one-second window that holds `now`.
    func arrive(provider: ProviderID, account: String, now: Date, limit: Int?) -> Bool {
        self.state.withLock { state in
            let user = "\(provider.rawValue):\(account)"
            var window = state.recent[user] ?? Deque()
            var index = window.endIndex
            while index > window.startIndex, window[index - 1] > now { index -= 1 }
            window.insert(now, at: index)
            // Arrivals may be counted up to a few seconds late; older ones can share no second with them.
            let newest = window.last ?? now
            while let first = window.first, newest.timeIntervalSince(first) >= 5 { window.removeFirst() }
            state.recent[user] = window
            // Each second that holds `now` starts at an arrival in (now - 1 s, now]; one pass with
            // two indexes counts them all (the window is sorted).
            var densest = 0
            var end = window.startIndex
            for start in window.indices where window[start] <= now && now.timeIntervalSince(window[start]) < 1 {
                end = max(end, start)
                while end < window.endIndex, window[end].timeIntervalSince(window[start]) < 1 { end += 1 }
                densest = max(densest, end - start)
            }
            state.maxRate[user] = max(state.maxRate[user] ?? 0, densest)
            guard let limit, densest > limit else { return false }
            state.violations[user, default: 0] += 1
            return true
        }
    }

    func record(_ record: SandboxRequestRecord) {
        self.state.withLock { state in
            for violation in record.contractViolations ?? [] { state.contractViolations[violation, default: 0] += 1 }
            state.total += 1
            state.byProvider[record.provider.rawValue, default: 0] += 1
            state.byAccount["\(record.provider.rawValue):\(record.account ?? "?")", default: 0] += 1
            let second = Int64(record.at.timeIntervalSince1970)
            state.perSecond[record.provider.rawValue, default: [:]][second, default: 0] += 1
            if state.perSecond[record.provider.rawValue]!.count > 3_600 {
                state.perSecond[record.provider.rawValue] = state.perSecond[record.provider.rawValue]!.filter {
                    $0.key > second - 3_600
                }
            }
            state.results[record.provider.rawValue, default: [:]][record.result, default: 0] += 1
            state.log.append(record)
            if state.log.count > self.configuration.requestLogCapacity { state.log.removeFirst() }
        }
    }

    /// A request to `provider` is being served (until `leave`): for the highest concurrency seen.
    func enter(_ provider: ProviderID) {
        self.state.withLock { state in
            let now = state.concurrent[provider.rawValue, default: 0] + 1
            state.concurrent[provider.rawValue] = now
            state.maxConcurrent[provider.rawValue] = max(now, state.maxConcurrent[provider.rawValue] ?? 0)
        }
    }

    func leave(_ provider: ProviderID) {
        self.state.withLock { $0.concurrent[provider.rawValue, default: 1] -= 1 }
    }

    func stats() -> SandboxStats {
        self.state.withLock { state in
            SandboxStats(
                total: state.total,
                byProvider: state.byProvider,
                byAccount: state.byAccount,
                perSecond: state.perSecond.mapValues {
                    Dictionary(uniqueKeysWithValues: $0.map { (String($0.key), $0.value) })
                },
                maxRatePerUser: state.maxRate,
                rateLimitViolations: state.violations,
                results: state.results,
                maxConcurrentRequests: state.maxConcurrent,
                contractViolations: state.contractViolations
            )
        }
    }

    func requests(provider: ProviderID?, account: String?, orderID: String?, limit: Int?) -> [SandboxRequestRecord] {
        self.state.withLock { state in
            var matching: [SandboxRequestRecord] = state.log.filter { record in
                (provider == nil || record.provider == provider) && (account == nil || record.account == account)
                    && (orderID == nil || record.orderID == orderID)
            }
            if let limit, matching.count > limit { matching = Array(matching.suffix(limit)) }
            return matching
        }
    }

    func reset() {
        self.state.withLock { state in
            state.log.removeAll()
            state.total = 0
            state.byProvider = [:]
            state.byAccount = [:]
            state.perSecond = [:]
            state.recent = [:]
            state.maxRate = [:]
            state.violations = [:]
            state.results = [:]
            state.maxConcurrent = state.concurrent
            state.contractViolations = [:]
        }
    }
}
