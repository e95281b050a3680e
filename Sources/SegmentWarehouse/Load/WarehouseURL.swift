import SegmentCore

/// What a `--db` names: a URL of a scheme the loader knows (a warehouse on a server), a
/// mistyped URL, or else the path of a SQLite file.
public enum WarehouseURL {
    /// The URL schemes a `--db` may have: PostgreSQL's two (anything else is a file path).
    public static let schemes = ["postgresql://", "postgres://"]

    /// A `--db` that looks like a URL (`scheme://...`) of a scheme this build does not know: a
    /// mistyped `postgresql://` rather than a file to create in a folder named `postgressql:`.
    public static func typo(_ database: String) -> WarehouseError? {
        guard let end = database.range(of: "://") else { return nil }
        let scheme = database[..<end.lowerBound].lowercased()
        guard !scheme.isEmpty, scheme.first!.isLetter,
              scheme.allSatisfy({ $0.isLetter || $0.isNumber || "+.-".contains($0) }),
              !isServer(database) else { return nil }
        let nearest = schemes.min { distance(scheme + "://", $0) < distance(scheme + "://", $1) }!
        let hint = distance(scheme + "://", nearest) <= 3 ? " (did you mean \(nearest)?)" : ""
        return WarehouseError(message: "--db \(redacted(database)) is a URL of an unknown scheme \(scheme)://\(hint): "
                              + "a PostgreSQL warehouse is \(schemes.map { $0 + "..." }.joined(separator: " or ")), a SQLite warehouse is a file path")
    }

    /// Whether `text` is a URL of a known scheme (a PostgreSQL warehouse).
    public static func isServer(_ text: String) -> Bool {
        let lower = text.lowercased()
        return schemes.contains { lower.hasPrefix($0) }
    }

    /// `text` with any password taken out: the `user:password@` of a URL, a `password=`
    /// query parameter or conninfo word. For messages about a string libpq could not read.
    public static func redacted(_ text: String) -> String {
        var out = text
        // Any URL's user:password@ (a mistyped scheme's too), not only postgresql://'s.
        if let scheme = out.range(of: "://") {
            let rest = out[scheme.upperBound...]
            let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? rest.endIndex
            if let at = rest[..<authorityEnd].lastIndex(of: "@"), let colon = rest[..<at].firstIndex(of: ":") {
                out.replaceSubrange(colon..<at, with: ":***")
            }
        }
        // password=... in a query string or as a conninfo word, up to the next & or space.
        var result = ""
        var rest = Substring(out)
        while let range = rest.range(of: "password=", options: .caseInsensitive) {
            result += rest[..<range.upperBound] + "***"
            rest = rest[range.upperBound...]
            if rest.first == "'" {
                // A quoted conninfo value: up to the closing quote, past \' escapes.
                var index = rest.index(after: rest.startIndex)
                while index < rest.endIndex && rest[index] != "'" {
                    if rest[index] == "\\" { index = rest.index(after: index); if index == rest.endIndex { break } }
                    index = rest.index(after: index)
                }
                rest = rest[(index < rest.endIndex ? rest.index(after: index) : index)...]
            } else {
                let end = rest.firstIndex(where: { $0 == "&" || $0 == " " }) ?? rest.endIndex
                rest = rest[end...]
            }
        }
        return result + rest
    }
}
