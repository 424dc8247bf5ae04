/// "Did you mean …?" for misspelled keys and environment variables: the known name closest by
/// edit distance, when it is close enough to be the likely intent.
extension ConfigOption {
    /// The closest known key to `key`, if any is within a few edits.
    public static func suggestion(forKey key: String) -> String? {
        if let match = Self.closest(to: key, among: Self.concreteKeys) { return match }
        // A per-account key with a typo in its last part or in `credentials`.
        let parts = key.split(separator: ".").map(String.init)
        if parts.count == 5, parts[0] == "providers" {
            let fixed = ["providers", parts[1], "credentials", parts[3], parts[4] == "secret" ? "secret" : "key"]
            let candidate = fixed.joined(separator: ".")
            if Self.isKnownKey(candidate) && Self.editDistance(key, candidate) <= 3 { return candidate }
        }
        return nil
    }

    /// The closest known variable to `name`; per-account variables are matched by their form.
    public static func suggestion(forEnvironmentName name: String) -> String? {
        let names = ["CANCEL_WORKER_CONFIG"] + Self.concreteKeys.map { Self.environmentName(for: $0) }
        if let match = Self.closest(to: name, among: names) { return match }
        if name.contains("CREDENTIALS") {
            return Self.environmentName(for: "providers.<id>.credentials.<account>.key")
        }
        return nil
    }

    /// A hint to append to an "unknown" message: ` (did you mean `x`?)`, or a pointer to the reference.
    static func hint(_ suggestion: String?) -> String {
        guard let suggestion else { return "; `cancel-worker config --reference` lists every setting" }
        return "; did you mean `\(suggestion)`?"
    }

    private static func closest(to text: String, among candidates: [String]) -> String? {
        let limit = max(2, text.count / 4)
        let scored = candidates.map { (candidate: $0, distance: Self.editDistance(text, $0)) }
        guard let best = scored.min(by: { $0.distance < $1.distance }), best.distance <= limit else { return nil }
        return best.candidate
    }

    /// Levenshtein distance (insertions, deletions, substitutions), case-insensitive.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a.lowercased())
        let b = Array(b.lowercased())
        if a.isEmpty || b.isEmpty { return max(a.count, b.count) }
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                let substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)
                current[j] = min(previous[j] + 1, current[j - 1] + 1, substitution)
            }
            swap(&previous, &current)
        }
        return previous[b.count]
    }
}
