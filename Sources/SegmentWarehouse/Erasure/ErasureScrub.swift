/// What an engine does so that a forgotten person is gone from its bytes, not only from its rows
/// (docs/warehouse.md, Erasure). `Warehouse` (SQLite) and `PostgresWarehouse` implement it.
package protocol ErasureScrub: LoadTarget {
    /// The session the erasure runs in.
    var erasureSession: any SQLSession { get }
    /// Before the erasure's transaction: deleted content is overwritten where it lies, if the
    /// engine can (SQLite's `secure_delete`).
    func prepareErasure() throws
    /// After it committed: what the engine still keeps of the deleted rows goes (SQLite: the file
    /// rewritten by VACUUM and its WAL emptied; PostgreSQL: the tables vacuumed). Returns why it
    /// could not finish (then the request stays pending), or nil.
    func scrub(tables: [String]) throws -> String?
}
