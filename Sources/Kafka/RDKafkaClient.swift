import Crdkafka
import Foundation
import Logging
import Synchronization

/// Owns one `rd_kafka_t`. Everything that touches the handle goes through here or through
/// the poll thread of its owner; nothing outside this module sees a C type.
///
/// Teardown order (in `deinit`): the queues we hold references to are released first, then
/// `rd_kafka_destroy`, and only then the callback context, because librdkafka may still call
/// the log callback while it destroys the handle. A handle librdkafka cannot destroy safely
/// (`keepHandleAtDeinit`) is not torn down at all.
final class RDKafkaClient: @unchecked Sendable {
    enum Kind {
        case producer, consumer
    }

    /// The `rd_kafka_t *`.
    let handle: OpaquePointer
    /// The queue `rd_kafka_poll`/`rd_kafka_consumer_poll` waits on, kept to wake it early.
    let pollQueue: OpaquePointer
    let callbacks: RDKafkaCallbacks
    private let kind: Kind
    private let retainedCallbacks: Unmanaged<RDKafkaCallbacks>
    private let destroyAtDeinit = Mutex(true)

    init(kind: Kind, properties: [String: String], callbacks: RDKafkaCallbacks) throws(KafkaError) {
        let conf = try RDKafkaClient.makeConfiguration(properties)
        let retained = Unmanaged.passRetained(callbacks)
        rd_kafka_conf_set_opaque(conf, retained.toOpaque())
        rd_kafka_conf_set_log_cb(conf, rdKafkaLogCallback)
        rd_kafka_conf_set_error_cb(conf, rdKafkaErrorCallback)
        if kind == .producer {
            rd_kafka_conf_set_dr_msg_cb(conf, rdKafkaDeliveryCallback)
        } else {
            rd_kafka_conf_set_rebalance_cb(conf, rdKafkaRebalanceCallback)
            rd_kafka_conf_set_offset_commit_cb(conf, rdKafkaOffsetCommitCallback)
        }

        var errorText = [CChar](repeating: 0, count: 512)
        let type = kind == .producer ? RD_KAFKA_PRODUCER : RD_KAFKA_CONSUMER
        guard let handle = rd_kafka_new(type, conf, &errorText, errorText.count) else {
            rd_kafka_conf_destroy(conf)
            retained.release()
            throw KafkaError.configuration(String(cBuffer: errorText))
        }
        self.handle = handle
        self.kind = kind
        self.callbacks = callbacks
        self.retainedCallbacks = retained
        if kind == .consumer {
            // Route the main queue (errors, logs, stats) into the consumer queue, so one poll
            // call on the poll thread serves everything.
            rd_kafka_poll_set_consumer(handle)
            self.pollQueue = rd_kafka_queue_get_consumer(handle)
        } else {
            self.pollQueue = rd_kafka_queue_get_main(handle)
        }
    }

    deinit {
        // Kept: its threads may still call back into the callback context, so that stays too.
        guard self.destroyAtDeinit.withLock({ $0 }) else { return }
        // On a thread of its own: `rd_kafka_destroy` joins librdkafka's threads, and librdkafka
        // 2.0's main thread has been seen never to end (spinning in its termination loop while
        // the consumer group did not reach its final state). Run on whatever thread released the
        // last reference, that took a cooperative thread for good (a CI run of the tests: one
        // of the two pool threads joined a `TopicSnapshot` consumer's main thread for minutes).
        let teardown = Teardown(
            handle: self.handle, pollQueue: self.pollQueue, isConsumer: self.kind == .consumer,
            callbacks: self.retainedCallbacks)
        Thread.detachNewThread { teardown.run() }
    }

    /// What `deinit` hands to the teardown thread.
    private struct Teardown: @unchecked Sendable {
        let handle: OpaquePointer
        let pollQueue: OpaquePointer
        let isConsumer: Bool
        let callbacks: Unmanaged<RDKafkaCallbacks>

        func run() {
            rd_kafka_queue_destroy(self.pollQueue)
            if self.isConsumer {
                // The consumer's poll thread closes it (leaves the group) before it stops. Were
                // `rd_kafka_destroy` to close it again — one that never finished its close — it
                // would run the rebalance callback of an owner being torn down and could wait
                // forever. So destroy never closes a consumer.
                rd_kafka_destroy_flags(self.handle, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE)
            } else {
                rd_kafka_destroy(self.handle)
            }
            self.callbacks.release()
        }
    }

    /// Leaves the handle to the process's exit instead of `rd_kafka_destroy`, for a state in
    /// which librdkafka would abort destroying it.
    func keepHandleAtDeinit() {
        self.destroyAtDeinit.withLock { $0 = false }
    }

    /// Interrupts a poll in progress on the poll thread, so submitted work runs at once.
    func wakePoll() {
        rd_kafka_queue_yield(self.pollQueue)
    }

    /// The first fatal error the client has raised, if any.
    func fatalError() -> KafkaError? {
        var text = [CChar](repeating: 0, count: 512)
        let code = rd_kafka_fatal_error(self.handle, &text, text.count)
        guard code != RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
        return KafkaError(rdCode: code, message: String(cBuffer: text), isFatal: true)
    }

