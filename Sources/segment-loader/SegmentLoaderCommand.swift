import ArgumentParser
import Foundation
import SegmentLoader
import YAMLFiles
import SegmentCore
import SegmentWarehouse

@main
struct SegmentLoaderCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "segment-loader",
        abstract: "Load Segment-format event archives (gzip NDJSON) into a SQLite or PostgreSQL warehouse.",
        discussion: """
            Tables follow Segment Warehouses: tracks, identifies, users, pages, screens, groups, \
            accounts, aliases, and one table per track event. Bookkeeping lives in _loads, _files, \
            _rejects, _discards, _schema_tables and _schema_columns. Timestamps are UTC: text \
            YYYY-MM-DD HH:MM:SS.sss in SQLite (warehouse format 3), timestamptz in PostgreSQL; \
            docs/warehouse.md describes every table. --db takes a SQLite file or a PostgreSQL URL \
            (postgresql://user@host/db, with --schema; docs/postgresql.md). Archives are read \
            from files and folders, or straight from S3 (s3://bucket/prefix/, credentials as the \
            AWS CLI reads them; docs/operations.md).

            Start with `segment-loader run pipelines/sample.yml`; `segment-loader status --db \
            warehouse.sqlite` shows what a warehouse holds.
            """,
        version: "0.1.0",
        subcommands: [RunCommand.self, ValidateCommand.self, LoadCommand.self, StatusCommand.self, RejectsCommand.self, ForgetCommand.self, SuppressionsCommand.self, ModelsCommand.self, FunnelCommand.self, DatasetteCommand.self, BenchCommand.self]
    )

    /// A first word that is no command is named as such (with what it may have meant) before
    /// the parser sees it: left to the parser, `lod --db w.sqlite` is answered "Unknown option
    /// '--db'".
    static func main() {
        let names = configuration.subcommands.compactMap { $0.configuration.commandName } + ["help"]
        if let first = CommandLine.arguments.dropFirst().first, !first.hasPrefix("-"), !names.contains(first) {
            let near = names.min { distance(first, $0) < distance(first, $1) }
            var message = "unknown command '\(first)'"
            if let near, distance(first, near) <= 2 { message += " (did you mean \(near)?)" }
            printError(message + "; the commands are " + names.dropLast().joined(separator: ", ") + " (segment-loader --help)")
            Foundation.exit(Exit.usage)
        }
        main(nil)
    }
}
