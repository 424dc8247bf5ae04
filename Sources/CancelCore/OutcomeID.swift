import Crypto
import Foundation

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

    /// The `rejected` outcome of a command that reused a key for a different order: its own
    /// id (per key and fingerprint), so the key's terminal outcome keeps the terminal id.
    public static func reused(idempotencyKey: String, fingerprint: String) -> String {
        "oc_" + Self.hash("cancel-outcome/v1/reused/\(fingerprint)/\(idempotencyKey)")
    }

    /// The `rejected` outcome of an invalid command: its own id (per key and payload), so an
    /// invalid version never takes the id of the key's terminal outcome.
    public static func invalid(idempotencyKey: String, payload: [UInt8]) -> String {
        "oc_" + Self.hash("cancel-outcome/v1/invalid/\(Self.hash(bytes: payload))/\(idempotencyKey)")
    }

    /// What a command asks, as 32 hex digits: provider, account and order (not the command id,
    /// times or metadata — a resend of the same cancel has the same fingerprint).
    /// The order is written as canonical JSON (`JSONWriter`: sorted keys, byte for byte what
    /// `JSONEncoder` wrote when the ledger's fingerprints were first stored).
    public static func fingerprint(of identity: CommandIdentity) -> String {
        var writer = JSONWriter(capacity: 128)
        writer.raw(identity.provider)
        writer.raw("\u{1F}")
        writer.raw(identity.account)
        writer.raw("\u{1F}")
        writer.write(identity.order ?? [:])
        return Self.hash(bytes: writer.bytes)
    }

    private static func hash(bytes: [UInt8]) -> String {
        Self.hex(SHA256.hash(data: bytes))
    }

    private static func hash(_ text: String) -> String {
        Self.hex(SHA256.hash(data: Array(text.utf8)))
    }

    /// The digest's first 16 bytes as 32 lowercase hex digits, written in one buffer (a string
    /// per byte and a join cost more than the hash itself; issue 14).
    private static func hex(_ digest: SHA256.Digest) -> String {
        let digits: StaticString = "0123456789abcdef"
        return String(unsafeUninitializedCapacity: 32) { buffer in
            digits.withUTF8Buffer { digits in
                for (index, byte) in digest.prefix(16).enumerated() {
                    buffer[2 * index] = digits[Int(byte >> 4)]
                    buffer[2 * index + 1] = digits[Int(byte & 0x0F)]
                }
            }
            return 32
        }
    }
}
