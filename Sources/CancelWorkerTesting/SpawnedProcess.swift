public import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A child process started with `posix_spawn`, for tests that start many while holding many
/// descriptors.
///
/// Foundation's `Process.run` on Linux finds the highest open descriptor by copying each
/// `/proc/self/fd` entry's whole 256-byte name out of the directory buffer; with ~1,360
/// descriptors open the last entry sits at the buffer's end, and the copy read past it: a CI run
/// crashed with SIGSEGV in `Process.run` (the test process holds ~1,400 at its peak). Here the
/// child closes every descriptor above 2 with glibc's `closefrom` file action instead.
public final class SpawnedProcess: Sendable {
    public let pid: pid_t
    private let status = Mutex<Int32?>(nil)

    /// Starts `executable` with `arguments`. `environment` nil: this process's. Each standard
    /// stream is the given descriptor (duplicated into the child; the caller keeps and closes its
    /// own), or `/dev/null` when nil. The child leads a process group of its own, with no signal
    /// blocked and every signal at its default action.
    public init(
        executable: String, arguments: [String], environment: [String: String]? = nil,
        directory: String? = nil, standardInput: Int32? = nil, standardOutput: Int32? = nil,
        standardError: Int32? = nil
    ) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for (target, source) in [(0, standardInput), (1, standardOutput), (2, standardError)] {
            if let source {
                posix_spawn_file_actions_adddup2(&actions, source, Int32(target))
            } else {
                posix_spawn_file_actions_addopen(
                    &actions, Int32(target), "/dev/null", target == 0 ? O_RDONLY : O_WRONLY, 0)
            }
        }
        guard Self.addCloseFrom(&actions, 3) == 0 else { throw SpawnError.unsupported("closefrom file action") }
        if let directory {
            guard Self.addChdir(&actions, directory) == 0 else { throw SpawnError.unsupported("chdir file action") }
        }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        var allSignals = sigset_t()
        sigfillset(&allSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        posix_spawnattr_setsigdefault(&attributes, &allSignals)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(
            &attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))

        let environment = environment ?? ProcessInfo.processInfo.environment
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv + envp { free(pointer) }
        }
        var pid = pid_t()
        let result = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard result == 0 else { throw SpawnError.failed(executable, errno: result) }
        self.pid = pid
    }

    /// Whether the process still runs (reaps it once it ended).
    public var isRunning: Bool { self.reap(blocking: false) == nil }

    /// The exit code, or the signal that ended it (see `terminatedBySignal`); nil while it runs.
    public var terminationStatus: Int32? {
        guard let raw = self.reap(blocking: false) else { return nil }
        return Self.signaled(raw) ? raw & 0x7F : (raw >> 8) & 0xFF
    }

    /// Whether a signal ended the process; nil while it runs.
    public var terminatedBySignal: Bool? { self.reap(blocking: false).map(Self.signaled) }

    public func send(_ signal: Int32) {
        if self.isRunning { kill(self.pid, signal) }
    }

    /// Waits for the end, polling (never blocks a thread of the cooperative pool); nil when
    /// `timeout` passes first.
    @discardableResult
    public func waitForExit(timeout: Duration = .seconds(60)) async throws -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while self.isRunning {
            guard ContinuousClock.now < deadline else { return nil }
            try await Task.sleep(for: .milliseconds(10))
        }
        return self.terminationStatus
    }

    /// Blocks the calling thread until the process ended (for a process known to end at once).
    public func waitBlocking() -> Int32 {
        _ = self.reap(blocking: true)
        return self.terminationStatus ?? -1
    }

    deinit {
        // A process dropped while running is the caller's to stop; one that ended is reaped here.
        _ = self.reap(blocking: false)
    }

    private func reap(blocking: Bool) -> Int32? {
        self.status.withLock { status in
            if let status { return status }
            var raw: Int32 = 0
            var result: pid_t
            repeat {
                result = waitpid(self.pid, &raw, blocking ? 0 : WNOHANG)
            } while result == -1 && errno == EINTR
            guard result == self.pid else { return nil }
            status = raw
            return raw
        }
    }

    private static func signaled(_ raw: Int32) -> Bool { (raw & 0x7F) != 0 && (raw & 0x7F) != 0x7F }

    /// A pipe whose both ends close on exec (a child gets the end it is given, duplicated).
    public static func pipe() throws -> (read: FileHandle, write: FileHandle) {
        var fds: [Int32] = [-1, -1]
        // (`pipe2` is not in Swift's Glibc module: the flag is set after; a child spawned
        // meanwhile closes everything above 2 anyway.)
        guard Glibc.pipe(&fds) == 0 else { throw SpawnError.failed("pipe", errno: errno) }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        return (
            FileHandle(fileDescriptor: fds[0], closeOnDealloc: true),
            FileHandle(fileDescriptor: fds[1], closeOnDealloc: true)
        )
    }

    // glibc has both since 2.34 / 2.29; Swift's Glibc module does not declare them (they need
    // _GNU_SOURCE), so they are looked up once.
    private typealias FileAction = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    private typealias PathAction =
        @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32

    private static func addCloseFrom(_ actions: UnsafeMutablePointer<posix_spawn_file_actions_t>, _ fd: Int32) -> Int32
    {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np")
        else { return -1 }
        return unsafeBitCast(symbol, to: FileAction.self)(actions, fd)
    }

    private static func addChdir(_ actions: UnsafeMutablePointer<posix_spawn_file_actions_t>, _ path: String) -> Int32 {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addchdir_np")
        else { return -1 }
        return path.withCString { unsafeBitCast(symbol, to: PathAction.self)(actions, $0) }
    }
}

public enum SpawnError: Error, CustomStringConvertible {
    case failed(String, errno: Int32)
    case unsupported(String)

    public var description: String {
        switch self {
        case .failed(let what, let code): "\(what): \(String(cString: strerror(code)))"
        case .unsupported(let what): "this C library has no \(what)"
        }
    }
}
