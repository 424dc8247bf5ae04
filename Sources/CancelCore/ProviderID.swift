/// The five provider systems a command can name (`provider` in a cancel command).
public enum ProviderID: String, Sendable, Hashable, Codable, CaseIterable, CustomStringConvertible {
    /// feee.io — TRON energy rental: `POST /open/v2/order/cancel`.
    case feee
    /// Fungies — digital goods store: `PATCH /v0/orders/{orderIdOrNumber}/cancel`.
    case fungies
    /// Stove Protocol Taker API — reports a cancellation decision: `POST /api/v1/orders/cancel-result`.
    case taker
    /// FastPOD — print on demand: `POST /v1/orders/{id}/cancel`.
    case fastpod
    /// CoinW perpetual futures: `DELETE /v1/perpum/order`, signed; 10 requests/s per user.
    case futures

    public var description: String { self.rawValue }
}
