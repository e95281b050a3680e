import Foundation
/// A point in time with nanosecond precision, so clock-skew arithmetic rounds only at the end.
public struct Instant: Sendable, Hashable, Comparable {
    /// Seconds since 1970-01-01T00:00:00Z.
    public var seconds: Int64
    /// 0 ..< 1_000_000_000
    public var nanos: Int64

    /// A Foundation date, to the nanosecond it can hold.
    public init(date: Date) {
        let t = date.timeIntervalSince1970
        let whole = t.rounded(.down)
        self.init(seconds: Int64(whole), nanos: Int64((t - whole) * 1e9))
    }

    public init(seconds: Int64, nanos: Int64 = 0) {
        var s = seconds + nanos / 1_000_000_000
        var n = nanos % 1_000_000_000
        if n < 0 { n += 1_000_000_000; s -= 1 }
        self.seconds = s
        self.nanos = n
    }

    public static func < (a: Instant, b: Instant) -> Bool {
        (a.seconds, a.nanos) < (b.seconds, b.nanos)
    }

    public static func + (a: Instant, b: Instant) -> Instant {
        Instant(seconds: a.seconds + b.seconds, nanos: a.nanos + b.nanos)
    }

    public static func - (a: Instant, b: Instant) -> Instant {
        Instant(seconds: a.seconds - b.seconds, nanos: a.nanos - b.nanos)
    }

    /// Milliseconds since the epoch, rounded half up: the warehouse's precision.
    public var milliseconds: Int64 {
        seconds * 1000 + (nanos + 500_000) / 1_000_000
    }

    /// The earliest and latest instants the warehouse format can write (years 0001 to 9999).
    package static let earliest = Instant(seconds: -62_135_596_800)
    package static let latest = Instant(seconds: 253_402_300_799, nanos: 999_000_000)
}

/// Lenient timestamp parsing and the warehouse's one timestamp format (docs/warehouse.md, Timestamps).
public enum Timestamp {
    /// Parses `YYYY-M-DDTHH:MM[:SS[.fffffffff]][zone]` where the separator may be `T`, `t` or a
    /// space, the zone is `Z`, `±hh:mm`, `±hhmm`, `±hh`, optionally after a space and followed by
    /// ` UTC` or another word (Go's `2020-05-09 23:54:49.209808489 +0000 UTC`), and a missing
    /// zone means UTC. Month and day may have one digit. Returns nil for anything else,
    /// including bare dates and impossible dates.
    public static func parse(_ text: String) -> Instant? {
        var text = text
        return text.withUTF8 { parse(bytes: $0) }
    }

    package static func parse(bytes s: UnsafeBufferPointer<UInt8>) -> Instant? {
        let n = s.count
        guard n >= 15, n <= 64 else { return nil }
        var i = 0
        @inline(__always) func digit(_ at: Int) -> Int? {
            guard at < n else { return nil }
            let c = s[at]
            return c >= 0x30 && c <= 0x39 ? Int(c - 0x30) : nil
        }
        func number(minDigits: Int, maxDigits: Int) -> Int? {
            var v = 0
            var count = 0
            while count < maxDigits, let d = digit(i) {
                v = v * 10 + d
                i += 1
                count += 1
            }
            return count >= minDigits ? v : nil
        }
        func expect(_ c: UInt8) -> Bool {
            guard i < n, s[i] == c else { return false }
            i += 1
            return true
        }
        guard let year = number(minDigits: 4, maxDigits: 4), expect(0x2d),
              let month = number(minDigits: 1, maxDigits: 2), expect(0x2d),
              let day = number(minDigits: 1, maxDigits: 2) else { return nil }
        guard i < n, s[i] == 0x54 || s[i] == 0x74 || s[i] == 0x20 else { return nil }
        i += 1
        guard let hour = number(minDigits: 2, maxDigits: 2), expect(0x3a),
              let minute = number(minDigits: 2, maxDigits: 2) else { return nil }
        var second = 0
        var nanos: Int64 = 0
        if expect(0x3a) {
            guard let sec = number(minDigits: 2, maxDigits: 2) else { return nil }
            second = sec
            if i < n, s[i] == 0x2e || s[i] == 0x2c {
                i += 1
                var digits = 0
                while let d = digit(i) {
                    if digits < 9 { nanos = nanos * 10 + Int64(d) }
                    digits += 1
                    i += 1
                }
                guard digits >= 1 else { return nil }
                if digits < 9 {
                    for _ in digits..<9 { nanos *= 10 }
                }
            }
        }
        guard year >= 1, (1...12).contains(month), day >= 1, day <= daysIn(month: month, year: year),
              hour <= 23, minute <= 59, second <= 60 else { return nil }
        // Zone.
        var offsetSeconds = 0
        if i < n, s[i] == 0x20 { i += 1 }
        if i < n {
            let c = s[i]
            if c == 0x5a || c == 0x7a {  // Z
                i += 1
            } else if c == 0x2b || c == 0x2d {  // + -
                let sign = c == 0x2d ? -1 : 1
                i += 1
                guard let hh = number(minDigits: 2, maxDigits: 2) else { return nil }
                var mm = 0
                if expect(0x3a) {
                    guard let m = number(minDigits: 2, maxDigits: 2) else { return nil }
                    mm = m
                } else if digit(i) != nil {
                    guard let m = number(minDigits: 2, maxDigits: 2) else { return nil }
                    mm = m
                }
                guard hh <= 23, mm <= 59 else { return nil }
                offsetSeconds = sign * (hh * 3600 + mm * 60)
            } else if n - i == 3, s[i] == 0x55, s[i + 1] == 0x54, s[i + 2] == 0x43 {  // UTC
                i += 3
            } else {
                return nil
            }
            // Go appends the zone's name: " UTC", " CET", ...
            if i < n, s[i] == 0x20 {
                i += 1
                let start = i
                while i < n, (s[i] >= 0x41 && s[i] <= 0x5a) { i += 1 }
                guard i > start else { return nil }
            }
        }
        guard i == n else { return nil }
        let days = daysFromCivil(year: year, month: month, day: day)
        let secs = Int64(days) * 86_400 + Int64(hour * 3600 + minute * 60 + second) - Int64(offsetSeconds)
        let instant = Instant(seconds: secs, nanos: nanos)
        guard instant >= Instant.earliest, instant <= Instant.latest else { return nil }
        return instant
    }

