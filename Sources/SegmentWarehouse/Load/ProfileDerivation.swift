import SegmentCore
import SegmentStages

/// The Split stage's profiles: `users` (from `identifies`, by `user_id`) and `accounts` (from
/// `groups`, by `group_id`). The ids a file's admitted calls touch are noted as its chunks pass;
/// before the file commits, each touched profile is rebuilt from all of its calls in the
/// warehouse: each trait takes the value of the newest call (by timestamp, then received_at,
/// then id) that set it to something non-null, so loading an older archive later never
/// overwrites newer traits, whatever the order of the files.
package final class ProfileDerivation {
    private var touched: [Profile: Set<String>] = [:]

    package init() {}

    /// Notes the profiles a chunk's admitted messages touch.
    package func note(_ headers: [RecordCursor.Header], admitted: [Bool]) {
        for (i, header) in headers.enumerated() where admitted[i] {
            guard let profile = Profile.changed(by: header.type), let id = profile.id(of: header) else { continue }
            touched[profile, default: []].insert(id.string)
        }
    }

    /// Notes profiles by id (an erasure: the accounts whose group calls it removed).
    package func touch(_ profile: Profile, ids: some Sequence<String>) {
        touched[profile, default: []].formUnion(ids)
    }

    /// Forgets what was noted (a new file, or a file rolled back).
    package func reset() {
        touched.removeAll()
    }

    /// Rebuilds every touched profile from its calls and writes its row, in the file's transaction.
    package func derive(into destination: any Destination) throws {
        let store = destination.profiles
        let batched = store as? any BatchedProfiles
        for profile in Profile.allCases {
            guard let ids = touched[profile], !ids.isEmpty, let traits = destination.catalog[profile.table]?.traitColumns else { continue }
            let sorted = ids.sorted()
            try batched?.prepareProfileCalls(profile, ids: sorted, traits: traits)
            for id in sorted {
                var values = [SQLValue](repeating: .null, count: traits.count)
                var receivedAt = SQLValue.null
                try store.profileCalls(profile, id: id, traits: traits) { received, trait in
                    receivedAt = received
                    for i in 0..<traits.count {
                        let value = trait(i)
                        if value != .null { values[i] = value }
                    }
                }
                try store.writeProfile(profile, id: id, receivedAt: receivedAt, traits: values)
            }
        }
        try batched?.finishProfiles()
        reset()
    }
}

extension ModelTouches {
    /// Hands what was noted to the destination (in the file's transaction) and forgets it.
    package func record(into destination: any Destination) throws {
        try destination.recordTouches(users: users, anons: anons)
        reset()
    }
}
