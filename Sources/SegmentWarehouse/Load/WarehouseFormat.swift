/// The warehouse format this build writes, on every engine: SQLite keeps it in
/// `PRAGMA user_version`, PostgreSQL in `_warehouse`. A newer one is refused untouched; an older
/// one is upgraded in place by the next run.
public enum WarehouseFormat {
    /// 2: `_rejects.redacted`; the loader's indexes are named `_idx_...`.
    /// 3: timestamps as `YYYY-MM-DD HH:MM:SS.sss`; Spec columns from the start; bookkeeping
    /// columns `table_name`/`column_name`; `_rejects.kind`; `_message_ids` keyed by digest;
    /// model table names reserved (SQLite's `WarehouseUpgrade` converts older files).
    /// 4: the product-analytics views' names (`active_people`, `daily_events`,
    /// `weekly_retention`) and the rollups' tables reserved: event tables of those names are
    /// renamed `_`-prefixed, on SQLite and PostgreSQL alike.
    public static let version: Int32 = 4
}
