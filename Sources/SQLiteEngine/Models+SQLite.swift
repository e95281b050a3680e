import Foundation
import SegmentCore
import SegmentWarehouse

extension Models {
    /// Brings the models up to date in one transaction: a full rebuild when asked, when they
    /// were never built or when the session timeout changed; else the people touched since the
    /// last build. Returns what it did (`none` when nothing was touched).
    public static func build(in db: Database, options: ModelOptions = ModelOptions(), rebuild: Bool = false,
                             loadId: Int64? = nil, now: Date = Date()) throws -> ModelBuild {
        // Sorting a whole warehouse's activity spills to a temporary file, not memory.
        try db.execute("PRAGMA temp_store=FILE")
        defer { try? db.execute("PRAGMA temp_store=MEMORY") }
        return try build(session: db, options: options, rebuild: rebuild, loadId: loadId, now: now)
    }
}
