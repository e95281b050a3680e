import CSQLite
import SegmentWarehouse

/// How a transaction takes its lock (https://sqlite.org/lang_transaction.html): IMMEDIATE
/// takes the write lock at BEGIN, so a writer waits for another program's lock there (through
/// the busy handler) instead of failing half way; DEFERRED takes it at the first write.
public enum TransactionKind: String, Sendable {
    case deferred = "DEFERRED"
    case immediate = "IMMEDIATE"
}

extension Database {
    /// Whether a transaction is open on this connection.
    public var isInTransaction: Bool { sqlite3_get_autocommit(handle) == 0 }

    /// Runs `body` in one transaction: committed when `body` returns, rolled back when it (or
    /// the commit) throws, and the error rethrown. Every write the loader makes goes through
    /// here; a rollback that fails is reported as a `RollbackFailure`, never swallowed.
    ///
    /// Inside an open transaction it is a savepoint instead: released when `body` returns,
    /// rolled back to when it throws. (A run's grouped files are not: see `WritePass.groupFiles`.)
    @discardableResult
    public func transaction<R>(_ kind: TransactionKind = .immediate, _ body: () throws -> R) throws -> R {
        if isInTransaction { return try savepoint(body) }
        try execute("BEGIN \(kind.rawValue)")
        let result: R
        do {
            result = try body()
            try execute("COMMIT")
        } catch {
            try rollback(after: error)
            throw error
        }
        return result
    }

    private func savepoint<R>(_ body: () throws -> R) throws -> R {
        try execute("SAVEPOINT nested")
        savepointsOpened += 1
        let result: R
        do {
            result = try body()
            try execute("RELEASE nested")
        } catch {
            // After some errors SQLite has rolled back the whole transaction itself.
            if isInTransaction {
                do {
                    try execute("ROLLBACK TO nested; RELEASE nested")
                } catch let failure {
                    throw RollbackFailure(cause: error, rollback: failure)
                }
            }
            throw error
        }
        return result
    }

    /// Rolls back the open transaction after `error`. SQLite has rolled it back itself after
    /// some errors (a full disk, an I/O error): then there is nothing left to do.
    package func rollback(after error: any Error) throws {
        guard isInTransaction else { return }
        do {
            try execute("ROLLBACK")
        } catch let failure {
            throw RollbackFailure(cause: error, rollback: failure)
        }
    }
}
