import ArgumentParser

@main
struct SegmentLoaderCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "segment-loader",
        abstract: "Load Segment-format event archives (gzip NDJSON) into a SQLite warehouse.",
        discussion: """
            Tables follow Segment Warehouses: tracks, identifies, users, pages, screens, groups, \
            accounts, aliases, and one table per track event. Bookkeeping lives in _loads, _files, \
            _rejects, _discards and _schema_columns.

            Start with `segment-loader run pipelines/sample.yml`; `segment-loader status --db \
            warehouse.sqlite` shows what a warehouse holds.
            """,
        version: "0.1.0",
        subcommands: [RunCommand.self, ValidateCommand.self, LoadCommand.self, StatusCommand.self, RejectsCommand.self, BenchCommand.self]
    )
}
