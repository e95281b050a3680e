import SegmentCore

/// Why a line was rejected, as a fixed word (`_rejects.kind`, docs/warehouse.md, Bookkeeping). The reason
/// next to it is for people; decisions (what `rejects retry` may load again) are made on this.
public enum RejectKind: String, Sendable, CaseIterable {
    /// Not valid JSON: a syntax error, invalid UTF-8, a NUL byte, nesting too deep.
    case json
    /// Valid JSON but not a message the Segment Spec allows: not an object, no or an unknown
    /// type, no ids, a track without an event, an empty batch.
    case spec
    /// Longer than the line limit: `raw` holds only its first bytes.
    case tooLong = "too_long"
    /// The last line of a gzip stream that stopped in the middle of it: not all there.
    case torn
    /// From a gzip member whose data zlib found corrupt: bytes zlib made from damaged input.
    case corruptMember = "corrupt_member"
    /// The line being read when the file was refused as a likely gzip bomb.
    case bomb

    /// Whether the line as kept is whole and trustworthy, so that running it through the
    /// loader again (after a fix to the loader, or to `raw` by hand) can load it. The others
    /// can only come again from their archive: a cut line, a torn one, or bytes zlib made from
    /// damaged data that may parse and still be wrong.
    public var isRetryable: Bool {
        switch self {
        case .json, .spec: return true
        case .tooLong, .torn, .corruptMember, .bomb: return false
        }
    }

    /// The kind of a format-2 reject, which had only its reason: used once, by the upgrade
    /// to format 3 (the reasons format 2 wrote are known and fixed).
    package static func derived(fromFormat2Reason reason: String) -> RejectKind {
        if reason.hasPrefix("from a gzip member that is corrupt") { return .corruptMember }
        if reason.hasPrefix("torn line:") { return .torn }
        if reason.hasPrefix("line longer than the limit") { return .tooLong }
        if reason.hasPrefix("invalid JSON") { return .json }
        return .spec
    }
}
