import Foundation

// Loopback ports for the sandbox's neighbours: tests, the bench and dev tools that start
// servers and worker processes on 127.0.0.1 and need a port nobody else uses.

/// A TCP socket listening on 127.0.0.1 that never accepts: its port is held (another program
/// cannot bind it), and a connection to it completes in the kernel's backlog and is never
/// answered. Close `fd` when done.
public func listeningSocket() throws -> (fd: Int32, port: Int) {
    let (fd, port) = try loopbackSocket()
    guard listen(fd, 16) == 0 else {
        close(fd)
        throw POSIXError(.EADDRINUSE)
    }
    return (fd, port)
}

/// A port of 127.0.0.1 that was free a moment ago: the kernel picked it for a socket that is
/// closed again before this returns.
public func freePort() throws -> Int {
    let (fd, port) = try loopbackSocket()
    close(fd)
    return port
}

/// A TCP socket bound to 127.0.0.1 on a port the kernel picks, and that port.
private func loopbackSocket() throws -> (fd: Int32, port: Int) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw POSIXError(.EMFILE) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
    }
    guard bound == 0 else {
        close(fd)
        throw POSIXError(.EADDRINUSE)
    }
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return (fd, Int(UInt16(bigEndian: address.sin_port)))
}
