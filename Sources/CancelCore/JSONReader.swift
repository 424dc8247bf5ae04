/// A JSON parser over a record's bytes (RFC 8259), into `JSONValue` (commands) or another
/// `JSONTree` (providers' answers, `AnswerJSON`): one pass, no `Data`, no Foundation decoder, no
/// intermediate tree. The command decoder's hot path (issue 14): Foundation's `JSONDecoder` spent
/// ~19 µs on a 300-byte command, this reader ~2 µs (`make microbench`).
///
/// Strict where RFC 8259 is: one value with optional whitespace around it, strings without raw
/// control characters and with valid escapes (a `\u` surrogate must be paired), numbers in JSON's
/// grammar (no leading zero) and finite as a `Double`, no trailing comma, valid UTF-8 — Foundation
/// accepts `[1,]` and `01`; commands written by any JSON library never contain them. A key given
/// twice keeps its last value, as in most parsers (Foundation keeps the first). Nesting deeper
/// than `maxDepth` is refused, so a hostile record cannot exhaust the stack.
public struct JSONReader {
    /// Why the bytes are not JSON.
    public enum Failure: Error, Sendable, Hashable {
        /// The bytes are not UTF-8 text.
        case notUTF8
        /// UTF-8, but not one JSON value.
        case notJSON
    }

    /// Objects and arrays nested deeper than this are refused (`JSONDecoder` allows 512).
    public static let maxDepth = 512

    /// The JSON value `bytes` hold.
    public static func parse(_ bytes: [UInt8]) -> Result<JSONValue, Failure> {
        Self.parse(bytes, as: JSONValue.self)
    }

    /// The JSON value `bytes` hold, built as `Tree` (a provider's answer keeps each number's
    /// spelling, a command does not).
    @inlinable
    public static func parse<Tree: JSONTree>(_ bytes: [UInt8], as tree: Tree.Type) -> Result<Tree, Failure> {
        let result = bytes.withUnsafeBufferPointer { buffer -> Result<Tree, Failure> in
            var parser = Parser<Tree>(buffer)
            do throws(JSONReader.Failure) {
                let value = try parser.value(depth: 0)
                parser.skipWhitespace()
                guard parser.index == buffer.count else { throw .notJSON }
                return .success(value)
            } catch {
                return .failure(error)
            }
        }
        // Bytes that are not UTF-8 are reported as such wherever the parse stopped.
        if case .failure(.notJSON) = result, !Self.isUTF8(bytes) { return .failure(.notUTF8) }
        return result
    }

    @usableFromInline
    static func isUTF8(_ bytes: [UInt8]) -> Bool {
        String(validating: bytes, as: UTF8.self) != nil
    }
}

/// What `JSONReader` builds a parse into.
public protocol JSONTree {
    /// An object's members as the tree keeps them: a dictionary by default; a tree that only
    /// looks a few keys up in small objects may keep them in order (no hashing).
    associatedtype Members = [String: Self]

    static var null: Self { get }
    static func bool(_ value: Bool) -> Self
    /// A number, from its literal (already in JSON's grammar); nil refuses it (not JSON).
    static func number(literal: UnsafeBufferPointer<UInt8>) -> Self?
    static func string(_ value: String) -> Self
    static func array(_ elements: [Self]) -> Self
    static func object(_ members: Members) -> Self
    /// No members yet, with room for about `capacity`.
    static func members(capacity: Int) -> Members
    /// Adds a member; a key given twice keeps its last value.
    static func add(_ key: String, _ value: Self, to members: inout Members)
}

extension JSONTree where Members == [String: Self] {
    @inlinable
    public static func members(capacity: Int) -> Members { Members(minimumCapacity: capacity) }

    @inlinable
    public static func add(_ key: String, _ value: Self, to members: inout Members) { members[key] = value }
}

extension JSONValue: JSONTree {
    /// Finite as a `Double`.
    public static func number(literal: UnsafeBufferPointer<UInt8>) -> JSONValue? {
        guard let value = Double(String(decoding: literal, as: UTF8.self)), value.isFinite else { return nil }
        return .number(value)
    }
}

