/// The version `cancel-worker --version` prints; the one place it is defined.
public enum CancelWorkerVersion {
    public static let current = "0.1.0"
}
