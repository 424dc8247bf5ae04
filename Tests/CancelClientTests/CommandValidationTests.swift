import CancelClient
import CancelCore
import Foundation
import Testing

@Suite("One validator: what the client accepts is what the worker's intake accepts")
struct CommandValidationTests {
    static let builders: [CancelCommand] = [
        .feee(orderNo: "2304170329503866885309", account: "demo-1", orderCreatedAt: Date(timeIntervalSince1970: 1e9)),
        .fungies(orderIDOrNumber: "3c90c3cc-0d44-4b50-8888-8dd25736052a", account: "demo-1"),
        .taker(
            orderHash: "0xab", takerAddress: "0xcd", cancellationSuccess: false, message: "in trade", account: "demo-1",
            deadline: Date(timeIntervalSinceNow: 60)),
        .fastpod(id: "F237-120723-000001", account: "demo-1", idempotencyKey: "my-key"),
        .futures(orderID: 33_308_749_002_645_666, account: "trader-42"),
    ]

    @Test("every provider's builder gives a command the worker decodes back to the same command", arguments: builders)
    func buildersPassIntake(command: CancelCommand) throws {
        let value = try command.validatedRecord().get()
        guard case .valid(let decoded) = CommandDecoder().decode(value) else {
            Issue.record("the worker's decoder refused \(String(decoding: value, as: UTF8.self))")
            return
        }
        #expect(decoded.provider == command.order.provider && decoded.order == command.order)
        #expect(decoded.idempotencyKey == command.idempotencyKey && decoded.account == command.account)
        #expect(decoded.kafkaKey == "\(command.provider.rawValue):\(command.account)")
    }

    @Test("the default idempotency key is <provider>-<order id>; the futures id stays exact decimal text")
    func defaults() {
        #expect(CancelCommand.fastpod(id: "F-1", account: "a").idempotencyKey == "fastpod-F-1")
        let futures = CancelCommand.futures(orderID: 9_007_199_254_740_993, account: "a")
        #expect(futures.order.json["id"] == .string("9007199254740993"), "2^53 + 1 would not survive a double")
        #expect(futures.idempotencyKey == "futures-9007199254740993")
    }

    @Test(
        "a command the worker would refuse is refused with the worker's reason",
        arguments: [
            (
                CancelCommand(
                    commandID: "c", idempotencyKey: "k", provider: .fastpod, account: "a", order: .feee(orderNo: "1"),
                    requestedAt: Date()), "order.id is required for fastpod"
            ),
            (CancelCommand(order: .futures(id: "12abc"), account: "a"), "64-bit integer"),
            (CancelCommand(order: .fastpod(id: "F-1"), account: ""), "account must have 1 to 128 bytes"),
            (CancelCommand(order: .fastpod(id: "F-1"), account: "a", idempotencyKey: "k\u{7}"), "control characters"),
            (
                CancelCommand(
                    order: .fastpod(id: "F-1"), account: "a", idempotencyKey: String(repeating: "k", count: 257)),
                "idempotency_key must have 1 to 256 bytes"
            ),
            (
                CancelCommand(
                    order: .fastpod(id: "F-1"), account: "a", correlationID: String(repeating: "c", count: 300)),
                "correlation_id must have at most 256 bytes"
            ),
            (CancelCommand(order: .fungies(orderIDOrNumber: ""), account: "a"), "order.order_id_or_number must have"),
            // Put in the provider's URL path, `..` would be a step up (`/v1/orders/../cancel`,
            // which servers resolve to `/v1/cancel`), and `%2E%2E` is the same URI (RFC 3986, 2.3).
            (CancelCommand(order: .fastpod(id: ".."), account: "a"), "order.id may not be \".\" or \"..\""),
            (
                CancelCommand(order: .fungies(orderIDOrNumber: "."), account: "a"),
                "order.order_id_or_number may not be \".\" or \"..\""
            ),
        ])
    func refused(command: CancelCommand, reason: String) {
        switch command.validatedRecord() {
        case .success(let value):
            Issue.record("accepted \(String(decoding: value.prefix(200), as: UTF8.self))")
        case .failure(let error):
            #expect(error.description.contains(reason), "\(error)")
        }
    }

    @Test("the size limit is the worker's max-command-bytes (64 KiB by default)")
    func limit() {
        let command = CancelCommand(
            order: .fastpod(id: "F-1"), account: "a", metadata: ["note": .string(String(repeating: "x", count: 3_000))])
        #expect((try? command.validatedRecord().get()) != nil)
        #expect((try? command.validatedRecord(maxRecordBytes: 2_048).get()) == nil)
        var large = command
        large.metadata = ["note": .string(String(repeating: "x", count: 70_000))]
        guard case .failure(let error) = large.validatedRecord() else {
            Issue.record("a 70 KB command was accepted")
            return
        }
        #expect(error.description.contains("exceeds the 65536-byte limit"))
    }
}
