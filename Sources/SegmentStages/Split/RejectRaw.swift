import SegmentCore

/// What `_rejects` keeps of a rejected line (its `raw` and `redacted` columns).
package enum RejectRaw: Sendable, Equatable {
    /// The line as read (no privacy rules): `redacted` = 0.
    case asRead([UInt8])
    /// The line with the privacy rules applied (dropped fields gone, hashed ones hashed):
    /// `redacted` = 1, so a retry does not hash them twice.
    case redacted([UInt8])
    /// Nothing of the line: privacy rules are set and the line is not a JSON object, so it
    /// cannot be searched for the fields they name. `raw` is empty and `redacted` = 2; the
    /// archive holds the line at its file and line, and a retry under the rules reads it there.
    case withheld

    /// The `redacted` column's value.
    package var redactedCode: Int64 {
        switch self {
        case .asRead: return 0
        case .redacted: return 1
        case .withheld: return 2
        }
    }

    package var bytes: [UInt8] {
        switch self {
        case .asRead(let bytes), .redacted(let bytes): return bytes
        case .withheld: return []
        }
    }

    /// Added to the `redacted` code in PostgreSQL when `raw` holds the line's bytes in hex:
    /// a line with a NUL or bytes that are not UTF-8, which PostgreSQL's text cannot hold
    /// (SQLite keeps such a line as a BLOB).
    package static let hexCode: Int64 = 8

    package init(code: Int64, bytes: [UInt8]) {
        if code >= Self.hexCode {
            self.init(code: code - Self.hexCode, bytes: SegmentCore.bytes(fromHex: String(decoding: bytes, as: UTF8.self)))
            return
        }
        switch code {
        case 1: self = .redacted(bytes)
        case 2: self = .withheld
        default: self = .asRead(bytes)
        }
    }
}
