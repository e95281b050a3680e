import Foundation
import XCTest
@testable import SegmentLoader
@testable import SegmentCore
@testable import SegmentStages
@testable import SQLiteEngine

/// No plain value of a dropped or hashed field is stored anywhere in the warehouse,
/// `_rejects` included, and a retry applies the privacy rules exactly once, for every kind of
/// reject.
final class RejectPrivacyTests: XCTestCase {
    var dir: URL!
    var db: URL!
    let key = "0123456789abcdef-secret"
    let email = "eve@example.com"
    let ip = "192.0.2.77"

    override func setUpWithError() throws {
        dir = try temporaryDirectory(self)
        db = dir.appendingPathComponent("w.sqlite")
    }

    var privacy: Privacy {
        var rules = Privacy()
        rules.drop = [["context", "ip"]]
        rules.hash = [["traits", "email"]]
        rules.hashKeyVariable = "TEST_HASH_KEY"
        XCTAssertNil(rules.loadKey(environment: ["TEST_HASH_KEY": key]))
        return rules
    }

    var hashed: String { Privacy.digest(.string(email), key: Array(key.utf8)) }

    func assertNoPlainValue(_ when: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let everything = try dumpWarehouse(db)
        XCTAssertFalse(everything.contains(email), "plain e-mail stored \(when)", file: file, line: line)
        XCTAssertFalse(everything.contains(ip), "dropped ip stored \(when)", file: file, line: line)
        XCTAssertFalse(everything.contains(Privacy.digest(.string(hashed), key: Array(key.utf8))), "hashed twice \(when)", file: file, line: line)
    }

