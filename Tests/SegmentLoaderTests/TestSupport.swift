import CZlib
import Foundation
import XCTest
@testable import SegmentLoader
@testable import SegmentCore
@testable import SegmentWarehouse
@testable import SQLiteEngine

/// A fresh directory under the system's temporary folder, removed when the test ends.
func temporaryDirectory(_ test: XCTestCase) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("segment-loader-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
    return url
}

/// One gzip member holding `text`.
func gzip(_ text: String) -> [UInt8] {
    gzip(bytes: Array(text.utf8))
}

/// One gzip member holding `bytes`.
func gzip(bytes: [UInt8], level: Int32 = 6) -> [UInt8] {
    var stream = z_stream()
    precondition(czlib_deflate_init2(&stream, level, 15 + 16) == Z_OK)
    defer { deflateEnd(&stream) }
    var input = bytes
    var output = [UInt8](repeating: 0, count: Int(deflateBound(&stream, uLong(input.count))) + 64)
    let produced: Int = input.withUnsafeMutableBufferPointer { inp in
        output.withUnsafeMutableBufferPointer { out in
            stream.next_in = inp.baseAddress
            stream.avail_in = uInt(inp.count)
            stream.next_out = out.baseAddress
            stream.avail_out = uInt(out.count)
            precondition(deflate(&stream, Z_FINISH) == Z_STREAM_END)
            return out.count - Int(stream.avail_out)
        }
    }
    return Array(output[0..<produced])
}

/// NDJSON text of messages given as JSON object literals (keys sorted, for stable bytes).
func ndjson(_ messages: [[String: Any]]) -> String {
    messages.map { jsonLine($0) + "\n" }.joined()
}

func jsonLine(_ object: [String: Any]) -> String {
    let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
    return String(decoding: data, as: UTF8.self)
}

@discardableResult
func write(_ bytes: [UInt8], to url: URL) throws -> URL {
    try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
    try Data(bytes).write(to: url)
    return url
}

@discardableResult
func write(_ text: String, to url: URL) throws -> URL {
    try write(Array(text.utf8), to: url)
}

/// A track message as analytics.js would deliver it through Segment.
func track(_ id: String, event: String = "Application Enabled", user: String = "u1", received: String = "2024-03-01T10:00:00.000Z",
           properties: [String: Any] = [:], extra: [String: Any] = [:]) -> [String: Any] {
    var message: [String: Any] = [
        "type": "track", "messageId": id, "event": event, "userId": user, "properties": properties,
        "receivedAt": received, "sentAt": received, "originalTimestamp": received, "timestamp": received,
        "context": ["library": ["name": "analytics.js", "version": "2.1.0"]],
        // Fields the contract does not store: they must not reach any table, not even `_extra`.
        "channel": "client", "version": 2, "projectId": "p1", "writeKey": "k1", "_metadata": ["bundled": ["Segment.io"]],
        "integrations": [String: Any](),
    ]
    for (k, v) in extra { message[k] = v }
    return message
}

func identify(_ id: String, user: String, at time: String, traits: [String: Any]) -> [String: Any] {
    ["type": "identify", "messageId": id, "userId": user, "traits": traits, "receivedAt": time, "sentAt": time,
     "originalTimestamp": time, "timestamp": time]
}

/// Runs a load with a fixed clock.
@discardableResult
func load(_ paths: [URL], into db: URL, jobs: Int = 2, configure: (inout LoadOptions) -> Void = { _ in }) throws -> RunSummary {
    var options = LoadOptions(database: db.path, jobs: jobs)
    options.now = { Date(timeIntervalSince1970: 1_700_000_000) }
    configure(&options)
    return try LoadRun.run(paths: paths.map(\.path), options: options)
}

/// Rows of a query as text (NULL as "NULL"), for compact assertions.
func rows(_ db: URL, _ sql: String) throws -> [[String]] {
    let database = try Database(path: db.path, readOnly: true)
    return try database.query(sql).map { row in
        row.map { value in
            switch value {
            case .null: return "NULL"
            case .integer(let i): return String(i)
            case .real(let d): return String(d)
            case .text(let s): return s
            case .blob(let b): return "blob(\(b.count))"
            }
        }
    }
}

func scalar(_ db: URL, _ sql: String) throws -> String {
    try rows(db, sql).first?.first ?? "NULL"
}