/// The parse itself, over the bytes for its duration (no bounds checks, no reference counting
/// per byte read).
@usableFromInline
struct Parser<Tree: JSONTree> {
    @usableFromInline let bytes: UnsafeBufferPointer<UInt8>
    @usableFromInline var index = 0

    @inlinable
    init(_ bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
    }

    // MARK: Values

    @inlinable
    mutating func value(depth: Int) throws(JSONReader.Failure) -> Tree {
        self.skipWhitespace()
        guard self.index < self.bytes.count else { throw .notJSON }
        switch self.bytes[self.index] {
        case UInt8(ascii: "{"):
            return Tree.object(try self.object(depth: depth + 1))
        case UInt8(ascii: "["):
            return Tree.array(try self.array(depth: depth + 1))
        case UInt8(ascii: "\""):
            return Tree.string(try self.string())
        case UInt8(ascii: "t"):
            try self.literal("true")
            return Tree.bool(true)
        case UInt8(ascii: "f"):
            try self.literal("false")
            return Tree.bool(false)
        case UInt8(ascii: "n"):
            try self.literal("null")
            return Tree.null
        default:
            return try self.number()
        }
    }

    @inlinable
    mutating func object(depth: Int) throws(JSONReader.Failure) -> Tree.Members {
        guard depth <= JSONReader.maxDepth else { throw .notJSON }
        self.index += 1  // {
        // The command itself has about ten fields: room for them at once, not four regrowths.
        var object = Tree.members(capacity: depth == 1 ? 12 : 0)
        self.skipWhitespace()
        if self.peek == UInt8(ascii: "}") {
            self.index += 1
            return object
        }
        while true {
            self.skipWhitespace()
            guard self.peek == UInt8(ascii: "\"") else { throw .notJSON }
            let key = try self.string()
            self.skipWhitespace()
            guard self.peek == UInt8(ascii: ":") else { throw .notJSON }
            self.index += 1
            Tree.add(key, try self.value(depth: depth), to: &object)
            self.skipWhitespace()
            switch self.peek {
            case UInt8(ascii: ","): self.index += 1
            case UInt8(ascii: "}"):
                self.index += 1
                return object
            default: throw .notJSON
            }
        }
    }

    @inlinable
    mutating func array(depth: Int) throws(JSONReader.Failure) -> [Tree] {
        guard depth <= JSONReader.maxDepth else { throw .notJSON }
        self.index += 1  // [
        var array: [Tree] = []
        self.skipWhitespace()
        if self.peek == UInt8(ascii: "]") {
            self.index += 1
            return array
        }
        while true {
            array.append(try self.value(depth: depth))
            self.skipWhitespace()
            switch self.peek {
            case UInt8(ascii: ","): self.index += 1
            case UInt8(ascii: "]"):
                self.index += 1
                return array
            default: throw .notJSON
            }
        }
    }

    @inlinable
    mutating func literal(_ word: StaticString) throws(JSONReader.Failure) {
        let count = word.utf8CodeUnitCount
        guard self.index + count <= self.bytes.count else { throw .notJSON }
        let matches = word.withUTF8Buffer { expected in
            (0..<count).allSatisfy { self.bytes[self.index + $0] == expected[$0] }
        }
        guard matches else { throw .notJSON }
        self.index += count
    }

    // MARK: Strings

    @inlinable
    mutating func string() throws(JSONReader.Failure) -> String {
        self.index += 1  // opening quote
        let start = self.index
        // The common case: no escape; the bytes are the string (validated as UTF-8 once, unless
        // all ASCII: the stdlib's validating initializer is generic and unspecialized, ~1 % of
        // the worker's CPU in scenario a).
        var seen: UInt8 = 0
        while self.index < self.bytes.count {
            let byte = self.bytes[self.index]
            if byte == UInt8(ascii: "\"") {
                let utf8 = UnsafeBufferPointer(rebasing: self.bytes[start..<self.index])
                let text = seen < 0x80 ? String(decoding: utf8, as: UTF8.self) : try Self.text(utf8)
                self.index += 1
                return text
            }
            if byte == UInt8(ascii: "\\") { break }
            guard byte >= 0x20 else { throw .notJSON }
            seen |= byte
            self.index += 1
        }
        var scalars = Array(UnsafeBufferPointer(rebasing: self.bytes[start..<self.index]))
        while self.index < self.bytes.count {
            let byte = self.bytes[self.index]
            switch byte {
            case UInt8(ascii: "\""):
                self.index += 1
                return try Self.text(scalars[...])
            case UInt8(ascii: "\\"):
                self.index += 1
                try self.escape(into: &scalars)
            case 0..<0x20:
                throw .notJSON
            default:
                scalars.append(byte)
                self.index += 1
            }
        }
        throw .notJSON
    }

