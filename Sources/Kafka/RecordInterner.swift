import Crdkafka

/// Shares the storage of what consecutive records repeat: the topic name, and a header list
/// equal to the previous record's (the same `content-type` on every record, say). A record then
/// costs its key and value and no separate topic or header allocations (issue 14: bytes per
/// waiting command, allocations per command). The poll thread compares the C strings and bytes
/// first and builds a new value only when they differ.
struct RecordInterner {
    /// The topic handle's address (a bit pattern: the interner holds no pointer).
    private var topicHandle: UInt = 0
    private var topic = ""
    private var headers: [KafkaHeader] = []

    /// The name of the topic `handle` (a librdkafka topic handle), the previous one if equal.
    mutating func topic(_ handle: OpaquePointer?) -> String {
        let name = rd_kafka_topic_name(handle)!
        let address = UInt(bitPattern: handle.map { Int(bitPattern: $0) } ?? 0)
        if address == self.topicHandle && Self.equals(self.topic, name) { return self.topic }
        self.topicHandle = address
        self.topic = String(cString: name)
        return self.topic
    }

    /// The headers of `message`, the previous record's list if equal.
    mutating func headers(_ message: UnsafeMutablePointer<rd_kafka_message_t>) -> [KafkaHeader] {
        var list: OpaquePointer? = nil
        guard rd_kafka_message_headers(message, &list) == RD_KAFKA_RESP_ERR_NO_ERROR, let list else { return [] }
        var name: UnsafePointer<CChar>? = nil
        var value: UnsafeRawPointer? = nil
        var size = 0
        var same = true
        var count = 0
        while rd_kafka_header_get_all(list, count, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
            if same {
                same =
                    count < self.headers.count && Self.equals(self.headers[count], name: name, value: value, size: size)
            }
            count += 1
        }
        if same && count == self.headers.count { return self.headers }
        var headers: [KafkaHeader] = []
        headers.reserveCapacity(count)
        for index in 0..<count {
            _ = rd_kafka_header_get_all(list, index, &name, &value, &size)
            headers.append(
                KafkaHeader(
                    name: name.map { String(cString: $0) } ?? "",
                    value: value.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) }))
        }
        self.headers = headers
        return headers
    }

    private static func equals(_ text: String, _ cString: UnsafePointer<CChar>) -> Bool {
        var index = 0
        for byte in text.utf8 {
            guard UInt8(bitPattern: cString[index]) == byte else { return false }
            index += 1
        }
        return cString[index] == 0
    }

    private static func equals(
        _ header: KafkaHeader, name: UnsafePointer<CChar>?, value: UnsafeRawPointer?, size: Int
    ) -> Bool {
        guard let name, Self.equals(header.name, name) else { return false }
        switch (header.value, value) {
        case (nil, nil): return true
        case (let bytes?, let pointer?):
            return bytes.count == size && bytes.elementsEqual(UnsafeRawBufferPointer(start: pointer, count: size))
        default: return false
        }
    }
}
