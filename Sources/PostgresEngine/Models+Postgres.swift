import Foundation
import SegmentCore
import SegmentWarehouse

extension Models {
    /// `segment-loader models` on a PostgreSQL warehouse (which must exist).
    public static func build(postgres database: String, schema: String?, options: ModelOptions, rebuild: Bool) throws -> ModelBuild {
        let warehouse = try PostgresWarehouse(existing: PostgresLocation(database, schema: schema))
        return try build(session: warehouse.connection, options: options, rebuild: rebuild)
    }
}
