extension Duration {
    /// `20s`, `200ms`, `10m`, `7d`: the largest unit that divides the duration, as settings are
    /// written (a plain number in a setting means seconds, so `5` is shown as `5s`).
    public var settingText: String {
        let (seconds, attoseconds) = self.components
        let milliseconds = seconds * 1_000 + attoseconds / 1_000_000_000_000_000
        guard milliseconds > 0 else { return "0s" }
        let units: [(String, Int64)] = [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)]
        for (unit, size) in units where milliseconds % size == 0 {
            return "\(milliseconds / size)\(unit)"
        }
        return "\(milliseconds)ms"
    }
}
