import CSQLite
import Foundation
import SegmentCore

/// The warehouse's set of message ids loaded by every run so far (`_message_ids`, contract
/// section 6). It is keyed by the first 16 bytes of the SHA-256 of the messageId: a fixed-size
/// BLOB is smaller and cheaper to compare than the id text, and nobody can craft two ids with
/// one key (the id text itself stays in the data tables). 16 bytes keep accidental collisions
/// below 10⁻¹⁸ for 10¹⁰ ids.
public enum SeenIds {
    public static let keyBytes = 16

    /// Calls `body` with the key of the messageId whose UTF-8 bytes are `id`.
    @inline(__always)
    static func withKey<R>(of id: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try SHA256Hasher.withHash(of: id) { try body(UnsafeRawBufferPointer(rebasing: $0[0..<keyBytes])) }
    }

    /// The keys of a chunk's messages, side by side in one buffer.
    struct Keys {
        private var bytes: [UInt8]
        private(set) var count = 0

        init(capacity: Int) {
            bytes = []
            bytes.reserveCapacity(capacity * SeenIds.keyBytes)
        }

        mutating func append(_ id: UnsafeRawBufferPointer) {
            SeenIds.withKey(of: id) { bytes.append(contentsOf: $0) }
            count += 1
        }

        func withKey<R>(_ i: Int, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
            try bytes.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[(i * SeenIds.keyBytes)..<((i + 1) * SeenIds.keyBytes)])) }
        }

        /// Indices in the order of their keys (bytewise, as SQLite compares BLOBs).
        func sortedIndices() -> [Int] {
            bytes.withUnsafeBytes { raw in
                Array(0..<count).sorted { a, b in
                    memcmp(raw.baseAddress! + a * SeenIds.keyBytes, raw.baseAddress! + b * SeenIds.keyBytes, SeenIds.keyBytes) < 0
                }
            }
        }
    }

    /// The key of a messageId given as text.
    public static func key(of id: String) -> [UInt8] {
        var id = id
        return id.withUTF8 { withKey(of: UnsafeRawBufferPointer($0)) { Array($0) } }
    }

    /// The SQL function `segment_loader_message_key(text)`, which gives the same key inside
    /// SQLite (the format 2 → 3 upgrade re-keys the set with it, sorting through SQLite's own
    /// temporary files rather than memory).
    static let sqlFunction = "segment_loader_message_key"

    static func register(in db: Database) throws(SQLiteError) {
        let status = sqlite3_create_function_v2(
            db.handle, sqlFunction, 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, nil,
            { context, count, arguments in
                guard count == 1, let argument = arguments?[0], let text = sqlite3_value_text(argument) else {
                    sqlite3_result_null(context)
                    return
                }
                let bytes = UnsafeRawBufferPointer(start: text, count: Int(sqlite3_value_bytes(argument)))
                SeenIds.withKey(of: bytes) { key in
                    sqlite3_result_blob(context, key.baseAddress, Int32(key.count), csqlite_transient())
                }
            }, nil, nil, nil)
        if status != SQLITE_OK { throw db.error(status, sql: nil) }
    }
}
