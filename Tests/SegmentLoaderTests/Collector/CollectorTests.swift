import Foundation
import XCTest
@testable import Collector
@testable import SegmentLoader
@testable import YAMLFiles
@testable import YAMLCore
@testable import SegmentCore

/// The collector's core: what it adds to each message, and archives that are durable
/// after every append and that the loader loads.
final class CollectorTests: XCTestCase {
    let now = Instant(seconds: 1_700_524_800 + 3_600, nanos: 250_000_000)  // 2023-11-21 01:00:00.250 UTC

    func parse(_ text: String) throws -> JSONValue { try JSONParser.parse(text) }

    func testTheStamperAddsReceivedAtAnIdAndTheIPAndMergesABatchEnvelope() throws {
        let stamper = Stamper()
        let body = try parse(#"{"userId":"u1","event":"Signed Up","receivedAt":"1999-01-01T00:00:00Z"}"#)
        let one = stamper.messages(in: body, route: "track", source: "web", peer: "198.51.100.7", now: now)
        XCTAssertEqual(one.count, 1)
        XCTAssertEqual(one[0]["type"], .string("track"), "the route gives the type")
        XCTAssertEqual(one[0]["receivedAt"], .string("2023-11-21T01:00:00.250Z"), "the server's clock decides")
        XCTAssertEqual(one[0]["context"]?["ip"], .string("198.51.100.7"))
        let id = one[0]["messageId"]?.stringValue
        XCTAssertEqual(id?.hasPrefix("collector-"), true)
        // A client's retry of the same request gets the same id; another source another one.
        let retry = stamper.messages(in: body, route: "track", source: "web", peer: "198.51.100.7", now: Instant(seconds: now.seconds + 60, nanos: 0))
        XCTAssertEqual(retry[0]["messageId"]?.stringValue, id)
        XCTAssertNotEqual(stamper.messages(in: body, route: "track", source: "app", peer: nil, now: now)[0]["messageId"]?.stringValue, id)

        let kept = stamper.stamp(try parse(#"{"type":"page","messageId":"m1","anonymousId":"a","context":{"ip":"203.0.113.9"}}"#),
                                 source: "web", peer: "198.51.100.7", now: now)
        XCTAssertEqual(kept["messageId"], .string("m1"))
        XCTAssertEqual(kept["context"]?["ip"], .string("203.0.113.9"), "an ip the client sent is kept")

        let batch = try parse(#"{"batch":[{"type":"track","userId":"u","event":"E","context":{"page":{"path":"/x"}}},{"type":"identify","userId":"u"}],"context":{"library":{"name":"analytics-python"}},"sentAt":"2023-11-21T00:59:59Z"}"#)
        let items = stamper.messages(in: batch, route: "batch", source: "web", peer: "198.51.100.7", now: now)
        XCTAssertEqual(items.count, 2)
        XCTAssertEqual(items[0]["context"]?["library"]?["name"], .string("analytics-python"), "the envelope's context under the item's")
        XCTAssertEqual(items[0]["context"]?["page"]?["path"], .string("/x"))
        XCTAssertEqual(items[1]["sentAt"], .string("2023-11-21T00:59:59Z"))
        XCTAssertNotEqual(items[0]["messageId"], items[1]["messageId"])
    }

    func lines(_ messages: [JSONValue]) -> [[UInt8]] {
        messages.map { message in
            var out: [UInt8] = []
            JSONWriter.write(message, into: &out, sortedKeys: false)
            return out
        }
    }

    func testEveryAppendIsACompleteMemberAndACloseMovesTheArchiveIntoSegmentsLayout() throws {
        let dir = try temporaryDirectory(self)
        let out = dir.appendingPathComponent("out").path
        let sink = ArchiveSink(out: out, source: "web")
        let stamper = Stamper()
        let ms = now.seconds * 1000
        try sink.append(lines(stamper.messages(in: try parse(#"{"userId":"u1","event":"A"}"#), route: "track", source: "web", peer: nil, now: now)), nowMilliseconds: ms)
        let incoming = try FileManager.default.contentsOfDirectory(atPath: out + "/.incoming")
        XCTAssertEqual(incoming.count, 1)
        let first = [UInt8](try Data(contentsOf: URL(fileURLWithPath: out + "/.incoming/" + incoming[0])))
        XCTAssertEqual(GzipMember.completeLength(of: first), first.count, "a complete gzip after the first append")
        try sink.append(lines(stamper.messages(in: try parse(#"{"userId":"u2","event":"B"}"#), route: "track", source: "web", peer: nil, now: now)), nowMilliseconds: ms + 10)
        // The next received day closes the archive and opens another.
        try sink.append(lines(stamper.messages(in: try parse(#"{"userId":"u3","event":"C"}"#), route: "track", source: "web", peer: nil, now: now)), nowMilliseconds: ms + 86_400_000)
        try sink.close()
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out + "/.incoming"), [])
        let days = try FileManager.default.contentsOfDirectory(atPath: out + "/segment-logs/web").sorted()
        XCTAssertEqual(days, ["1700524800000", "1700611200000"])

        let db = dir.appendingPathComponent("w.sqlite")
        let summary = try load([URL(fileURLWithPath: out)], into: db)
        XCTAssertEqual(summary.totals.loaded, 3)
        XCTAssertEqual(summary.files.count, 2)
        XCTAssertEqual(try rows(db, "SELECT source_id, day FROM _files ORDER BY day"), [["web", "2023-11-21"], ["web", "2023-11-22"]])
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM tracks WHERE received_at = '2023-11-21 01:00:00.250'"), "3")
    }

    func testRecoveryKeepsEveryCompleteMemberAndDropsAMemberCutShort() throws {
        let dir = try temporaryDirectory(self)
        let out = dir.appendingPathComponent("out").path
        let sink = ArchiveSink(out: out, source: "app")
        try sink.append(lines([try parse(#"{"type":"track","messageId":"k1","userId":"u","event":"Acked","receivedAt":"2023-11-21T01:00:00Z"}"#)]),
                        nowMilliseconds: now.seconds * 1000)
        // A crash in the middle of the next write: half of a member on disk, never acknowledged.
        let name = try FileManager.default.contentsOfDirectory(atPath: out + "/.incoming")[0]
        let half = GzipMember.deflate(Array(#"{"type":"track","messageId":"k2","userId":"u","event":"Lost"}"#.utf8) + [0x0a])
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: out + "/.incoming/" + name))
        try handle.seekToEnd()
        try handle.write(contentsOf: half.prefix(half.count / 2))
        try handle.close()

        XCTAssertEqual(try ArchiveSink.recover(out: out), [name])
        let db = dir.appendingPathComponent("w.sqlite")
        let summary = try load([URL(fileURLWithPath: out)], into: db)
        XCTAssertEqual(summary.totals.loaded, 1)
        XCTAssertEqual(summary.totals.rejected, 0, "the cut member was removed, not left to be rejected")
        XCTAssertEqual(try rows(db, "SELECT event_text FROM tracks"), [["Acked"]])
        XCTAssertEqual(try ArchiveSink.recover(out: out), [], "nothing left to recover")
    }
}

extension CollectorTests {
    func line(_ id: String) -> [UInt8] {
        Array(#"{"type":"track","messageId":"\#(id)","userId":"u","event":"E","receivedAt":"2023-11-21T01:00:00Z"}"#.utf8)
    }

    /// Every request is acknowledged only after its member was written and fsynced, and
    /// stopping drains the queue and moves every archive into place.
    func testARequestIsAcknowledgedOnlyAfterWriteAndFsync() throws {
        let dir = try temporaryDirectory(self)
        let out = dir.appendingPathComponent("out").path
        var settings = GroupCommitter.Settings()
        settings.intervalMilliseconds = 5
        let committer = GroupCommitter(out: out, settings: settings)
        let events = Locked<[String]>([])
        committer.observe = { event in events.withLock { $0.append(event) } }
        try committer.start()
        let acked = DispatchSemaphore(value: 0)
        for i in 0..<20 {
            XCTAssertEqual(committer.submit(source: i % 2 == 0 ? "web" : "app", lines: [line("m\(i)")]) { result in
                if case .success = result { acked.signal() }
            }, .queued)
        }
        for _ in 0..<20 { XCTAssertEqual(acked.wait(timeout: .now() + 10), .success) }
        committer.stop()
        let log = events.withLock { $0 }
        XCTAssertEqual(log.filter { $0 == "ack" }.count, 20)
        // Before each ack, the last event of some source is its fsync, which follows a write.
        for (i, event) in log.enumerated() where event == "ack" {
            let before = log[..<i].last { $0 != "ack" }
            XCTAssertEqual(before?.hasSuffix(" fsync"), true, "ack \(i) after \(before ?? "nothing")")
        }
        for (i, event) in log.enumerated() where event.hasSuffix(" fsync") {
            XCTAssertEqual(log[i - 1], event.replacingOccurrences(of: " fsync", with: " write"))
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out + "/.incoming"), [], "stop closed every archive")
        let summary = try load([URL(fileURLWithPath: out)], into: dir.appendingPathComponent("w.sqlite"))
        XCTAssertEqual(summary.totals.loaded, 20)
    }

    /// A full queue refuses more (the server answers 503) instead of growing.
    func testAFullQueueRefusesInsteadOfGrowing() throws {
        let dir = try temporaryDirectory(self)
        var settings = GroupCommitter.Settings()
        settings.queueLimitBytes = 1000
        settings.flushBytes = 1 << 30
        let committer = GroupCommitter(out: dir.path, settings: settings)  // not started: nothing flushes
        var admitted = 0
        while committer.submit(source: "web", lines: [line("q\(admitted)")], done: { _ in }) == .queued { admitted += 1 }
        XCTAssertGreaterThan(admitted, 3)
        XCTAssertLessThanOrEqual(committer.queuedBytes, 1000)
        XCTAssertEqual(committer.submit(source: "web", lines: [line("again")], done: { _ in }), .full)
    }

    /// A flush that cannot write fails its requests (503 for their clients) and the next flush
    /// works once the disk can be written again; the archive stays a valid gzip.
    func testAFailedFlushFailsItsRequestsAndTheNextOneWorks() throws {
        let dir = try temporaryDirectory(self)
        let out = dir.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        // A file where the incoming folder must go: the archive cannot be created.
        try write("not a folder", to: out.appendingPathComponent(".incoming"))
        let committer = GroupCommitter(out: out.path)
        let failed = Locked(0)
        _ = committer.submit(source: "web", lines: [line("f1")]) { if case .failure = $0 { failed.withLock { $0 += 1 } } }
        committer.flush()
        XCTAssertEqual(failed.withLock { $0 }, 1)
        try FileManager.default.removeItem(at: out.appendingPathComponent(".incoming"))
        let ok = Locked(0)
        _ = committer.submit(source: "web", lines: [line("f2")]) { if case .success = $0 { ok.withLock { $0 += 1 } } }
        committer.flush()
        XCTAssertEqual(ok.withLock { $0 }, 1)
        committer.stop()
    }

    /// The server stops the committer on its way out and again when the listener failed: a
    /// second stop returns (it used to wait forever for a thread that had already ended).
    func testStopCanBeCalledTwice() throws {
        let dir = try temporaryDirectory(self)
        let committer = GroupCommitter(out: dir.appendingPathComponent("out").path)
        try committer.start()
        committer.stop()
        let second = DispatchSemaphore(value: 0)
        Thread { committer.stop(); second.signal() }.start()
        XCTAssertEqual(second.wait(timeout: .now() + 5), .success)
    }

    func testKeysFromBasicAuthAndTheClientAddressBehindAProxy() throws {
        var config = CollectorConfig()
        config.sources = [.init(writeKey: "KEY1", sourceId: "web"), .init(writeKey: "KEY2", sourceId: "app")]
        let intake = Intake(config: config)
        XCTAssertEqual(intake.source(forKey: "KEY1"), "web")
        XCTAssertEqual(intake.source(forKey: "KEY2"), "app")
        XCTAssertNil(intake.source(forKey: "KEY"))
        XCTAssertNil(intake.source(forKey: "KEY12"))
        XCTAssertNil(intake.source(forKey: ""))
        let basic = "Basic " + Data("KEY1:".utf8).base64EncodedString()
        XCTAssertEqual(Intake.basicKey(basic), "KEY1")
        XCTAssertEqual(Intake.basicKey("basic " + Data("KEY1".utf8).base64EncodedString()), "KEY1", "a key without the colon")
        XCTAssertNil(Intake.basicKey("Bearer KEY1"))
        XCTAssertNil(Intake.basicKey("Basic !!!"))
        // X-Forwarded-For is ignored unless the configuration trusts a proxy.
        XCTAssertEqual(intake.clientAddress(peer: "10.0.0.1", forwardedFor: "203.0.113.7, 10.0.0.1"), "10.0.0.1")
        config.trustForwardedFor = true
        XCTAssertEqual(Intake(config: config).clientAddress(peer: "10.0.0.1", forwardedFor: " 203.0.113.7 , 10.0.0.1"), "203.0.113.7")
        XCTAssertEqual(Intake(config: config).clientAddress(peer: "10.0.0.1", forwardedFor: nil), "10.0.0.1")
        // The body's key authenticates a browser; it is not written.
        guard case .write(let source, let lines, _) = intake.decide(route: .page, body: Array(#"{"writeKey":"KEY2","anonymousId":"a","name":"Home"}"#.utf8),
                                                                  gzip: false, authorization: nil, client: "198.51.100.2", now: now) else {
            return XCTFail("accepted")
        }
        XCTAssertEqual(source, "app")
        let written = try JSONParser.parse(String(decoding: lines[0], as: UTF8.self))
        XCTAssertNil(written["writeKey"])
        XCTAssertEqual(written["type"]?.stringValue, "page")
        XCTAssertEqual(written["context"]?["ip"]?.stringValue, "198.51.100.2")
        // A header key wins over the body's, and a wrong header key is refused even with a right body key.
        guard case .refuse(let refusal) = intake.decide(route: .track, body: Array(#"{"writeKey":"KEY1"}"#.utf8), gzip: false,
                                                         authorization: "Basic " + Data("NOPE:".utf8).base64EncodedString(), client: nil, now: now) else {
            return XCTFail("refused")
        }
        XCTAssertEqual(refusal.status, 401)
    }

    func testTheConfigurationFileSetsEveryKey() throws {
        let config = try CollectorConfigFile.parse("""
            listen: "[::1]:9000"
            out: collected
            sources:
              - {write_key: K, source_id: web}
            limits: {message_bytes: 2048, batch_bytes: 4096, json_depth: 10, read_timeout_seconds: 5, retry_after_seconds: 9, max_connections: 7, max_bodies: 3}
            flush: {interval_ms: 50, bytes: 2048, queue_bytes: 8192}
            archives: {max_bytes: 4096, max_age_seconds: 60}
            cors: {allowed_origins: ["https://a.example/", "*"]}
            proxy: {trust_forwarded_for: yes}
            """, file: "c.yml", directory: "/etc/sc")
        XCTAssertEqual(config.host, "::1")
        XCTAssertEqual(config.port, 9000)
        XCTAssertEqual(config.listen, "[::1]:9000")
        XCTAssertEqual(config.out, "/etc/sc/collected")
        XCTAssertEqual(config.sources, [.init(writeKey: "K", sourceId: "web")])
        XCTAssertEqual([config.messageLimitBytes, config.batchLimitBytes, config.maxDepth, config.readTimeoutSeconds, config.retryAfterSeconds],
                       [2048, 4096, 10, 5, 9])
        XCTAssertEqual(config.maxConnections, 7)
        XCTAssertEqual(config.maxBodies, 3)
        XCTAssertEqual([config.commit.intervalMilliseconds, config.commit.flushBytes, config.commit.queueLimitBytes], [50, 2048, 8192])
        XCTAssertEqual([config.commit.archiveMaxBytes, config.commit.archiveMaxAgeSeconds], [4096, 60])
        XCTAssertEqual(config.allowedOrigins, ["https://a.example", "*"])
        XCTAssertTrue(config.trustForwardedFor)
        XCTAssertThrowsError(try CollectorConfigFile.parse("limits: {message_bytes: 4096, batch_bytes: 2048}", file: "c.yml", directory: "/")) { error in
            XCTAssertEqual((error as? PipelineError)?.issues.map(\.description),
                           ["c.yml:1:44: limits.batch_bytes (2048) must not be less than limits.message_bytes (4096)"])
        }
    }

    /// An archive closes when it is old enough even if its source sends nothing more.
    func testAQuietSourcesArchiveClosesWhenItIsOldEnough() throws {
        let dir = try temporaryDirectory(self)
        let out = dir.appendingPathComponent("out").path
        let clock = Locked<Int64>(1_700_000_000_000)
        var settings = GroupCommitter.Settings()
        settings.archiveMaxAgeSeconds = 60
        let committer = GroupCommitter(out: out, settings: settings, clock: { clock.withLock { $0 } })
        let closed = Locked<[String]>([])
        committer.events = { if case .closed(let source, _) = $0 { closed.withLock { $0.append(source) } } }
        _ = committer.submit(source: "web", lines: [line("q1")]) { _ in }
        committer.flush()
        XCTAssertEqual(closed.withLock { $0 }, [])
        clock.withLock { $0 += 61_000 }
        committer.flush()
        XCTAssertEqual(closed.withLock { $0 }, ["web"], "closed by a flush with nothing of its own")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out + "/.incoming"), [])
        committer.stop()
    }

    /// Loading the collector's whole output folder leaves out the archives still open in
    /// `.incoming/` (a hidden folder) and loads them once they are closed into place.
    func testTheLoaderLeavesOutArchivesStillBeingWritten() throws {
        let dir = try temporaryDirectory(self)
        let out = dir.appendingPathComponent("out").path
        let sink = ArchiveSink(out: out, source: "web")
        try sink.append([line("open-1")], nowMilliseconds: now.seconds * 1000)
        let db = dir.appendingPathComponent("w.sqlite")
        let before = try load([URL(fileURLWithPath: out)], into: db)
        XCTAssertEqual(before.totals.loaded, 0)
        XCTAssertEqual(before.files.count, 0)
        XCTAssertEqual(before.notArchives.count, 0)
        try sink.close()
        let after = try load([URL(fileURLWithPath: out)], into: db)
        XCTAssertEqual(after.totals.loaded, 1)
    }
}
