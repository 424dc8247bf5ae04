import CancelCore
import CancelWorkerTesting
import Providers
import Testing

/// Issue 14: `ProviderText.clean` (every answer's message) decides ASCII without Unicode's
/// property tables and counts characters once, not per scalar. It must clean every text as
/// before; the reference here is the replaced implementation.
@Suite("Provider text is cleaned as before")
struct ProviderTextTests {
    @Test("ProviderText.clean equals the Unicode-table version on random text")
    func cleanAgreesWithTheReference() async {
        let pieces: [String] = [
            "a", "Z", "0", " ", "  ", "\t", "\n", "\r\n", "\u{0}", "\u{7F}", "\u{85}", "\u{A0}", "\u{2003}",
            "\u{2028}", "\u{3000}", "é", "e\u{301}", "🇫🇷", "👩‍👩‍👧", "订单", "\u{200B}", "Order cancelled.", "x-y_z",
        ]
        var random = SeededGenerator(seed: 2_718)
        var ticker = CooperativeTicker(every: 4)
        for _ in 0..<2_000 {
            await ticker.tick()
            let count = Int.random(in: 0...400, using: &random)
            let text = (0..<count).map { _ in pieces.randomElement(using: &random)! }.joined()
            #expect(ProviderText.clean(text) == Self.referenceClean(text), "\(text.debugDescription)")
        }
    }

    /// `ProviderText.clean` as it was before issue 14.
    static func referenceClean(_ text: String) -> String {
        var result = ""
        var lastWasSpace = false
        for scalar in text.unicodeScalars {
            let isSpace =
                scalar.properties.generalCategory == .control || scalar == " " || scalar.properties.isWhitespace
            if isSpace {
                if !lastWasSpace && !result.isEmpty { result.unicodeScalars.append(" ") }
                lastWasSpace = true
            } else {
                result.unicodeScalars.append(scalar)
                lastWasSpace = false
            }
            if result.count >= ProviderText.maxMessageLength { return result + "…" }
        }
        return lastWasSpace && result.hasSuffix(" ") ? String(result.dropLast()) : result
    }
}
