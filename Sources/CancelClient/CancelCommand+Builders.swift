public import CancelCore
public import Foundation

/// Commands built from a provider's own order reference. The provider comes from the order, so
/// a command cannot name one provider and carry another's order shape, and each builder takes
/// exactly the fields its provider needs (a futures id is an `Int64`, never free text).
///
///     let command = CancelCommand.futures(orderID: 33_308_749_002_645_666, account: "trader-42")
///     let outcome = try await client.cancel(command, timeout: .seconds(30))
extension CancelCommand {
    /// A command for `order`'s provider. `idempotencyKey` defaults to `<provider>-<order id>`
    /// (one cancel per order); the command id is fresh for every command.
    public init(
        order: OrderReference,
        account: String,
        idempotencyKey: String? = nil,
        commandID: String = UUID().uuidString.lowercased(),
        requestedAt: Date = Date(),
        deadline: Date? = nil,
        orderCreatedAt: Date? = nil,
        correlationID: String? = nil,
        metadata: [String: JSONValue]? = nil
    ) {
        self.init(
            commandID: commandID,
            idempotencyKey: idempotencyKey ?? order.defaultIdempotencyKey,
            provider: order.provider,
            account: account,
            order: order,
            requestedAt: requestedAt,
            deadline: deadline,
            orderCreatedAt: orderCreatedAt,
            correlationID: correlationID,
            metadata: metadata
        )
    }

    /// feee.io: cancel an energy rental order by its `order_no`. feee only cancels orders older
    /// than 5 minutes: pass `orderCreatedAt` so an early command is retried at the right time.
    public static func feee(
        orderNo: String, account: String, idempotencyKey: String? = nil, orderCreatedAt: Date? = nil
    ) -> CancelCommand {
        CancelCommand(
            order: .feee(orderNo: orderNo), account: account, idempotencyKey: idempotencyKey,
            orderCreatedAt: orderCreatedAt)
    }

    /// Fungies: cancel a store order by its UUID or its order number.
    public static func fungies(orderIDOrNumber: String, account: String, idempotencyKey: String? = nil) -> CancelCommand
    {
        CancelCommand(
            order: .fungies(orderIDOrNumber: orderIDOrNumber), account: account, idempotencyKey: idempotencyKey)
    }

    /// The taker API: report the taker's decision on a maker's cancellation request
    /// (`cancellationSuccess: true` unlocks the order). Give the request's `expires_at` as the deadline.
    public static func taker(
        orderHash: String, takerAddress: String, cancellationSuccess: Bool, message: String, account: String,
        idempotencyKey: String? = nil, deadline: Date? = nil
    ) -> CancelCommand {
        CancelCommand(
            order: .taker(
                orderHash: orderHash, takerAddress: takerAddress, cancellationSuccess: cancellationSuccess,
                message: message),
            account: account, idempotencyKey: idempotencyKey, deadline: deadline)
    }

    /// FastPOD: cancel by FastPOD's own order id (e.g. `F237-120723-000001`), not your reference id.
    public static func fastpod(id: String, account: String, idempotencyKey: String? = nil) -> CancelCommand {
        CancelCommand(order: .fastpod(id: id), account: account, idempotencyKey: idempotencyKey)
    }

    /// The futures exchange: cancel an order by its 64-bit id (sent as decimal text, so it
    /// never passes through a floating-point number). Limited to 10 calls/s per account.
    public static func futures(orderID: Int64, account: String, idempotencyKey: String? = nil) -> CancelCommand {
        CancelCommand(order: .futures(orderID: orderID), account: account, idempotencyKey: idempotencyKey)
    }
}

extension OrderReference {
    /// A futures order by its numeric id: the typed way to build `.futures(id:)`.
    public static func futures(orderID: Int64) -> OrderReference { .futures(id: String(orderID)) }

    /// `<provider>-<order id>`: the idempotency key of "cancel this order", used when the
    /// caller gives none (the builders, `cancel-worker enqueue` and `cancel`).
    public var defaultIdempotencyKey: String { "\(self.provider.rawValue)-\(self.orderID)" }
}
