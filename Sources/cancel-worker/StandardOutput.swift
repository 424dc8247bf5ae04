import Foundation

/// Unbuffered writes to standard output, for lines another process waits to read (addresses,
/// tables); `print` may sit in a buffer when stdout is a pipe.
enum StandardOutput {
    /// Writes `line` with its control characters made visible (`visible`).
    static func writeLine(_ line: String) {
        FileHandle.standardOutput.write(Data((Self.visible(line) + "\n").utf8))
    }

    /// `text` with every control character but newline and tab written out (`\x1b`, `\x0d`,
    /// `\u{9b}`): what the tools print includes anyone's text — a dead letter's payload, a
    /// provider's message — whose escape sequences would otherwise drive the operator's terminal
    /// (clear or hide text, set the title, write the clipboard). JSON the worker writes has none
    /// raw (it escapes them), so its records print unchanged.
    static func visible(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: Self.isControl) else { return text }
        var result = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            guard Self.isControl(scalar) else {
                result.append(scalar)
                continue
            }
            let written = scalar.value < 0x80 ? "\\x" + Self.hex(scalar.value) : "\\u{" + Self.hex(scalar.value) + "}"
            result.append(contentsOf: written.unicodeScalars)
        }
        return String(result)
    }

    private static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x0A, 0x09: false
        case 0x00...0x1F, 0x7F...0x9F: true
        default: false
        }
    }

    private static func hex(_ value: UInt32) -> String {
        let digits = String(value, radix: 16)
        return digits.count < 2 ? "0" + digits : digits
    }
}
