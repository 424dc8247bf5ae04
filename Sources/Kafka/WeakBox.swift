import Synchronization

/// A weak reference that can be captured by `@Sendable` closures.
final class WeakBox<T: AnyObject & Sendable>: Sendable {
    private let storage = Mutex<WeakStorage?>(nil)

    private struct WeakStorage: @unchecked Sendable {
        weak var value: T?
    }

    var value: T? {
        get { self.storage.withLock { $0?.value } }
        set { self.storage.withLock { $0 = WeakStorage(value: newValue) } }
    }
}
