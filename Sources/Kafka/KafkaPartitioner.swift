/// The Java client's default partitioner for keyed records (`murmur2_random` in librdkafka):
/// partition = (murmur2(key) & 0x7fffffff) mod partition count. Upstream services and the
/// worker must agree on it, so that one user's commands share one partition.
public enum KafkaPartitioner {
    /// Kafka's 32-bit murmur2 (seed 0x9747b28c), as in `org.apache.kafka.common.utils.Utils`.
    public static func murmur2(_ data: [UInt8]) -> UInt32 {
        let m: UInt32 = 0x5bd1_e995
        let length = data.count
        var h: UInt32 = 0x9747_b28c ^ UInt32(truncatingIfNeeded: length)
        var index = 0
        while index + 4 <= length {
            var k =
                UInt32(data[index]) | UInt32(data[index + 1]) << 8 | UInt32(data[index + 2]) << 16 | UInt32(
                    data[index + 3]) << 24
            k = k &* m
            k ^= k >> 24
            k = k &* m
            h = h &* m
            h ^= k
            index += 4
        }
        let tail = length & 3
        if tail == 3 { h ^= UInt32(data[index + 2]) << 16 }
        if tail >= 2 { h ^= UInt32(data[index + 1]) << 8 }
        if tail >= 1 {
            h ^= UInt32(data[index])
            h = h &* m
        }
        h ^= h >> 13
        h = h &* m
        h ^= h >> 15
        return h
    }

    /// The partition a keyed record goes to among `partitionCount`.
    public static func partition(forKey key: [UInt8], partitionCount: Int) -> Int32 {
        precondition(partitionCount > 0, "a topic has at least one partition")
        return Int32((murmur2(key) & 0x7fff_ffff) % UInt32(partitionCount))
    }
}