    @inlinable
    static func text(_ utf8: some Collection<UInt8>) throws(JSONReader.Failure) -> String {
        guard let text = String(validating: utf8, as: UTF8.self) else { throw .notUTF8 }
        return text
    }

    @inlinable
    mutating func escape(into utf8: inout [UInt8]) throws(JSONReader.Failure) {
        guard let byte = self.peek else { throw .notJSON }
        self.index += 1
        switch byte {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(byte)
        case UInt8(ascii: "b"): utf8.append(0x08)
        case UInt8(ascii: "f"): utf8.append(0x0C)
        case UInt8(ascii: "n"): utf8.append(0x0A)
        case UInt8(ascii: "r"): utf8.append(0x0D)
        case UInt8(ascii: "t"): utf8.append(0x09)
        case UInt8(ascii: "u"):
            var code = UInt32(try self.hex4())
            if (0xD800..<0xDC00).contains(code) {
                // A high surrogate must be followed by `\u` and a low one.
                guard self.peek == UInt8(ascii: "\\"), self.index + 1 < self.bytes.count,
                    self.bytes[self.index + 1] == UInt8(ascii: "u")
                else { throw .notJSON }
                self.index += 2
                let low = UInt32(try self.hex4())
                guard (0xDC00..<0xE000).contains(low) else { throw .notJSON }
                code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
            } else if (0xDC00..<0xE000).contains(code) {
                throw .notJSON
            }
            guard let scalar = Unicode.Scalar(code) else { throw .notJSON }
            utf8.append(contentsOf: UTF8.encode(scalar)!)
        default:
            throw .notJSON
        }
    }

    @inlinable
    mutating func hex4() throws(JSONReader.Failure) -> UInt16 {
        guard self.index + 4 <= self.bytes.count else { throw .notJSON }
        var value: UInt16 = 0
        for _ in 0..<4 {
            let byte = self.bytes[self.index]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw .notJSON
            }
            value = value << 4 | UInt16(digit)
            self.index += 1
        }
        return value
    }

    // MARK: Numbers

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`, as `Tree` accepts it.
    @inlinable
    mutating func number() throws(JSONReader.Failure) -> Tree {
        let start = self.index
        if self.peek == UInt8(ascii: "-") { self.index += 1 }
        guard let first = self.peek, Self.isDigit(first) else { throw .notJSON }
        self.index += 1
        if first != UInt8(ascii: "0") { self.skipDigits() }
        if self.peek == UInt8(ascii: ".") {
            self.index += 1
            guard let digit = self.peek, Self.isDigit(digit) else { throw .notJSON }
            self.skipDigits()
        }
        if self.peek == UInt8(ascii: "e") || self.peek == UInt8(ascii: "E") {
            self.index += 1
            if self.peek == UInt8(ascii: "+") || self.peek == UInt8(ascii: "-") { self.index += 1 }
            guard let digit = self.peek, Self.isDigit(digit) else { throw .notJSON }
            self.skipDigits()
        }
        guard let value = Tree.number(literal: UnsafeBufferPointer(rebasing: self.bytes[start..<self.index])) else {
            throw .notJSON
        }
        return value
    }

    @inlinable
    static func isDigit(_ byte: UInt8) -> Bool {
        byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
    }

    @inlinable
    mutating func skipDigits() {
        while let byte = self.peek, Self.isDigit(byte) { self.index += 1 }
    }

    // MARK: Bytes

    @inlinable
    var peek: UInt8? {
        self.index < self.bytes.count ? self.bytes[self.index] : nil
    }

    @inlinable
    mutating func skipWhitespace() {
        while let byte = self.peek,
            byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r")
                || byte == UInt8(ascii: "\t")
        {
            self.index += 1
        }
    }
}
