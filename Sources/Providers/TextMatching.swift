/// Keyword checks on providers' free-text messages, for answers whose codes are not published.
extension String {
    func mentions(_ words: String...) -> Bool {
        let lowered = self.lowercased()
        return words.contains { lowered.contains($0) }
    }
}
