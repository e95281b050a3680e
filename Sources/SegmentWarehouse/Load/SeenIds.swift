import Foundation
import SegmentCore

/// The warehouse's set of message ids loaded by every run so far (`_message_ids`,
/// docs/warehouse.md, Duplicates). It is keyed by the first 16 bytes of the SHA-256 of the messageId: a fixed-size
/// BLOB is smaller and cheaper to compare than the id text, and nobody can craft two ids with
/// one key (the id text itself stays in the data tables). 16 bytes keep accidental collisions
/// below 10⁻¹⁸ for 10¹⁰ ids.
public enum SeenIds {
    public static let keyBytes = 16

    /// Calls `body` with the key of the messageId whose UTF-8 bytes are `id`.
    @inline(__always)
    package static func withKey<R>(of id: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try SHA256Hasher.withHash(of: id) { try body(UnsafeRawBufferPointer(rebasing: $0[0..<keyBytes])) }
    }

    /// The keys of a chunk's messages, side by side in one buffer.
    package struct Keys {
        private var bytes: [UInt8]
        package private(set) var count = 0

        package init(capacity: Int) {
            bytes = []
            bytes.reserveCapacity(capacity * SeenIds.keyBytes)
        }

        package mutating func append(_ id: UnsafeRawBufferPointer) {
            SeenIds.withKey(of: id) { bytes.append(contentsOf: $0) }
            count += 1
        }

        package func withKey<R>(_ i: Int, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
            try bytes.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[(i * SeenIds.keyBytes)..<((i + 1) * SeenIds.keyBytes)])) }
        }

        /// Indices in the order of their keys (bytewise, as SQLite compares BLOBs).
        package func sortedIndices() -> [Int] {
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
}