/// Every table the models derive (theirs, the rollups') and the analytics views, each row as
/// text in the order of all its columns, for comparing incremental builds with a rebuild.
func modelsDump(_ db: URL) throws -> String {
    try (Models.tables + Rollups.tables + Rollups.views).map { table in
        let columns = Int(try scalar(db, "SELECT count(*) FROM pragma_table_info('\(table)')"))!
        let order = (1...columns).map(String.init).joined(separator: ", ")
        return table + "\n" + (try rows(db, "SELECT * FROM \(table) ORDER BY \(order)").map { $0.joined(separator: "|") }.joined(separator: "\n"))
    }.joined(separator: "\n")
}

/// Every user table and the data bookkeeping, as text, leaving out what depends on the clock
/// or the run (uuid_ts, load ids, times of loading), for comparing two warehouses.
func dumpWarehouse(_ db: URL) throws -> String {
    let database = try Database(path: db.path, readOnly: true)
    var out: [String] = []
    let tables = try database.query("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").compactMap { $0[0].text }
    // `_loads` and `_models` log when and how fast runs and model builds went, not what the warehouse holds.
    for table in tables where !["_loads", "_models"].contains(table) {
        let columns = try database.query("SELECT name, type FROM pragma_table_info('\(table)')")
            .compactMap { row -> String? in
                guard let name = row[0].text else { return nil }
                return ["uuid_ts", "load_id", "first_load_id", "loaded_at", "id"].contains(name) && table.hasPrefix("_") ? nil
                    : name == "uuid_ts" ? nil : name
            }
        out.append("TABLE \(table) (\(try database.query("SELECT name || ' ' || type FROM pragma_table_info('\(table)')").compactMap { $0[0].text }.joined(separator: ", ")))")
        let list = columns.map(quoteIdentifier).joined(separator: ", ")
        for row in try database.query("SELECT \(list) FROM \(quoteIdentifier(table)) ORDER BY \(list)") {
            out.append(row.map { "\($0)" }.joined(separator: "|"))
        }
    }
    return out.joined(separator: "\n")
}

/// What the built `segment-loader` binary did.
struct BinaryResult {
    var status: Int32
    /// Killed by a signal (`status` is then the signal's number).
    var signaled: Bool
    var stdout: String
    var stderr: String
}

/// The built `segment-loader`, beside the test bundle.
var segmentLoaderBinary: URL {
    let products = Bundle.main.bundleURL
    let candidate = products.appendingPathComponent("segment-loader")
    if FileManager.default.fileExists(atPath: candidate.path) { return candidate }
    return products.deletingLastPathComponent().appendingPathComponent("segment-loader")
}

/// Runs the built binary as a user would, with extra environment variables (in `directory`,
/// when given, as its working directory).
func runSegmentLoader(_ arguments: [String], environment: [String: String] = [:], in directory: URL? = nil) throws -> BinaryResult {
    try runBinary(segmentLoaderBinary, arguments, environment: environment, in: directory)
}

/// Runs `binary` to its end, collecting what it prints.
func runBinary(_ binary: URL, _ arguments: [String], environment: [String: String] = [:], in directory: URL? = nil) throws -> BinaryResult {
    let process = Process()
    process.executableURL = binary
    process.arguments = arguments
    if let directory { process.currentDirectoryURL = directory }
    var env = ProcessInfo.processInfo.environment
    for (k, v) in environment { env[k] = v }
    process.environment = env
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    // Both pipes at once: reading one to its end while the child fills the other's 64 KB
    // buffer would deadlock.
    let stderrData = Locked(Data())
    let done = DispatchSemaphore(value: 0)
    let errors = err.fileHandleForReading
    DispatchQueue.global().async {
        let data = errors.readDataToEndOfFile()
        stderrData.withLock { $0 = data }
        done.signal()
    }
    let stdout = out.fileHandleForReading.readDataToEndOfFile()
    done.wait()
    let stderr = stderrData.withLock { $0 }
    process.waitUntilExit()
    return BinaryResult(status: process.terminationStatus, signaled: process.terminationReason == .uncaughtSignal,
                        stdout: String(decoding: stdout, as: UTF8.self), stderr: String(decoding: stderr, as: UTF8.self))
}

/// The Segment Spec's context columns every call and event table has from the start, in order.
let specContextColumns = [
    "context_ip", "context_user_agent", "context_locale", "context_library_name", "context_library_version",
    "context_page_path", "context_page_referrer", "context_page_search", "context_page_title", "context_page_url",
    "context_campaign_source", "context_campaign_medium", "context_campaign_name", "context_campaign_term", "context_campaign_content",
]

/// A seeded random number generator for test data (SplitMix64), so a failing test reproduces.
struct SeededGenerator: RandomNumberGenerator {
    private var inner: SplitMix64
    init(seed: UInt64) { inner = SplitMix64(seed: seed) }
    mutating func next() -> UInt64 { inner.next() }
}
