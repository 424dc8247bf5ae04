import CJemalloc

/// The binary links jemalloc (Debian's `libjemalloc2`), whose `malloc` replaces glibc's for the
/// whole process, Swift runtime and librdkafka included: glibc's consolidated its free lists
/// on every allocation of 1 KB or more (task-allocator slabs, NIO buffers), ~7 % of the worker's
/// CPU in bench scenario a (BENCHMARKS.md, 2026-11-27 12:15–).
enum Allocator {
    /// `jemalloc <version>` (its release, without the build's git suffix), for the startup line;
    /// also the reference that keeps the library linked.
    static var description: String {
        var version: UnsafePointer<CChar>?
        var size = MemoryLayout<UnsafePointer<CChar>?>.size
        guard mallctl("version", &version, &size, nil, 0) == 0, let version else { return "jemalloc" }
        let release = String(cString: version).split(separator: "-").first.map(String.init) ?? ""
        return "jemalloc \(release)"
    }
}
