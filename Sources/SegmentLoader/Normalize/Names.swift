import CSQLite
import Crypto

/// Table and column names of the warehouse (contract, section 4): go-snakecase, then made safe
/// for SQL and for PostgreSQL's 63-byte identifiers.
public enum Names {
    public static let maxLength = 63

    /// The tables the contract defines; a track event whose slug equals one of these gets a `_` prefix.
    public static let contractTables: Set<String> = [
        "tracks", "identifies", "users", "pages", "screens", "groups", "accounts", "aliases",
    ]

    /// Makes a snake-cased name usable as an SQL identifier: a leading digit or an SQL keyword
    /// gets a `_` prefix, and a name over 63 bytes is cut, ending in `_` and 8 hex digits of
    /// the SHA-256 of the whole name, so distinct long names stay distinct and stable.
    public static func sqlSafe(_ snake: String) -> String {
        var name = snake
        if let first = name.utf8.first, first >= 0x30 && first <= 0x39 {
            name = "_" + name
        } else if isKeyword(name) {
            name = "_" + name
        }
        return fitLength(name)
    }

    /// Cuts a name longer than 63 bytes to 54 bytes plus `_` plus 8 hex digits of its SHA-256.
    public static func fitLength(_ name: String) -> String {
        let utf8 = name.utf8
        guard utf8.count > maxLength else { return name }
        let head = String(decoding: utf8.prefix(maxLength - 9), as: UTF8.self)
        return head + "_" + shortHash(name)
    }

    /// The first 8 hex digits of the SHA-256 of `text`.
    public static func shortHash(_ text: String) -> String {
        let digest = SHA256.hash(data: Array(text.utf8))
        return digest.prefix(4).map { byte in
            let hex = String(byte, radix: 16)
            return hex.count == 1 ? "0" + hex : hex
        }.joined()
    }

    /// Whether SQLite treats `name` as a keyword (https://sqlite.org/c3ref/keyword_check.html).
    public static func isKeyword(_ name: String) -> Bool {
        var name = name
        return name.withUTF8 { buffer in
            buffer.withMemoryRebound(to: CChar.self) { chars in
                sqlite3_keyword_check(chars.baseAddress, Int32(chars.count)) != 0
            }
        }
    }

    /// The table for a track event: its slug, `_`-prefixed when it would take the name of a
    /// contract or bookkeeping table (or SQLite's own `sqlite_` names), and
    /// `_event_<8 hex of SHA-256>` when the name has no ASCII letters or digits at all.
    public static func eventTable(for event: String) -> String {
        let slug = snakeCase(event)
        if slug.isEmpty { return "_event_" + shortHash(event) }
        var name = sqlSafe(slug)
        if contractTables.contains(name) || name.hasPrefix("sqlite_") {
            name = fitLength("_" + name)
        }
        return name
    }
}
