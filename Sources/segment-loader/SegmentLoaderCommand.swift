import ArgumentParser

@main
struct SegmentLoaderCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "segment-loader",
        abstract: "Load Segment-format event archives (gzip NDJSON) into a SQLite warehouse.",
        discussion: """
            Tables follow Segment Warehouses: tracks, identifies, users, pages, screens, groups, \
            accounts, aliases, and one table per track event. Bookkeeping lives in _loads, _files, \
            _rejects, _discards, _schema_tables and _schema_columns. Timestamps are UTC text \
            YYYY-MM-DD HH:MM:SS.sss (warehouse format 3); docs/warehouse.md describes every table.

            Start with `segment-loader run pipelines/sample.yml`; `segment-loader status --db \
            warehouse.sqlite` shows what a warehouse holds.
            """,
        version: "0.1.0",
        subcommands: [RunCommand.self, ValidateCommand.self, LoadCommand.self, StatusCommand.self, RejectsCommand.self, ModelsCommand.self, DatasetteCommand.self, BenchCommand.self]
    )
}
