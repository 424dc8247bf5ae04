import Crypto

/// Outcome ids derived from the idempotency key, so every worker (and every retry, crash and
/// replay) computes the same id for the same key.
public enum OutcomeID {
    /// The terminal outcome's id: `oc_` + the first 128 bits of SHA-256 over the key, in hex.
    public static func terminal(idempotencyKey: String) -> String {
        "oc_" + Self.hash("cancel-outcome/v1/terminal/\(idempotencyKey)")
    }

    /// A `failed` outcome's id: distinct per dead-lettering of the key (`deadLetterCount`
    /// starts at 1), so a replay's later terminal outcome keeps the terminal id.
    public static func failed(idempotencyKey: String, deadLetterCount: Int) -> String {
        "of_" + Self.hash("cancel-outcome/v1/failed/\(deadLetterCount)/\(idempotencyKey)")
    }

    private static func hash(_ text: String) -> String {
        let digest = SHA256.hash(data: Array(text.utf8))
        return digest.prefix(16).map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }
}
