import ArgumentParser
import Foundation
import SegmentLoader
#if canImport(Glibc)
import Glibc
#endif
import SegmentCore
import SQLiteEngine
import PostgresEngine
import SegmentWarehouse

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Generate a synthetic corpus and time loading it into a fresh warehouse.",
        discussion: """
            The corpus (deterministic for its --events, --files and --seed) is written once into \
            --dir and reused. Each load runs the real `segment-loader load` in a child process \
            into a new warehouse, so its wall time and peak resident memory are its own. Build \
            with -c release before you trust a figure.
            """
    )

    @Option(help: "Events in the corpus.") var events: Int = 500_000
    @Option(help: "Gzip files the events are spread over.") var files: Int = 8
    @Option(help: "Seed of the generator.") var seed: UInt64 = 1
    @Option(help: ArgumentHelp("Worker counts to load with, comma-separated (e.g. 1,2).", valueName: "n,...")) var jobs: String = "1,2"
    @Option(help: ArgumentHelp("Where the corpus, warehouses and reports go (ignored by git).", valueName: "dir")) var dir: String = "bench-data"
    @Flag(help: "Also time `gzip -dc` of the same files, the floor a loader cannot beat, and print the ratio.") var baseline = false
    @Flag(help: "Also measure what SQLite alone needs to write the resulting warehouse (same pragmas and journal mode), and print the ratio.") var floor = false
    @Option(name: .long, help: ArgumentHelp("Load into this PostgreSQL database instead of SQLite files in --dir: each run into a fresh schema bench_jobs<n> (dropped first).", valueName: "url"))
    var db: String?
    @Option(help: ArgumentHelp("With --db postgresql://...: also load with this many loaders at once, each on its share of the corpus's files, into one fresh schema, and compare with one loader.", valueName: "n"))
    var loaders: Int = 1
    @Flag(name: .long, help: "Load without building the models (identities, page_views, sessions), to time the load alone.")
    var noModels = false

    @Option(help: ArgumentHelp("Load each run into a warehouse that already holds this many other events (a second corpus of the days before, loaded once and copied).", valueName: "events")) var preload: Int = 0
    @Option(help: ArgumentHelp("Journal mode of the loads: wal or rollback.", valueName: "mode")) var journal: JournalMode = .wal
    @Option(help: ArgumentHelp("Make every event a track call named \"Viewed Product <n>\" with this many distinct n (a product id inside the event name), to time a run that meets more event names than the event table limit.", valueName: "n"))
    var eventNames: Int = 0
    @Flag(help: "Instead: generate a month of returning-visitor traffic (see docs/benchmark.md) and load it night by night into one warehouse with the default settings, printing each night's cost and the growth.")
    var nightly = false
    @Option(help: ArgumentHelp("With --nightly: nights to load.", valueName: "n")) var nights: Int = 30
    @Flag(help: .hidden) var generateOnly = false
    @Option(help: ArgumentHelp("With --nightly: the segment-loader binary whose loads are measured (default: this one), to compare two builds on one corpus with one measure.", valueName: "path"))
    var loader: String?
    @Option(help: ArgumentHelp("With --nightly: also load every night with this other segment-loader binary into a second warehouse, the two loads of a night one after the other (in turns first), and print each night's ratios and their mean: the way to compare two builds on a noisy machine.", valueName: "path"))
    var versus: String?
    @Option(help: ArgumentHelp("With --nightly: people in the population, each with one anonymous id.", valueName: "n")) var people: Int = 40_000
    @Option(help: ArgumentHelp("With --nightly: share of the people active on a night.", valueName: "share")) var activeShare: Double = 0.15

    @Flag(help: "Load each file of the corpus in a run of its own (in order, into one warehouse) instead of all in one run; figures are summed over the runs, peak RSS is the largest.")
    var runPerFile = false

    func validate() throws {
        guard events >= 1, files >= 1, events >= files else { throw ValidationError("--events must be at least --files, and both at least 1") }
        guard !jobList.isEmpty, jobList.allSatisfy({ $0 >= 1 }) else { throw ValidationError("--jobs takes whole numbers of 1 or more, comma-separated") }
        guard preload >= 0, preload == 0 || preload >= files else { throw ValidationError("--preload must be 0 or at least --files") }
        guard nights >= 1, people >= 1, activeShare > 0, activeShare <= 1 else {
            throw ValidationError("--nights and --people must be at least 1, --active-share between 0 and 1")
        }
        guard eventNames >= 0 else { throw ValidationError("--event-names must be 0 (the usual mix) or more") }
        if let db {
            guard WarehouseLocation.isPostgres(db) else { throw ValidationError("--db takes a PostgreSQL URL (postgresql://...); SQLite warehouses go in --dir") }
            guard !nightly && preload == 0 && !runPerFile else { throw ValidationError("--db postgresql:// goes without --nightly, --preload and --run-per-file") }
        }
        guard loaders >= 1 else { throw ValidationError("--loaders must be at least 1") }
        if loaders > 1 && db == nil { throw ValidationError("--loaders goes with --db postgresql://... (an SQLite warehouse takes one loader at a time)") }
        if let loader {
            guard nightly else { throw ValidationError("--loader goes with --nightly") }
            guard access(loader, X_OK) == 0 else { throw ValidationError("--loader \(loader): not an executable file") }
        }
        if let versus {
            guard nightly else { throw ValidationError("--versus goes with --nightly") }
            guard access(versus, X_OK) == 0 else { throw ValidationError("--versus \(versus): not an executable file") }
        }
    }

    var jobList: [Int] { jobs.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) } }

    func run() throws {
        let root = URL(fileURLWithPath: dir)
        if nightly { return try runNightly(root: root) }
        let spec = CorpusSpec(events: events, files: files, seed: seed, eventNames: eventNames)
        let folder = root.appendingPathComponent(spec.folderName)
        let generated = !FileManager.default.fileExists(atPath: folder.appendingPathComponent(".manifest.json").path)
        let genStart = Date()
        let paths = try Corpus.generate(spec, into: folder, jobs: ProcessInfo.processInfo.activeProcessorCount)
        let gzipBytes = paths.reduce(Int64(0)) { $0 + ((try? FileManager.default.attributesOfItem(atPath: $1.path)[.size] as? Int64) ?? 0) }
        print("corpus: \(events) events" + (eventNames > 0 ? " (track calls over \(eventNames) event names)" : "")
              + " in \(files) gzip files, \(mb(gzipBytes)) MB compressed, in \(dir)/\(spec.folderName)"
              + (generated ? " (generated in \(seconds(Date().timeIntervalSince(genStart))) s)" : " (reused)"))
        // scripts/s3-bench.sh wants only the corpus, to load it from S3 and from disk itself.
        if generateOnly { return }

        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        // A warehouse that already holds `preload` other events, made once and copied for each run:
        // the days before the corpus's, as a warehouse holds its history when a night's archives
        // arrive (so new rows land after the old ones in time, and in the received_at indexes).
        var preloaded: URL?
        if preload > 0 {
            let other = CorpusSpec(events: preload, files: files, seed: seed &+ 1_000_003, firstDay: -files)
            let otherFolder = root.appendingPathComponent(other.folderName)
            _ = try Corpus.generate(other, into: otherFolder, jobs: ProcessInfo.processInfo.activeProcessorCount)
            let target = root.appendingPathComponent("preload-\(other.folderName).sqlite")
            if !FileManager.default.fileExists(atPath: target.path) {
                let started = Date()
                let child = try runChild([executable, "load", "--db", target.path + ".partial", "--quiet", otherFolder.path])
                guard child.status == 0 else { throw ValidationError("the preload exited with status \(child.status)") }
                try FileManager.default.moveItem(atPath: target.path + ".partial", toPath: target.path)
                try? FileManager.default.removeItem(atPath: target.path + ".partial.lock")
                print("preload: \(preload) other events loaded into \(dir)/\(target.lastPathComponent) in \(seconds(Date().timeIntervalSince(started))) s (kept for later runs)")
            } else {
                print("preload: \(preload) other events already in \(dir)/\(target.lastPathComponent) (reused)")
            }
            preloaded = target
        }
        var rows: [[String]] = [["jobs", "wall s", "events/s", "MB/s", "peak RSS MB", "inflate s", "parse+normalize s", "write s", "scan pass s", "load pass s", "models s"]]
        var walls: [Int: Double] = [:]
        var peaks: [Int: Int] = [:]
        for n in jobList {
            let db = root.appendingPathComponent("bench-jobs\(n).sqlite")
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: db.path + suffix) }
            let target = try self.db.map { url in try freshSchema(url, "bench_jobs\(n)") } ?? ["--db", db.path]
            if let url = self.db { try quietServer(url) }
            if let preloaded { try FileManager.default.copyItem(at: preloaded, to: db) }
            // One run of the whole folder, or (--run-per-file) one per file in order; the
            // figures of several runs are summed, their peak RSS is the largest.
            let runs: [[String]] = runPerFile ? paths.map { [$0.path] } : [[folder.path]]
            var child = Child(status: 0, wall: 0, maxRSSKilobytes: 0)
            var totals: [String: Double] = [:]
            var json: JSONValue = .null
            for (r, inputs) in runs.enumerated() {
                let report = root.appendingPathComponent("report-jobs\(n)" + (runs.count > 1 ? "-run\(r + 1)" : "") + ".json")
                let one = try runChild([executable, "load"] + target + ["--jobs", "\(n)", "--journal", journal.rawValue, "--report", report.path]
                                       + (noModels ? ["--no-models"] : []) + inputs)
                guard one.status == 0 else {
                    throw ValidationError("the load with --jobs \(n) exited with status \(one.status); run it by hand to see why: \(executable) load --db \(db.path) \(inputs.joined(separator: " "))")
                }
                child.wall += one.wall
                child.maxRSSKilobytes = max(child.maxRSSKilobytes, one.maxRSSKilobytes)
                json = try JSONParser.parse(String(decoding: try Data(contentsOf: report), as: UTF8.self))
                for (name, value) in [("lines", json["totals"]?["lines"]), ("duplicates", json["totals"]?["duplicates"]),
                                      ("bytes", json["inflated_bytes"]), ("models", json["models"]?["seconds"]),
                                      ("events_past_limit", json["event_tables"]?["events_past_limit"])]
                    + ["inflate_cpu", "parse_and_normalize_cpu", "write", "scan_pass_wall", "load_pass_wall"].map({ ($0, json["stages_seconds"]?[$0]) }) {
                    totals[name, default: 0] += number(value)
                }
            }
            let lines = totals["lines"]!
            let bytes = totals["bytes"]!
            walls[n] = child.wall
            peaks[n] = child.maxRSSKilobytes / 1024
            rows.append(["\(n)", seconds(child.wall), "\(Int((lines / child.wall).rounded()))", String(format: "%.1f", bytes / 1e6 / child.wall),
                         "\(child.maxRSSKilobytes / 1024)", seconds(totals["inflate_cpu"]!),
                         seconds(totals["parse_and_normalize_cpu"]!), seconds(totals["write"]!),
                         seconds(totals["scan_pass_wall"]!), seconds(totals["load_pass_wall"]!),
                         noModels ? "-" : seconds(totals["models"]!)])
            if n == jobList.first {
                print("loaded: \(Int(lines)) messages, \(mb(Int64(bytes))) MB of NDJSON (\(Int(totals["duplicates"]!)) duplicates)"
                      + (runs.count > 1 ? " in \(runs.count) runs" : ""))
                if let models = json["models"], case .string(let mode)? = models["mode"] {
                    print("models" + (runs.count > 1 ? " (last run)" : "") + ": \(mode) build for \(Int(number(models["people"]))) people; identities \(Int(number(models["identities"]))), "
                          + "page_views \(Int(number(models["page_views"]))), sessions \(Int(number(models["sessions"])))")
                }
                if let tables = json["event_tables"] {
                    print("event tables: \(Int(number(tables["count"]))) (limit \(Int(number(tables["limit"])))); "
                          + "\(Int(totals["events_past_limit"]!)) track calls past the limit, in tracks")
                }
                if let url = self.db {
                    let size = PostgresWarehouseSize.bytes(url: url, schema: "bench_jobs\(n)")
                    print("warehouse: schema bench_jobs\(n) of \(WarehouseLocation.display(url, schema: "bench_jobs\(n)")), \(mb(size)) MB with indexes")
                    continue
                }
                // What every later connection pays: opening the warehouse and its first query
                // (SQLite reads the whole schema on it).
                let opened = Date()
                let check = try Database(path: db.path, readOnly: true)
                let count = try check.scalar("SELECT count(*) FROM tracks")?.integer ?? 0
                print("first query on a fresh connection (count(*) of tracks: \(count)): \(String(format: "%.3f", Date().timeIntervalSince(opened))) s; "
                      + "warehouse \(mb(Int64((try? FileManager.default.attributesOfItem(atPath: db.path)[.size] as? Int) ?? 0))) MB")
            }
        }
        print(table(rows))
        print("(inflate and parse+normalize are CPU seconds summed over workers, both passes; write is the writer thread's busy time;"
              + " models is the build of the models after the load, included in wall)")
        if baseline {
            let quoted = paths.map { "'\($0.path)'" }.joined(separator: " ")
            let floor = try runChild(["/bin/sh", "-c", "gzip -dc \(quoted) > /dev/null"])
            var line = "baseline: gzip -dc of the same files takes \(seconds(floor.wall)) s on one core"
            for n in jobList { line += "; jobs \(n) is \(String(format: "%.1f", walls[n]! / floor.wall))x that" }
            print(line)
        }
        if let url = db, loaders > 1 {
            // Each loader its run of consecutive days, as docs/scaling.md splits the input: a
            // message delivered twice lands in files close in time, and a loader that meets an
            // id another loader has claimed in a file not yet committed waits for that file.
            let n = jobList.last!
            let parts = (0..<loaders).map { k in paths[(k * paths.count / loaders)..<((k + 1) * paths.count / loaders)].map(\.path) }
            let target = try freshSchema(url, "bench_loaders\(loaders)")
            try quietServer(url)
            let children = try runChildren(parts.map { [executable, "load"] + target + ["--jobs", "\(n)", "--quiet"] + (noModels ? ["--no-models"] : []) + $0 })
            for (k, child) in children.enumerated() where child.status != 0 {
                throw ValidationError("loader \(k + 1) of \(loaders) exited with status \(child.status)")
            }
            let wall = children.map(\.wall).max() ?? 0
            print(String(format: "loaders: %d at once (jobs %d each), each on 1/%d of the files (consecutive days), into one schema: %.2f s (one loader, jobs %d: %.2f s; %.2fx); peak RSS %@ MB",
                         loaders, n, loaders, wall, n, walls[n]!, walls[n]! / wall, children.map { "\($0.maxRSSKilobytes / 1024)" }.joined(separator: ", ")))
        }
        if floor, let url = db {
            let schema = "bench_jobs\(jobList.last!)"
            let scratch = root.appendingPathComponent("floor-copy")
            try? FileManager.default.removeItem(at: scratch)
            try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: scratch) }
            let scripts = try PostgresFloor.scripts(url: url, schema: schema, floorSchema: "bench_floor", scratch: scratch)
            let exportScript = scratch.appendingPathComponent("export.sql"), loadScript = scratch.appendingPathComponent("load.sql")
            try scripts.export.write(to: exportScript, atomically: true, encoding: .utf8)
            try scripts.load.write(to: loadScript, atomically: true, encoding: .utf8)
            let psql = ["/usr/bin/env", "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f"]
            guard try runChild(psql + [exportScript.path]).status == 0 else { throw ValidationError("psql could not export \(schema) (is psql installed? Debian: postgresql-client)") }
            try quietServer(url)
            let timed = try runChild(psql + [loadScript.path])
            guard timed.status == 0 else { throw ValidationError("psql could not load the floor schema (status \(timed.status))") }
            var line = "floor: psql COPY of the same rows (\(scripts.tables) tables, \(scripts.rows) rows) into a fresh schema, indexes after, takes \(seconds(timed.wall)) s"
            for n in jobList { line += "; jobs \(n) is \(String(format: "%.1f", walls[n]! / timed.wall))x that" }
            print(line)
        } else if floor {
            let last = root.appendingPathComponent("bench-jobs\(jobList.last!).sqlite")
            let result = try WriteFloor.measure(source: last.path, journal: journal,
                                                scratch: root.appendingPathComponent("floor.sqlite").path)
            var line = "floor: SQLite alone writes that warehouse (\(result.tables) tables, \(result.rows) rows, journal \(journal.rawValue)) in \(seconds(result.seconds)) s"
            for n in jobList { line += "; jobs \(n) is \(String(format: "%.1f", walls[n]! / result.seconds))x that" }
            print(line)
            if preload > 0 { print("(the floor copies the whole warehouse, the preloaded events included)") }
        }
    }

    func number(_ value: JSONValue?) -> Double {
        switch value {
        case .int(let i)?: return Double(i)
        case .double(let d)?: return d
        default: return 0
        }
    }
}
