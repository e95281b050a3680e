/// The go-snakecase naming that Segment Warehouses use for every table and column
/// (docs/warehouse.md, Names).
///
/// Byte-wise and ASCII-only: bytes outside `[A-Za-z0-9]` separate words (so non-ASCII
/// letters do too), a word starts at an upper-case letter that follows a lower-case one, runs
/// of capitals and digits are lower-cased together, and a name that is already clean
/// lower-case snake case comes back unchanged.
public func snakeCase(_ name: String) -> String {
    var name = name
    return name.withUTF8 { snakeCase(bytes: $0) }
}

func snakeCase(bytes s: UnsafeBufferPointer<UInt8>) -> String {
    @inline(__always) func isLower(_ c: UInt8) -> Bool { c >= 0x61 && c <= 0x7a }
    @inline(__always) func isUpper(_ c: UInt8) -> Bool { c >= 0x41 && c <= 0x5a }
    @inline(__always) func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }

    var idx = 0
    let n = s.count
    // Leading run that is already clean: lower-case letters, digits, and underscores that
    // are followed by a lower-case letter or digit.
    while idx < n {
        let c = s[idx]
        if isLower(c) || isDigit(c) {
            idx += 1
        } else if c == 0x5f, idx < n - 1, isLower(s[idx + 1]) || isDigit(s[idx + 1]) {
            idx += 1
        } else {
            break
        }
    }
    if idx == n { return String(decoding: s, as: UTF8.self) }
    // A digit just before an upper-case letter belongs to the upper-case run that follows.
    if idx > 0 && isDigit(s[idx - 1]) { idx -= 1 }
    var out: [UInt8] = Array(s[0..<idx])
    out.reserveCapacity(n + 4)
    while idx < n {
        let c = s[idx]
        if !(isLower(c) || isUpper(c) || isDigit(c)) {
            idx += 1
            continue
        }
        if !out.isEmpty { out.append(0x5f) }
        while idx < n, isUpper(s[idx]) || isDigit(s[idx]) {
            out.append(isUpper(s[idx]) ? s[idx] + 0x20 : s[idx])
            idx += 1
        }
        while idx < n, isLower(s[idx]) || isDigit(s[idx]) {
            out.append(s[idx])
            idx += 1
        }
    }
    return String(decoding: out, as: UTF8.self)
}
