import Foundation
import SegmentCore
import SegmentWarehouse

extension Models {
    /// `segment-loader models` on a PostgreSQL warehouse (which must exist); through a Citus
    /// worker, on its coordinator, which alone makes and drops the models' tables and indexes.
    public static func build(postgres database: String, schema: String?, options: ModelOptions, rebuild: Bool) throws -> ModelBuild {
        var warehouse = try PostgresWarehouse(existing: PostgresLocation(database, schema: schema))
        if let coordinator = warehouse.connection.coordinatorLocation { warehouse = try PostgresWarehouse(existing: coordinator) }
        return try build(session: warehouse.connection, options: options, rebuild: rebuild)
    }
}
