import SegmentCore

/// The two profile tables and the calls they are derived from, said once: `users` from
/// `identifies` by `user_id`, `accounts` from `groups` by `group_id`. The catalog (which
/// creates a profile table with its call table and gives it the same trait columns), the
/// derivation of profile rows, and the destination all ask here.
package enum Profile: CaseIterable, Sendable {
    case users
    case accounts

    /// The profile table's id in the run's NameTable.
    package var table: Int32 {
        switch self {
        case .users: return NameTable.users
        case .accounts: return NameTable.accounts
        }
    }

    package var tableName: String {
        switch self {
        case .users: return "users"
        case .accounts: return "accounts"
        }
    }

    /// The call whose table the profile is derived from.
    package var callType: CallType {
        switch self {
        case .users: return .identify
        case .accounts: return .group
        }
    }

    /// The call table's id and name (`identifies`, `groups`).
    package var sourceTable: Int32 { NameTable.table(of: callType) }
    package var sourceName: String { callType.table }

    /// The call table's column that holds the profile's id, and the source key it comes from.
    package var keyColumn: String {
        switch self {
        case .users: return "user_id"
        case .accounts: return "group_id"
        }
    }

    package var sourceKey: Int32 {
        switch self {
        case .users: return NameTable.keyUserId
        case .accounts: return NameTable.keyGroupId
        }
    }

    /// The profile id a call's record carries, for a call of `callType`.
    package func id(of header: RecordCursor.Header) -> UnsafeRawBufferPointer? {
        guard header.type == callType else { return nil }
        switch self {
        case .users: return header.userId
        case .accounts: return header.groupId
        }
    }

    /// The profile a call of `type` changes, if any.
    @inline(__always)
    package static func changed(by type: CallType) -> Profile? {
        switch type {
        case .identify: return .users
        case .group: return .accounts
        default: return nil
        }
    }

    /// The profile derived from the call table `table`, if any.
    package static func derived(from table: Int32) -> Profile? {
        allCases.first { $0.sourceTable == table }
    }

    /// The profile whose table is `table`, if any.
    package static func stored(in table: Int32) -> Profile? {
        allCases.first { $0.table == table }
    }

    package static func named(_ name: String) -> Profile? {
        allCases.first { $0.tableName == name }
    }
}
