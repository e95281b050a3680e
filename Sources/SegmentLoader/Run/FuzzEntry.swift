#if canImport(Glibc)
import Glibc
#endif

import Foundation
import SegmentCore
import SegmentStages
import SegmentWarehouse
import SQLiteEngine

/// What the fuzz harness (`Sources/segment-loader-fuzz`, `scripts/fuzz.sh`) drives: everything a
/// line goes through, the reader, and a load into a scratch warehouse, with the checks that must
/// hold for any input. Under the fuzzer a broken check traps, which it reports with the input;
/// `replay` instead returns what the input gave and which checks broke, so a regression test
/// can assert both and go on to the next input.
public enum FuzzEntry {
    /// What one input gave.
    public struct Replay: Sendable, Equatable {
        /// Messages and rejects of the input taken as one line (with no privacy rules).
        public var messages = 0
        public var rejects: [RejectKind] = []
        /// Lines the reader handed on when the input is taken as an archive.
        public var archiveLines = 0
        /// The accounting of the load into a scratch warehouse (nil when it could not load).
        public var loaded: Counts?
        /// The checks that broke; empty for a sound input.
        public var failures: [String] = []
    }

    /// Records broken checks (replay), or traps on the first (fuzzing).
    final class Checks: @unchecked Sendable {
        let trap: Bool
        var failures: [String] = []
        init(trap: Bool) { self.trap = trap }
        func check(_ condition: Bool, _ message: @autoclosure () -> String) {
            guard !condition else { return }
            if trap { preconditionFailure(message()) }
            failures.append(message())
        }
    }

    /// Every check on one input, without trapping: for tests.
    public static func replay(_ bytes: UnsafeBufferPointer<UInt8>, scratch path: String) -> Replay {
        let checks = Checks(trap: false)
        var replay = Replay()
        (replay.messages, replay.rejects) = line(bytes, checks: checks)
        replay.archiveLines = archive(bytes, scratch: path, checks: checks)
        replay.loaded = load(scratch: path, checks: checks)
        replay.failures = checks.failures
        return replay
    }

    /// The input as an archive loaded into a scratch warehouse beside `scratch`: the load must
    /// not fail, every file's accounting must balance and the database must pass integrity_check.
    public static func load(scratch path: String) { _ = load(scratch: path, checks: Checks(trap: true)) }

    static func load(scratch path: String, checks: Checks) -> Counts? {
        let warehouse = path + ".warehouse.sqlite"
        for suffix in ["", "-wal", "-shm", ".lock"] { unlink(warehouse + suffix) }
        defer { for suffix in ["", "-wal", "-shm", ".lock"] { unlink(warehouse + suffix) } }
        var options = LoadOptions(database: warehouse, jobs: 1)
        options.maxLineBytes = 1024
        (options.maxInflateRatio, options.bombFloor) = (inflateRatio, bombFloor)
        options.models.enabled = true
        let summary: RunSummary
        do {
            summary = try LoadRun.run(paths: [path], options: options)
        } catch {
            checks.check(false, "the load threw: \(error)")
            return nil
        }
        checks.check(summary.fatalError == nil, "the load failed: \(summary.fatalError ?? "")")
        for file in summary.files { checks.check(file.counts.balances, "the accounting of \(file.path) does not balance") }
        if let db = try? Database(path: warehouse, readOnly: true) {
            checks.check((try? db.scalar("PRAGMA integrity_check"))??.text == "ok", "integrity_check failed")
            let unbalanced = (try? db.scalar("SELECT count(*) FROM _files WHERE lines != loaded + duplicates + rejected + filtered"))??.integer
            checks.check(unbalanced == 0, "_files accounting does not balance")
        } else {
            checks.check(false, "the scratch warehouse cannot be opened")
        }
        return summary.totals
    }

    /// The gzip-bomb guard of the harness, far below a load's (200 times past 64 MiB): every
    /// line of a damaged member becomes a `_rejects` row, and a 10 KB input that inflates a
    /// thousandfold to 860,000 short lines took 35 s under AddressSanitizer, past libFuzzer's
    /// time limit, although its cost is linear. With this guard no input makes more than
    /// 64 KiB or 50 times its size of lines, and the bomb path itself comes up more often.
    static let (inflateRatio, bombFloor): (Int64, Int64) = (50, 1 << 16)

    /// The input as a whole archive (gzip when it starts like one, else NDJSON), read from a
    /// scratch file by the same reader a load uses, with a small line limit so that long lines,
    /// torn lines, damaged members and member boundaries all come up; each line then goes
    /// through `line`.
    public static func archive(_ bytes: UnsafeBufferPointer<UInt8>, scratch path: String) {
        _ = archive(bytes, scratch: path, checks: Checks(trap: true))
    }

