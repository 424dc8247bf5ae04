import Crypto
import Foundation

/// CoinW's private-request signature: Base64(HMAC-SHA256(secret, timestamp + METHOD + path +
/// ("?" + query, if any) + body)), over exactly the bytes sent.
public enum FuturesSigner {
    public static func sign(
        secret: String, timestamp: String, method: String, path: String, query: String? = nil, body: [UInt8]
    ) -> String {
        var message = Array((timestamp + method.uppercased() + path).utf8)
        if let query, !query.isEmpty { message += Array(("?" + query).utf8) }
        message += body
        let mac = HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: Array(secret.utf8)))
        return Data(mac).base64EncodedString()
    }
}
