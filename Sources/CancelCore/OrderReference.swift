/// The provider's own reference to the order to cancel; its shape depends on the provider
/// (the `order` object of a cancel command).
public enum OrderReference: Sendable, Hashable {
    /// feee.io: `{"order_no": "2304170329503866885309"}`.
    case feee(orderNo: String)
    /// Fungies: `{"order_id_or_number": "3c90c3cc-…"}`: the order's UUID or its number.
    case fungies(orderIDOrNumber: String)
    /// Taker API: the whole decision the taker reports for a maker's cancellation request.
    case taker(orderHash: String, takerAddress: String, cancellationSuccess: Bool, message: String)
    /// FastPOD: `{"id": "F237-120723-000001"}`: FastPOD's order id, not the caller's reference.
    case fastpod(id: String)
    /// CoinW futures: `{"id": "33308749002645666"}`: a 64-bit order id, kept as decimal text so
    /// it never passes through a floating-point number.
    case futures(id: String)

    public var provider: ProviderID {
        switch self {
        case .feee: .feee
        case .fungies: .fungies
        case .taker: .taker
        case .fastpod: .fastpod
        case .futures: .futures
        }
    }

    /// The value that identifies the order at the provider (for logs, metrics labels are never this).
    public var orderID: String {
        switch self {
        case .feee(let orderNo): orderNo
        case .fungies(let orderIDOrNumber): orderIDOrNumber
        case .taker(let orderHash, _, _, _): orderHash
        case .fastpod(let id): id
        case .futures(let id): id
        }
    }

    /// The `order` object as it appears in commands and outcomes.
    public var json: [String: JSONValue] {
        switch self {
        case .feee(let orderNo):
            ["order_no": .string(orderNo)]
        case .fungies(let orderIDOrNumber):
            ["order_id_or_number": .string(orderIDOrNumber)]
        case .taker(let orderHash, let takerAddress, let cancellationSuccess, let message):
            [
                "order_hash": .string(orderHash), "taker_address": .string(takerAddress),
                "cancellation_success": .bool(cancellationSuccess), "message": .string(message),
            ]
        case .fastpod(let id):
            ["id": .string(id)]
        case .futures(let id):
            ["id": .string(id)]
        }
    }

    /// Reads the `order` object of a command for `provider`, or explains what is wrong.
    public static func parse(_ order: [String: JSONValue], provider: ProviderID) -> Result<OrderReference, CommandError>
    {
        // `inPath`: the provider's URL carries the value as a path segment, where `.` and `..`
        // are steps (`/v1/orders/../cancel` resolves to `/v1/cancel`, with our credentials), and
        // their percent-encoded forms are the same URI (RFC 3986, 2.3): no order has such an id.
        func text(_ field: String, maxLength: Int = 256, inPath: Bool = false) -> Result<String, CommandError> {
            guard let value = order[field] else {
                return .failure(.invalid("order.\(field) is required for \(provider)"))
            }
            guard case .string(let string) = value else { return .failure(.invalid("order.\(field) must be a string")) }
            guard !string.isEmpty, string.utf8.count <= maxLength else {
                return .failure(.invalid("order.\(field) must have 1 to \(maxLength) bytes"))
            }
            guard !inPath || (string != "." && string != "..") else {
                return .failure(
                    .invalid("order.\(field) may not be \".\" or \"..\" (a step in the provider's URL path)"))
            }
            return .success(string)
        }
        switch provider {
        case .feee:
            return text("order_no").map { .feee(orderNo: $0) }
        case .fungies:
            return text("order_id_or_number", inPath: true).map { .fungies(orderIDOrNumber: $0) }
        case .fastpod:
            return text("id", inPath: true).map { .fastpod(id: $0) }
        case .futures:
            // The exchange's id is a Long; accept a decimal string, or an integer JSON number
            // small enough to be exact in a double.
            switch order["id"] {
            case .string(let id) where Int64(id) != nil && !id.hasPrefix("+"):
                return .success(.futures(id: id))
            case .number(let number) where number.rounded() == number && abs(number) < 9_007_199_254_740_992:
                return .success(.futures(id: String(Int64(number))))
            case .none:
                return .failure(.invalid("order.id is required for futures"))
            default:
                return .failure(.invalid("order.id must be a 64-bit integer (as a decimal string)"))
            }
        case .taker:
            let success: Bool
            switch order["cancellation_success"] {
            case .bool(let value): success = value
            case .none: return .failure(.invalid("order.cancellation_success is required for taker"))
            default: return .failure(.invalid("order.cancellation_success must be a boolean"))
            }
            return text("order_hash").flatMap { hash in
                text("taker_address").flatMap { address in
                    text("message", maxLength: 1024).map { message in
                        .taker(orderHash: hash, takerAddress: address, cancellationSuccess: success, message: message)
                    }
                }
            }
        }
    }
}
