import SegmentCore

/// The `aliases` table as a graph: each previous id points to the user id of its latest alias
/// (by timestamp, then received_at, then id). `final` follows those links to the end of the
/// chain; a cycle (a → b, b → a) ends at the smallest id of the cycle, so the answer does not
/// depend on the order the aliases arrived in.
struct AliasGraph {
    private(set) var next: [String: String] = [:]
    private var neighbours: [String: [String]] = [:]
    private var finals: [String: String] = [:]

    init(db: any SQLSession, hasAliases: Bool) throws {
        guard hasAliases else { return }
        let (byBytes, nullsFirst) = (db.dialect.byBytes, db.dialect.nullsFirst)
        try db.each("""
            SELECT previous_id, user_id FROM aliases
            WHERE previous_id IS NOT NULL AND user_id IS NOT NULL AND previous_id <> user_id
            ORDER BY timestamp\(nullsFirst), received_at\(nullsFirst), id\(byBytes)
            """, []) { select in
            guard let previous = select.value(at: 0).idText, let user = select.value(at: 1).idText else { return }
            next[previous] = user
            neighbours[previous, default: []].append(user)
            neighbours[user, default: []].append(previous)
        }
        for id in next.keys { finals[id] = resolve(id) }
    }

    /// The id at the end of `id`'s alias chain (`id` itself when it was never aliased).
    func final(_ id: String) -> String { finals[id] ?? id }

    /// Every id an alias links to `id`, directly or not, in either direction (with `id`).
    func component(of id: String) -> Set<String> {
        var seen: Set<String> = [id]
        var stack = [id]
        while let current = stack.popLast() {
            for other in neighbours[current] ?? [] where seen.insert(other).inserted { stack.append(other) }
        }
        return seen
    }

    /// The ids whose chain does not end at themselves, with where it ends.
    var aliased: [(id: String, final: String)] {
        finals.compactMap { $0.value == $0.key ? nil : ($0.key, $0.value) }.sorted { $0.id < $1.id }
    }

    private func resolve(_ start: String) -> String {
        var path: [String] = [start]
        var index: [String: Int] = [start: 0]
        var current = start
        while let following = next[current] {
            if let at = index[following] {
                return path[at...].min()!
            }
            index[following] = path.count
            path.append(following)
            current = following
        }
        return current
    }
}

extension SQLValue {
    /// An id column's value as text (a number keeps its digits).
    package var idText: String? {
        switch self {
        case .text(let s): return s
        case .integer(let n): return String(n)
        case .real(let d): return String(d)
        default: return nil
        }
    }
}
