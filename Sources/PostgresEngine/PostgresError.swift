import CLibPQ
import Foundation
import SegmentCore
import SegmentWarehouse

/// What went wrong talking to PostgreSQL, as a sentence and the exit status it gives.
public struct PostgresError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The connection string or a setting is wrong (64).
        case usage
        /// The server refused the user or password, or a privilege is missing (77, EX_NOPERM).
        case permission
        /// The database does not exist (66, EX_NOINPUT, as a missing warehouse file).
        case noDatabase
        /// No server answered: host unknown, nothing listening, timeout (69, EX_UNAVAILABLE).
        case unreachable
        /// The server went away during the run, or is starting or shutting down (75,
        /// EX_TEMPFAIL: the next run completes what this one did not).
        case connectionLost
        /// A serialization failure or a deadlock: the transaction is to be run again.
        case retry
        /// Any other error the server reported for a statement (1).
        case statement
    }

    public var kind: Kind
    public var message: String
    /// The server's SQLSTATE, when it sent one.
    public var sqlState: String?

    public init(kind: Kind, message: String, sqlState: String? = nil) {
        (self.kind, self.message, self.sqlState) = (kind, message, sqlState)
    }

    public var description: String { message }

    public var exitStatus: Int32 {
        switch kind {
        case .usage: return ExitStatus.usage
        case .permission: return ExitStatus.noPermission
        case .noDatabase: return ExitStatus.noInput
        case .unreachable: return ExitStatus.unavailable
        case .connectionLost, .retry: return ExitStatus.locked
        case .statement: return ExitStatus.failure
        }
    }

    /// The kind an SQLSTATE stands for (https://www.postgresql.org/docs/15/errcodes-appendix.html).
    package static func kind(ofSQLState state: String) -> Kind {
        if state == "40001" || state == "40P01" { return .retry }
        if state.hasPrefix("08") || state == "57P01" || state == "57P02" || state == "57P03" { return .connectionLost }
        if state.hasPrefix("28") || state == "42501" { return .permission }
        if state == "3D000" { return .noDatabase }
        return .statement
    }

    /// The node (`host:port`) a Citus error says it could not reach, if it says so.
    package static func unreachableNode(in message: String) -> String? {
        for marker in ["failure on connection marked as essential: ", "connection to the remote node "] {
            guard let range = message.range(of: marker) else { continue }
            var node = message[range.upperBound...].prefix { !$0.isWhitespace && $0 != ")" }
            if let at = node.lastIndex(of: "@") { node = node[node.index(after: at)...] }
            if !node.isEmpty { return String(node) }
        }
        return nil
    }

    /// A connection that failed, from libpq's message (it has no SQLSTATE for these: the
    /// server's words are matched, and anything not recognised counts as unreachable).
    package static func connecting(to location: PostgresLocation, libpqMessage: String) -> PostgresError {
        let reason = serverWords(libpqMessage)
        let lower = reason.lowercased()
        let kind: Kind
        if lower.contains("password authentication failed") || lower.contains("no password supplied")
            || lower.contains("authentication failed") || lower.contains("pg_hba.conf") || lower.contains("role \"") && lower.contains("does not exist") {
            kind = .permission
        } else if lower.contains("database \"") && lower.contains("does not exist") {
            kind = .noDatabase
        } else if lower.contains("invalid") && (lower.contains("sslmode") || lower.contains("option")) {
            kind = .usage
        } else {
            kind = .unreachable
        }
        return PostgresError(kind: kind, message: "cannot connect to \(location.display): \(reason)")
    }

    /// The useful part of a libpq message: the server's own sentence after `FATAL:` when there
    /// is one, else libpq's, on one line.
    package static func serverWords(_ message: String) -> String {
        var text = message.trimmingCharacters(in: .whitespacesAndNewlines)
        if let fatal = text.range(of: "FATAL:", options: .backwards) { text = String(text[fatal.upperBound...]) }
        else if let failed = text.range(of: "failed: ", options: .backwards) { text = String(text[failed.upperBound...]) }
        return text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: "; ")
    }
}

/// One blocking libpq connection (one per writer thread, as SQLite's). Text-format
/// parameters and results; rows in bulk go through `copy`.
///
/// One statement may be left in flight while the caller works on: a COPY whose rows were all
/// sent (`copy(deferred: true)`), or a statement whose rows are read later (`send`: the next
/// FETCH of a cursor `each` reads, the claim of the writer's next chunk). The server works
/// on it while the loader builds the next rows; the next use of the connection first reads its
/// result (`settle`), so an error in it is thrown there, inside the same transaction.