    /// Whatever the kind and whether the line parses, what `_rejects` keeps of it holds no plain
    /// value of a dropped or hashed field, and says whether the rules were applied.
    func testEveryKindOfRejectKeepsNoPlainValueUnderPrivacyRules() {
        let processor = LineProcessor(loadTime: Instant(date: Date(timeIntervalSince1970: 1_700_000_000)), names: NameTable(), privacy: privacy)
        let object = #"{"type":"identify","traits":{"email":"\#(email)"},"context":{"ip":"\#(ip)"}}"#
        let lines = [object, #"{"type":"identify","traits":{"email":"\#(email)""#, #"[\#(object)]"#, "\(email) \(ip)"]
        for kind in RejectKind.allCases {
            for line in lines {
                var chunk = Chunk()
                let bytes = Array(line.utf8)
                _ = bytes.withUnsafeBufferPointer {
                    chunk.add(.reject(kind, "a reason", item: nil), line: 1, bytes: $0, file: 0, processor: processor, filter: MessageFilter())
                }
                guard case .reject(_, _, _, _, let raw)? = chunk.items.first else { return XCTFail("no reject") }
                let kept = String(decoding: raw.bytes, as: UTF8.self)
                XCTAssertFalse(kept.contains(email) || kept.contains(ip), "\(kind): \(kept)")
                if line == object {
                    XCTAssertEqual(raw.redactedCode, 1, "\(kind): a JSON object is kept with the rules applied")
                    XCTAssertTrue(kept.contains(hashed), kept)
                } else {
                    XCTAssertEqual(raw, .withheld, "\(kind): a line that is not a JSON object cannot be searched for fields")
                }
            }
        }
        // Without rules every line is kept as read.
        let plain = LineProcessor(loadTime: Instant(date: Date(timeIntervalSince1970: 1_700_000_000)), names: NameTable())
        let raw = Array(lines[1].utf8).withUnsafeBufferPointer { plain.rawForReject($0) }
        XCTAssertEqual(raw, RejectRaw.asRead(Array(lines[1].utf8)))
    }

    /// Lines rejected as not JSON, not the Spec, too long and torn, loaded under privacy rules,
    /// then retried: without the rules nothing withheld is loaded, and lines fixed by hand load
    /// with the e-mail hashed exactly once; at no point is a plain value stored.
    func testARetryUnderPrivacyRulesHashesExactlyOnceForEveryKind() throws {
        let t = "2024-03-01T10:00:00.000Z"
        let notJSON = #"{"type":"identify","messageId":"j1","userId":"u1","traits":{"email":"\#(email)"},"context":{"ip":"\#(ip)"},"receivedAt":"\#(t)""#
        let notSpec = #"{"type":"identify","messageId":"s1","traits":{"email":"\#(email)"},"context":{"ip":"\#(ip)"},"receivedAt":"\#(t)"}"#
        let tooLong = #"{"type":"identify","messageId":"l1","userId":"u3","traits":{"email":"\#(email)","pad":"\#(String(repeating: "x", count: 600))"},"receivedAt":"\#(t)"}"#
        let good = #"{"type":"identify","messageId":"g1","userId":"u4","traits":{"email":"\#(email)"},"context":{"ip":"\#(ip)"},"receivedAt":"\#(t)"}"#
        let a = try write([good, notJSON, notSpec, tooLong].joined(separator: "\n") + "\n", to: dir.appendingPathComponent("a.ndjson"))
        // A gzip stream without its trailer: the last line (no newline after it) is torn.
        let tornLine = #"{"type":"identify","messageId":"t1","userId":"u5","traits":{"email":"\#(email)"},"context":{"ip":"\#(ip)"},"receivedAt":"\#(t)"}"#
        let whole = gzip(good.replacingOccurrences(of: "g1", with: "g2") + "\n" + tornLine)
        let b = try write(Array(whole.dropLast(8)), to: dir.appendingPathComponent("b.gz"))

        let summary = try load([a, b], into: db) {
            $0.privacy = privacy
            $0.maxLineBytes = 400
        }
        XCTAssertEqual(summary.totals.loaded, 2)
        let kinds = try rows(db, "SELECT kind, redacted, raw = '' FROM _rejects ORDER BY kind")
        XCTAssertEqual(kinds, [["json", "2", "1"], ["spec", "1", "0"], ["too_long", "2", "1"], ["torn", "1", "0"]])
        XCTAssertEqual(try rows(db, "SELECT DISTINCT email FROM identifies"), [[hashed]])
        try assertNoPlainValue("after the load")
        let listed = try RejectList.render(database: db.path, limit: 0, raw: true)
        XCTAssertTrue(listed.contains("(not kept: privacy rules apply and the line is not a JSON object; it is in the archive)"), listed)

        // Without the rules, withheld lines are not retried (reading them from the archive
        // would load them unhashed).
        let plain = try RejectRetry.run(options: LoadOptions(database: db.path))
        XCTAssertEqual(plain.withheldNotRetried, 1, "the json line; too_long is never retried")
        XCTAssertEqual(plain.resolved, 0)
        XCTAssertTrue(plain.render(database: "w").contains("retry with --pipeline"), plain.render(database: "w"))
        try assertNoPlainValue("after a retry without rules")

        // With the rules, the withheld line is read from its archive again: still not JSON.
        var options = LoadOptions(database: db.path)
        options.privacy = privacy
        let again = try RejectRetry.run(options: options)
        XCTAssertEqual(again.withheldNotRetried, 0)
        XCTAssertEqual(again.stillRejected, 4)
        XCTAssertEqual(try scalar(db, "SELECT reason FROM _rejects WHERE kind = 'json'").hasPrefix("invalid JSON"), true)

        // A person fixes the lines: the redacted one (add the missing userId) and the withheld
        // one (its line from the archive, fixed, so the rules have not been applied: redacted 0).
        let database = try Database(path: db.path)
        try database.execute(#"UPDATE _rejects SET raw = replace(raw, '"messageId":"s1"', '"messageId":"s1","userId":"u2"') WHERE kind = 'spec'"#)
        try database.execute("UPDATE _rejects SET raw = '\(notJSON)}', redacted = 0 WHERE kind = 'json'")
        let fixed = try RejectRetry.run(options: options)
        XCTAssertEqual(fixed.resolved, 2)
        XCTAssertEqual(try rows(db, "SELECT id, email, context_ip FROM identifies ORDER BY id"),
                       [["g1", hashed, "NULL"], ["g2", hashed, "NULL"], ["j1", hashed, "NULL"], ["s1", hashed, "NULL"]])
        XCTAssertEqual(try rows(db, "SELECT id, email FROM users ORDER BY id"), [["u1", hashed], ["u2", hashed], ["u4", hashed]])
        XCTAssertEqual(try rows(db, "SELECT kind FROM _rejects ORDER BY kind"), [["too_long"], ["torn"]])
        try assertNoPlainValue("after the fixed lines loaded")
    }

    /// A withheld line is read again only from an archive still at its path with the SHA-256
    /// that `_files` recorded.
    func testAWithheldLineIsReadOnlyFromTheArchiveThatWasLoaded() throws {
        let a = try write("{\"type\":\"track\"\n{broken \(email)\n", to: dir.appendingPathComponent("a.ndjson"))
        try load([a], into: db) { $0.privacy = privacy }
        let database = try Database(path: db.path)
        let rows = try database.query("SELECT id, line, load_id FROM _rejects ORDER BY line").map {
            RejectRetry.Row(id: $0[0].integer!, file: a.path, line: Int($0[1].integer!), item: nil, raw: .withheld,
                            loadId: $0[2].integer!, kind: .json, reason: "")
        }
        XCTAssertEqual(rows.count, 2)
        let found = try RejectRetry.withheldLines(rows, db: database, maxLineBytes: 1 << 20)
        XCTAssertEqual(found[rows[1].id].map { String(decoding: $0, as: UTF8.self) }, "{broken \(email)")
        _ = try write("{\"type\":\"track\"\n{broken other\n", to: a)
        XCTAssertTrue(try RejectRetry.withheldLines(rows, db: database, maxLineBytes: 1 << 20).isEmpty, "the archive changed")
    }
}