    static func makeConfiguration(_ properties: [String: String]) throws(KafkaError) -> OpaquePointer {
        let conf = rd_kafka_conf_new()!
        var errorText = [CChar](repeating: 0, count: 512)
        for (key, value) in properties.sorted(by: { $0.key < $1.key }) {
            let result = rd_kafka_conf_set(conf, key, value, &errorText, errorText.count)
            if result != RD_KAFKA_CONF_OK {
                rd_kafka_conf_destroy(conf)
                // The message names the property, never its value (it may be a password).
                throw KafkaError.configuration("property \(key): \(String(cBuffer: errorText))")
            }
        }
        return conf
    }
}

/// What the C callbacks reach through `rd_kafka_opaque()`. Lives exactly as long as the handle.
final class RDKafkaCallbacks: Sendable {
    let logger: Logger
    /// Called on the poll thread with the rebalance event, before it returns to librdkafka.
    let rebalance:
        (@Sendable (OpaquePointer, rd_kafka_resp_err_t, UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) -> Void)?
    /// Called on the poll thread for errors librdkafka reports outside of any one request.
    let error: (@Sendable (KafkaError) -> Void)?
    /// The consumer group's join state as librdkafka last logged it (`GroupJoinState`); only
    /// tracked for consumers, which run with the `cgrp` debug context for it.
    let joinState = Mutex(GroupJoinState.initial)
    /// Whether debug lines go to the logger: false when the `cgrp` context is on only to track
    /// `joinState` (the application asked for no librdkafka debugging).
    let forwardsDebug: Bool
    /// Delivery reports served since the producer's poll thread last took the count: librdkafka
    /// serves a batch's reports as one event, so `rd_kafka_poll`'s count of events says nothing
    /// of how many records left the local queue.
    let deliveryReports = Atomic<Int>(0)

    init(
        logger: Logger,
        rebalance: (
            @Sendable (OpaquePointer, rd_kafka_resp_err_t, UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) ->
                Void
        )? = nil,
        error: (@Sendable (KafkaError) -> Void)? = nil,
        forwardsDebug: Bool = true
    ) {
        self.logger = logger
        self.rebalance = rebalance
        self.error = error
        self.forwardsDebug = forwardsDebug
    }

    static func from(_ handle: OpaquePointer?) -> RDKafkaCallbacks? {
        guard let handle, let opaque = rd_kafka_opaque(handle) else { return nil }
        return Unmanaged<RDKafkaCallbacks>.fromOpaque(opaque).takeUnretainedValue()
    }
}

// MARK: - C callbacks. They recover their context through `Unmanaged` and never throw.

private func rdKafkaLogCallback(
    handle: OpaquePointer?,
    level: Int32,
    facility: UnsafePointer<CChar>?,
    buffer: UnsafePointer<CChar>?
) {
    guard let callbacks = RDKafkaCallbacks.from(handle) else { return }
    if let facility, strcmp(facility, "CGRPJOINSTATE") == 0, let buffer,
        let state = GroupJoinState(logLine: String(cString: buffer))
    {
        callbacks.joinState.withLock { $0 = state }
    }
    if level >= 7 && !callbacks.forwardsDebug { return }
    let swiftLevel: Logger.Level
    switch level {
    case ...2: swiftLevel = .critical
    case 3: swiftLevel = .error
    case 4: swiftLevel = .warning
    case 5: swiftLevel = .notice
    case 6: swiftLevel = .info
    default: swiftLevel = .debug
    }
    let facilityText = facility.map { String(cString: $0) } ?? "-"
    let text = buffer.map { String(cString: $0) } ?? ""
    callbacks.logger.log(
        level: swiftLevel,
        "\(text)",
        metadata: ["rdkafka.facility": "\(facilityText)"],
        source: "librdkafka"
    )
}

private func rdKafkaErrorCallback(
    handle: OpaquePointer?,
    code: Int32,
    reason: UnsafePointer<CChar>?,
    opaque: UnsafeMutableRawPointer?
) {
    guard let callbacks = RDKafkaCallbacks.from(handle) else { return }
    let rdCode = rd_kafka_resp_err_t(rawValue: code)
    var error = KafkaError(rdCode: rdCode, message: reason.map { String(cString: $0) })
    if rdCode == RD_KAFKA_RESP_ERR__FATAL, let handle {
        var text = [CChar](repeating: 0, count: 512)
        let underlying = rd_kafka_fatal_error(handle, &text, text.count)
        error = KafkaError(rdCode: underlying, message: String(cBuffer: text), isFatal: true)
    }
    // Transport errors and "all brokers down" are routine while a broker restarts; librdkafka
    // reconnects on its own.
    let level: Logger.Level = error.isFatal ? .critical : (error.isRetriable ? .warning : .error)
    callbacks.logger.log(level: level, "librdkafka error", metadata: ["error": "\(error)"])
    callbacks.error?(error)
}

