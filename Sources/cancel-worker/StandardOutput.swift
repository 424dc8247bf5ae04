import Foundation

/// Unbuffered writes to standard output, for lines another process waits to read (addresses,
/// tables); `print` may sit in a buffer when stdout is a pipe.
enum StandardOutput {
    static func writeLine(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }
}
