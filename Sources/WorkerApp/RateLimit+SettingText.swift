import CancelCore

extension RateLimit {
    /// `10/s`, or `5/s:2` with a burst above 1: as `rate-limits.<id>` is written.
    var settingText: String {
        let rate = "\(self.requestsPerSecond.settingText)/s"
        return self.burst > 1 ? "\(rate):\(self.burst)" : rate
    }
}

extension Double {
    /// `20` for a whole number, `2.5` otherwise: numbers as settings are written.
    var settingText: String {
        self.rounded() == self && abs(self) < 1e15 ? String(Int64(self)) : String(self)
    }
}
