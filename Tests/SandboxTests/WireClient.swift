import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// `send(2)` (the name is taken inside `WireClient`).
private func systemSend(_ descriptor: Int32, _ bytes: UnsafeRawPointer?, _ count: Int) -> Int {
    #if canImport(Glibc)
        Glibc.send(descriptor, bytes, count, 0)
    #else
        Darwin.send(descriptor, bytes, count, 0)
    #endif
}

/// What came back on the socket, byte for byte.
struct WireResponse: Sendable {
    /// Everything received: head and body.
    var raw: [UInt8]
    var status: Int
    /// Header fields in the order sent; names lower-cased.
    var headers: [Header]
    /// The bytes after the head, as sent (chunked framing, if any, kept).
    var body: [UInt8]
    /// The server closed the connection (EOF or reset) before the client had read a complete answer.
    var closedEarly: Bool

    struct Header: Sendable, Hashable {
        var name: String
        var value: String
    }

    func header(_ name: String) -> String? {
        self.headers.first { $0.name == name.lowercased() }?.value
    }

    var text: String { String(decoding: self.body, as: UTF8.self) }
    var head: String { String(decoding: self.raw.prefix(self.raw.count - self.body.count), as: UTF8.self) }
}

/// HTTP/1.1 over a plain TCP socket, to look at exactly what the sandbox writes: AsyncHTTPClient
/// follows redirects, caps bodies, and throws on a cut-off body before a test can see it. One
/// request per connection, on its own thread (blocking I/O stays off the cooperative pool).
struct WireClient: Sendable {
    let port: Int

    init(base: URL) {
        self.port = base.port ?? 80
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    func send(
        _ method: String, _ path: String, headers: [(String, String)] = [], body: String? = nil
    ) async throws -> WireResponse {
        var request = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(self.port)\r\n"
        for (name, value) in headers { request += "\(name): \(value)\r\n" }
        if let body { request += "Content-Length: \(body.utf8.count)\r\n" }
        request += "\r\n" + (body ?? "")
        let bytes = Array(request.utf8)
        let port = self.port
        let (raw, closed) = try await withCheckedThrowingContinuation { continuation in
            let thread = Thread {
                continuation.resume(with: Result { try Self.exchange(port: port, request: bytes, method: method) })
            }
            thread.start()
        }
        guard let headEnd = Self.headEnd(raw) else {
            throw Failure(description: "no complete head in \(raw.count) bytes")
        }
        let lines = String(decoding: raw[..<headEnd], as: UTF8.self).components(separatedBy: "\r\n")
        let statusParts = lines[0].split(separator: " ")
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else {
            throw Failure(description: "bad status line \(lines[0])")
        }
        var fields: [WireResponse.Header] = []
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].lowercased()
            fields.append(
                .init(name: name, value: line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
        }
        let body = Array(raw[(headEnd + 4)...])
        return WireResponse(raw: raw, status: status, headers: fields, body: body, closedEarly: closed)
    }

    /// The offset of the blank line (`\r\n\r\n`) that ends the head.
    private static func headEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for index in 0...(bytes.count - 4)
        where bytes[index] == 13 && bytes[index + 1] == 10 && bytes[index + 2] == 13 && bytes[index + 3] == 10 {
            return index
        }
        return nil
    }

    /// Whether `bytes` hold a complete answer: the head plus `Content-Length` bytes, the last chunk,
    /// or (no length, not chunked) only the server closing tells.
    private static func complete(_ bytes: [UInt8], method: String) -> Bool {
        guard let end = headEnd(bytes) else { return false }
        let head = String(decoding: bytes[..<end], as: UTF8.self).lowercased()
        let status = head.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
        if method == "HEAD" || status == 204 || status == 304 || (100..<200).contains(status) { return true }
        let bodyCount = bytes.count - end - 4
        for line in head.components(separatedBy: "\r\n") {
            if line.hasPrefix("content-length:"),
                let length = Int(line.dropFirst(15).trimmingCharacters(in: .whitespaces))
            {
                return bodyCount >= length
            }
            if line.hasPrefix("transfer-encoding:"), line.contains("chunked") {
                return bytes.count >= 5 && Array(bytes.suffix(5)) == Array("0\r\n\r\n".utf8)
            }
        }
        return false
    }

    /// Blocking: connect, send, read until the answer is complete or the server hangs up.
    private static func exchange(port: Int, request: [UInt8], method: String) throws -> ([UInt8], Bool) {
        #if canImport(Glibc)
            let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
            let descriptor = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard descriptor >= 0 else { throw Failure(description: "socket: errno \(errno)") }
        defer { close(descriptor) }
        var timeout = timeval(tv_sec: 20, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { throw Failure(description: "connect: errno \(errno)") }
        var sent = 0
        while sent < request.count {
            let count = request[sent...].withUnsafeBytes { systemSend(descriptor, $0.baseAddress, $0.count) }
            guard count > 0 else { throw Failure(description: "send: errno \(errno)") }
            sent += count
        }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count > 0 {
                received += buffer[..<count]
                if Self.complete(received, method: method) { return (received, false) }
            } else if count == 0 || errno == ECONNRESET {
                return (received, !Self.complete(received, method: method))
            } else if errno != EINTR {
                throw Failure(description: "recv: errno \(errno) after \(received.count) bytes")
            }
        }
    }
}