private func rdKafkaRebalanceCallback(
    handle: OpaquePointer?,
    code: rd_kafka_resp_err_t,
    partitions: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?,
    opaque: UnsafeMutableRawPointer?
) {
    guard let handle, let partitions, let callbacks = RDKafkaCallbacks.from(handle) else { return }
    if let rebalance = callbacks.rebalance {
        rebalance(handle, code, partitions)
    } else {
        // No handler: behave as librdkafka's default would.
        if code == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS {
            rd_kafka_assign(handle, partitions)
        } else {
            rd_kafka_assign(handle, nil)
        }
    }
}

private func rdKafkaOffsetCommitCallback(
    handle: OpaquePointer?,
    code: rd_kafka_resp_err_t,
    offsets: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?,
    opaque: UnsafeMutableRawPointer?
) {
    guard let callbacks = RDKafkaCallbacks.from(handle) else { return }
    if code != RD_KAFKA_RESP_ERR_NO_ERROR && code != RD_KAFKA_RESP_ERR__NO_OFFSET {
        callbacks.logger.warning(
            "asynchronous offset commit failed", metadata: ["error": "\(KafkaError(rdCode: code))"])
    }
}

private func rdKafkaDeliveryCallback(
    handle: OpaquePointer?,
    message: UnsafePointer<rd_kafka_message_t>?,
    opaque: UnsafeMutableRawPointer?
) {
    if let opaque {
        Unmanaged<RDKafkaCallbacks>.fromOpaque(opaque).takeUnretainedValue().deliveryReports.add(
            1, ordering: .relaxed)
    }
    guard let message, let privateOpaque = message.pointee._private else { return }
    let box = Unmanaged<DeliveryBox>.fromOpaque(privateOpaque).takeRetainedValue()
    let err = message.pointee.err
    if err == RD_KAFKA_RESP_ERR_NO_ERROR {
        let topic = String(cString: rd_kafka_topic_name(message.pointee.rkt))
        box.complete(
            .success(
                KafkaDeliveryReport(topic: topic, partition: message.pointee.partition, offset: message.pointee.offset))
        )
    } else {
        // The idempotent producer's fatal errors (an out-of-order sequence number, a fenced
        // producer id) reach the record's report with their own code.
        let fatal =
            err == RD_KAFKA_RESP_ERR__FATAL
            || (handle.map { rd_kafka_fatal_error($0, nil, 0) } ?? RD_KAFKA_RESP_ERR_NO_ERROR)
                != RD_KAFKA_RESP_ERR_NO_ERROR
        box.complete(.failure(KafkaError(rdCode: err, isFatal: fatal)))
    }
}

/// Carries one in-flight send's continuation through librdkafka as the message opaque.
final class DeliveryBox: Sendable {
    private let continuation: CheckedContinuation<Result<KafkaDeliveryReport, KafkaError>?, Never>

    init(_ continuation: CheckedContinuation<Result<KafkaDeliveryReport, KafkaError>?, Never>) {
        self.continuation = continuation
    }

    func complete(_ result: Result<KafkaDeliveryReport, KafkaError>) {
        self.continuation.resume(returning: result)
    }
}

// MARK: - Partition lists

extension RDKafkaClient {
    /// Builds an `rd_kafka_topic_partition_list_t`; the caller destroys it.
    static func makeList(
        _ entries: [KafkaTopicPartitionOffset]
    ) -> UnsafeMutablePointer<rd_kafka_topic_partition_list_t> {
        let list = rd_kafka_topic_partition_list_new(Int32(max(entries.count, 1)))!
        for entry in entries {
            let element = rd_kafka_topic_partition_list_add(list, entry.topic, entry.partition)!
            element.pointee.offset = entry.offset
        }
        return list
    }

    static func makeList(_ partitions: [KafkaTopicPartition]) -> UnsafeMutablePointer<rd_kafka_topic_partition_list_t> {
        self.makeList(
            partitions.map {
                KafkaTopicPartitionOffset(topicPartition: $0, offset: KafkaTopicPartitionOffset.invalidOffset)
            })
    }

    static func entries(of list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) -> [KafkaTopicPartitionOffset] {
        (0..<Int(list.pointee.cnt)).map { index in
            let element = list.pointee.elems[index]
            return KafkaTopicPartitionOffset(
                topic: String(cString: element.topic), partition: element.partition, offset: element.offset)
        }
    }

    /// The first per-partition error in a list librdkafka filled in, if any.
    static func firstError(of list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) -> KafkaError? {
        for index in 0..<Int(list.pointee.cnt) where list.pointee.elems[index].err != RD_KAFKA_RESP_ERR_NO_ERROR {
            let element = list.pointee.elems[index]
            return KafkaError(
                rdCode: element.err,
                message:
                    "\(String(cString: element.topic))[\(element.partition)]: \(String(cString: rd_kafka_err2str(element.err)))"
            )
        }
        return nil
    }
}

extension String {
    /// Text from a NUL-terminated C buffer librdkafka filled in.
    init(cBuffer: [CChar]) {
        let bytes = cBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        self.init(decoding: bytes, as: UTF8.self)
    }
}