    /// `YYYY-MM-DD HH:MM:SS.sss` in UTC, rounded to whole milliseconds: the warehouse's one
    /// timestamp form (format 3), which is what SQLite's `strftime('%Y-%m-%d %H:%M:%f', ...)`
    /// writes. It sorts as text and compares correctly with what SQLite's date functions return.
    public static func format(_ instant: Instant) -> String {
        write(instant, separator: 0x20, zone: false)
    }

    /// `YYYY-MM-DDTHH:MM:SS.sssZ` in UTC: how Segment's own archives write times (the benchmark
    /// corpus uses it; the warehouse never stores it).
    public static func iso8601(_ instant: Instant) -> String {
        write(instant, separator: 0x54, zone: true)
    }

    private static func write(_ instant: Instant, separator: UInt8, zone: Bool) -> String {
        let ms = instant.milliseconds
        var secs = ms / 1000
        var milli = ms % 1000
        if milli < 0 { milli += 1000; secs -= 1 }
        var days = secs / 86_400
        var rem = secs % 86_400
        if rem < 0 { rem += 86_400; days -= 1 }
        let (y, m, d) = civilFromDays(Int(days))
        return String(unsafeUninitializedCapacity: 24) { out in
            func put(_ v: Int, _ at: Int, _ width: Int) {
                var v = v
                for k in stride(from: at + width - 1, through: at, by: -1) {
                    out[k] = UInt8(0x30 + v % 10)
                    v /= 10
                }
            }
            put(y, 0, 4); out[4] = 0x2d; put(m, 5, 2); out[7] = 0x2d; put(d, 8, 2)
            out[10] = separator
            put(Int(rem / 3600), 11, 2); out[13] = 0x3a; put(Int(rem % 3600 / 60), 14, 2); out[16] = 0x3a
            put(Int(rem % 60), 17, 2); out[19] = 0x2e; put(Int(milli), 20, 3)
            if zone { out[23] = 0x5a }
            return zone ? 24 : 23
        }
    }

    /// `YYYY-MM-DD` of a UTC midnight given in epoch milliseconds, as in Segment's S3 layout.
    public static func day(fromEpochMilliseconds ms: Int64) -> String {
        String(format(Instant(seconds: ms / 1000)).prefix(10))
    }

    /// Whether `text` is a real calendar day written `YYYY-MM-DD`.
    public static func isCalendarDay(_ text: String) -> Bool {
        let b = Array(text.utf8)
        guard b.count == 10, b[4] == 0x2d, b[7] == 0x2d else { return false }
        func number(_ range: Range<Int>) -> Int? {
            var n = 0
            for i in range {
                guard b[i] >= 0x30 && b[i] <= 0x39 else { return nil }
                n = n * 10 + Int(b[i] - 0x30)
            }
            return n
        }
        guard let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
              (1...12).contains(month), year >= 1 else { return false }
        return (1...daysIn(month: month, year: year)).contains(day)
    }

    /// An epoch number, its unit told by its size as JavaScript, Python, Java and Go clocks
    /// write them: below 1e11 seconds, then milliseconds, microseconds, nanoseconds (this
    /// reads 1e11 s, the year 5138, as milliseconds: 1973). Nil outside years 1-9999.
    package static func epoch(_ value: Double, exact: Int64?) -> Instant? {
        guard value.isFinite else { return nil }
        let magnitude = abs(value)
        let instant: Instant
        if let exact {
            switch magnitude {
            case ..<1e11: instant = Instant(seconds: exact)
            case ..<1e14: instant = Instant(seconds: exact / 1000, nanos: exact % 1000 * 1_000_000)
            case ..<1e17: instant = Instant(seconds: exact / 1_000_000, nanos: exact % 1_000_000 * 1000)
            default: instant = Instant(seconds: exact / 1_000_000_000, nanos: exact % 1_000_000_000)
            }
        } else {
            let seconds: Double
            switch magnitude {
            case ..<1e11: seconds = value
            case ..<1e14: seconds = value / 1e3
            case ..<1e17: seconds = value / 1e6
            default: seconds = value / 1e9
            }
            guard abs(seconds) < 1e12 else { return nil }
            let whole = seconds.rounded(.down)
            instant = Instant(seconds: Int64(whole), nanos: Int64(((seconds - whole) * 1e9).rounded()))
        }
        guard instant >= Instant.earliest, instant <= Instant.latest else { return nil }
        return instant
    }

    package static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    package static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    package static func civilFromDays(_ z0: Int) -> (Int, Int, Int) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (m <= 2 ? y + 1 : y, m, d)
    }
}
