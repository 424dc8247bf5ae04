extension CancelCommand {
    /// The record value to send for this command, checked by the worker's own intake rules.
    ///
    /// There is one validator: `CommandDecoder.decode`, which the worker runs on every record it
    /// consumes. This encodes the command exactly as it will be sent and runs that decoder on
    /// those bytes, so a command accepted here is accepted by a worker with the same
    /// `max-command-bytes`, and one refused here would have been refused there (a provider whose
    /// order has another provider's shape, an empty or over-long identity field, a control
    /// character in a key, a futures id that is not a 64-bit integer, a record over the limit…).
    /// Upstream code calls this before anything is produced; `CancelClient.enqueue` does.
    public func validatedRecord(
        maxRecordBytes: Int = CommandDecoder.defaultMaxRecordBytes
    ) -> Result<[UInt8], CommandError> {
        let bytes = self.encoded()
        switch CommandDecoder(maxRecordBytes: maxRecordBytes).decode(bytes) {
        case .valid: return .success(bytes)
        case .invalid(_, let reason): return .failure(.invalid(reason))
        case .undecodable(let reason): return .failure(.undecodable(reason))
        }
    }
}
