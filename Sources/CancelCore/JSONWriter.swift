/// Canonical JSON into a byte buffer: keys sorted, no whitespace, `/` unescaped — byte for byte
/// what `JSONEncoder` with `[.sortedKeys, .withoutEscapingSlashes]` writes, without its
/// reflection and boxing (issue 14). Outcomes and command fingerprints are written with it; both
/// are stored in the ledger and compared byte for byte, so the equality with `JSONEncoder` is a
/// contract: `JSONWriterDifferentialTests` holds it on random values.
public struct JSONWriter: Sendable {
    public private(set) var bytes: [UInt8] = []

    public init(capacity: Int = 512) {
        self.bytes.reserveCapacity(capacity)
    }

    /// Writes `value`: objects with their keys sorted.
    public mutating func write(_ value: JSONValue) {
        switch value {
        case .null: self.raw("null")
        case .bool(let flag): self.raw(flag ? "true" : "false")
        case .number(let number): self.write(number)
        case .string(let text): self.write(text)
        case .array(let items):
            self.bytes.append(UInt8(ascii: "["))
            for (index, item) in items.enumerated() {
                if index > 0 { self.bytes.append(UInt8(ascii: ",")) }
                self.write(item)
            }
            self.bytes.append(UInt8(ascii: "]"))
        case .object(let object):
            self.write(object)
        }
    }

    public mutating func write(_ object: [String: JSONValue]) {
        var members = ObjectWriter(taking: &self)
        for key in object.keys.sorted() { members.field(key, object[key]!) }
        self = members.end()
    }

    public mutating func write(_ text: String) {
        self.bytes.append(UInt8(ascii: "\""))
        var text = text
        // Runs of bytes that need no escape (nearly all of them) are appended whole, not byte
        // by byte: an append per byte checked the buffer's uniqueness each time.
        text.withUTF8 { utf8 in
            var start = 0
            for index in utf8.indices {
                let byte = utf8[index]
                guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
                if start < index { self.bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[start..<index])) }
                self.escape(byte)
                start = index + 1
            }
            if start < utf8.count { self.bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[start...])) }
        }
        self.bytes.append(UInt8(ascii: "\""))
    }

    private mutating func escape(_ byte: UInt8) {
        switch byte {
        case UInt8(ascii: "\""): self.raw("\\\"")
        case UInt8(ascii: "\\"): self.raw("\\\\")
        case 0x08: self.raw("\\b")
        case 0x0C: self.raw("\\f")
        case 0x0A: self.raw("\\n")
        case 0x0D: self.raw("\\r")
        case 0x09: self.raw("\\t")
        default:
            self.raw("\\u00")
            self.bytes.append(Self.hexDigits[Int(byte >> 4)])
            self.bytes.append(Self.hexDigits[Int(byte & 0x0F)])
        }
    }

    public mutating func write(_ number: Int) {
        self.raw(String(number))
    }

    /// As `JSONEncoder` writes a `Double`: its shortest description, without a `.0` suffix.
    public mutating func write(_ number: Double) {
        var text = number.description
        if text.hasSuffix(".0") { text.removeLast(2) }
        self.raw(text)
    }

    mutating func raw(_ text: String) {
        self.bytes.append(contentsOf: text.utf8)
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    /// An object's members, written in the order given: the caller gives them sorted by key.
    public struct ObjectWriter {
        private var writer: JSONWriter
        private var first = true

        /// Takes `writer`'s buffer over (so appending never copies it); `end()` gives it back.
        public init(taking writer: inout JSONWriter) {
            self.writer = writer
            writer.bytes = []
            self.writer.bytes.append(UInt8(ascii: "{"))
        }

        private mutating func key(_ key: String) {
            if !self.first { self.writer.bytes.append(UInt8(ascii: ",")) }
            self.first = false
            self.writer.write(key)
            self.writer.bytes.append(UInt8(ascii: ":"))
        }

        public mutating func field(_ key: String, _ value: JSONValue) {
            self.key(key)
            self.writer.write(value)
        }

        public mutating func field(_ key: String, _ value: String) {
            self.key(key)
            self.writer.write(value)
        }

        public mutating func field(_ key: String, _ value: Int) {
            self.key(key)
            self.writer.write(value)
        }

        public mutating func field(_ key: String, _ object: [String: JSONValue]) {
            self.key(key)
            self.writer.write(object)
        }

        /// Skipped when nil, as `JSONEncoder` skips an absent optional.
        public mutating func field(_ key: String, _ value: String?) {
            if let value { self.field(key, value) }
        }

        public mutating func field(_ key: String, _ value: Int?) {
            if let value { self.field(key, value) }
        }

        public mutating func field(_ key: String, _ object: [String: JSONValue]?) {
            if let object { self.field(key, object) }
        }

        /// A nested object, written by `body`.
        public mutating func field(_ key: String, object body: (inout ObjectWriter) -> Void) {
            self.key(key)
            var nested = ObjectWriter(taking: &self.writer)
            body(&nested)
            self.writer = nested.end()
        }

        public consuming func end() -> JSONWriter {
            self.writer.bytes.append(UInt8(ascii: "}"))
            return self.writer
        }
    }
}