    /// Returns how many lines the reader handed on (first pass).
    static func archive(_ bytes: UnsafeBufferPointer<UInt8>, scratch path: String, checks: Checks) -> Int {
        guard let fd = Optional(open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)), fd >= 0 else { return 0 }
        var written = 0
        while written < bytes.count {
            let n = write(fd, bytes.baseAddress! + written, bytes.count - written)
            if n <= 0 { break }
            written += n
        }
        close(fd)
        let gzip = bytes.count >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b
        var reader = ArchiveReader(maxLineBytes: 1024, blockSize: 64)
        (reader.maxInflateRatio, reader.bombFloor) = (inflateRatio, bombFloor)
        var lastLine = 0
        var distrustFrom: Int?
        var reason = ""
        var handedOn = 0
        for pass in 0..<2 {
            let distrust = pass == 1 ? distrustFrom.map { Distrust(fromLine: $0, reason: reason) } : nil
            var lines = 0
            guard let outcome = try? reader.read(path: path, format: gzip ? .gzip : .ndjson, distrust: distrust, body: { number, line, problem in
                checks.check(number > lastLine || lines == 0, "line numbers increase")
                checks.check(line.count <= 1024, "a line handed on is within the limit")
                if let distrust, number >= distrust.fromLine { checks.check(problem != nil, "distrusted lines come with their problem") }
                lastLine = number
                lines += 1
                if pass == 0 && problem == nil { _ = Self.line(line, checks: checks) }
            }) else { return handedOn }
            checks.check(outcome.physicalLines >= lines, "physical lines count every line")
            checks.check(outcome.size == Int64(bytes.count), "every byte was read")
            if pass == 0 {
                handedOn = lines
                distrustFrom = outcome.corruptFromLine
                reason = outcome.streamError ?? ""
                guard distrustFrom != nil else { return handedOn }
                lastLine = 0
            }
        }
        return handedOn
    }

    /// One NDJSON line: parse, unwrap a batch, privacy rules, normalize, pack into records and
    /// read the records back; and JSON that parses must print as JSON that parses and prints
    /// the same (the writer keeps the last of duplicate keys, so printing is the fixed point).
    public static func line(_ bytes: UnsafeBufferPointer<UInt8>) {
        _ = line(bytes, checks: Checks(trap: true))
    }

    /// Returns the messages and reject kinds of the line without privacy rules.
    static func line(_ bytes: UnsafeBufferPointer<UInt8>, checks: Checks) -> (Int, [RejectKind]) {
        var plain = (0, [RejectKind]())
        if let value = try? JSONParser.parse(bytes) {
            var out: [UInt8] = []
            JSONWriter.write(value, into: &out, sortedKeys: false)
            if let again = out.withUnsafeBufferPointer({ try? JSONParser.parse($0) }) {
                var out2: [UInt8] = []
                JSONWriter.write(again, into: &out2, sortedKeys: false)
                checks.check(out == out2, "JSONWriter is not stable: \(String(decoding: out, as: UTF8.self)) vs \(String(decoding: out2, as: UTF8.self))")
            } else {
                checks.check(false, "JSONWriter printed JSON that does not parse: \(String(decoding: out, as: UTF8.self))")
            }
        }
        var privacy = Privacy()
        privacy.drop = [["context", "ip"]]
        privacy.hash = [["traits", "email"]]
        privacy.hashKeyVariable = "K"
        _ = privacy.loadKey(environment: ["K": "fuzzing-key-0123456789"])
        let names = NameTable()
        for privacy in [Privacy(), privacy] {
            var processor = LineProcessor(loadTime: Instant(seconds: 1_700_000_000), names: names, privacy: privacy)
            var records = MessageRecords()
            var count = 0
            var kinds: [RejectKind] = []
            for parsed in processor.process(bytes, problem: nil) {
                switch parsed {
                case .message(let message, _):
                    checks.check(!message.id.isEmpty, "a message has an id")
                    checks.check(Timestamp.parse(Timestamp.format(message.receivedAt)) != nil, "received_at prints as a timestamp")
                    for field in message.common + message.context + message.payload {
                        let name = names.name(field.column)
                        checks.check(!name.isEmpty && name.utf8.count <= 63, "column name \(name)")
                        checks.check(name.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5f }, "column name \(name)")
                    }
                    let table = names.name(message.table)
                    checks.check(!table.isEmpty && table.utf8.count <= 63, "table name \(table)")
                    records.append(message)
                    count += 1
                case .reject(let kind, let reason, _):
                    kinds.append(kind)
                    checks.check(!reason.isEmpty, "a reject has a reason")
                    // Without privacy rules the line is kept exactly as read. (Discarding this
                    // result with `_ =` made Swift 6.3 -O free the array before copying into it.)
                    let raw = processor.rawForReject(bytes)
                    checks.check(!processor.privacy.isEmpty || raw == .asRead(Array(bytes)), "a rejected line is kept as read")
                }
            }
            if processor.privacy.isEmpty { plain = (count, kinds) }
            records.bytes.withUnsafeBytes { raw in
                var cursor = RecordCursor(raw)
                for _ in 0..<count {
                    let header = cursor.header()
                    for _ in 0..<(header.common + header.context + header.payload) { _ = cursor.field() }
                    for _ in 0..<header.discards { _ = cursor.discard() }
                }
                checks.check(cursor.offset == raw.count, "records read back to their end")
            }
        }
        return plain
    }
}
