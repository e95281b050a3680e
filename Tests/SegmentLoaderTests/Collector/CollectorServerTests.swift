import Collector
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
@testable import SegmentLoader
import XCTest
@testable import SegmentCore

/// The real `segment-collector` binary on a loopback port, driven by plain HTTP clients
/// (Foundation's URLSession), and what it wrote loaded by the loader.
final class CollectorServerTests: XCTestCase {
    func testEveryRouteAndBothKeyPlacesAreWrittenAndLoaded() throws {
        let dir = try temporaryDirectory(self)
        let server = try CollectorProcess.start(dir, ["--source", "KEY=web", "--source", "OTHER=app"])
        let routes: [(String, String)] = [
            ("track", #"{"userId":"u1","event":"Order Completed","properties":{"revenue":12.5},"messageId":"m-track"}"#),
            ("identify", #"{"userId":"u1","traits":{"plan":"pro"},"messageId":"m-identify"}"#),
            ("page", #"{"anonymousId":"a1","name":"Home","properties":{"url":"https://x.test/"},"messageId":"m-page"}"#),
            ("screen", #"{"userId":"u1","name":"Settings","messageId":"m-screen"}"#),
            ("group", #"{"userId":"u1","groupId":"g1","traits":{"name":"Acme"},"messageId":"m-group"}"#),
            ("alias", #"{"userId":"u1","previousId":"a1","messageId":"m-alias"}"#),
        ]
        for (route, body) in routes {
            let reply = try server.post(route, body, key: "KEY")
            XCTAssertEqual(reply.status, 200, route)
            XCTAssertEqual(reply.text, #"{"success":true}"#)
        }
        // A browser's batch: the write key in the body, the envelope's context merged.
        let batch = #"{"writeKey":"KEY","batch":[{"type":"track","userId":"u2","event":"Order Completed","messageId":"m-b1"},{"type":"track","userId":"u2","event":"Signed Up","messageId":"m-b2","context":{"page":{"path":"/x"}}}],"context":{"library":{"name":"analytics.js"}},"sentAt":"2024-03-01T10:00:00Z"}"#
        XCTAssertEqual(try server.post("batch", batch).status, 200)
        // /v1/import is batch; a gzip body; the other source.
        XCTAssertEqual(try server.post("import", gzip(#"{"batch":[{"type":"identify","userId":"u3","messageId":"m-import"}]}"#), key: "OTHER",
                                       headers: ["Content-Encoding": "gzip"]).status, 200)
        // A retry of a message without messageId gets the same id (deduplicated by the loader).
        for _ in 0..<2 { XCTAssertEqual(try server.post("track", #"{"userId":"u4","event":"Retried"}"#, key: "KEY").status, 200) }
        // A message that breaks the spec (a track without event) is still accepted: the loader
        // keeps it in _rejects, and the client (which never retries a 4xx) loses nothing.
        XCTAssertEqual(try server.post("track", #"{"userId":"u5","messageId":"m-bad"}"#, key: "KEY").status, 200)
        XCTAssertEqual(try server.stop(), 0)

        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: server.out + "/.incoming"), [], "every archive closed on SIGTERM")
        let text = try server.archivedText()
        XCTAssertFalse(text.contains("KEY"), "the write key is not written into the archives")
        let db = dir.appendingPathComponent("w.sqlite")
        let summary = try load([URL(fileURLWithPath: server.out + "/segment-logs")], into: db)
        XCTAssertEqual(summary.totals.loaded, 10, "6 routes, 2 in the batch, 1 imported, the retried message once")
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM _rejects"), "1")
        XCTAssertEqual(try rows(db, "SELECT DISTINCT source_id FROM _files ORDER BY 1"), [["app"], ["web"]])
        XCTAssertEqual(try rows(db, "SELECT id, context_ip FROM tracks WHERE id = 'm-track'"), [["m-track", "127.0.0.1"]])
        XCTAssertEqual(try scalar(db, "SELECT revenue FROM order_completed WHERE id = 'm-track'"), "12.5")
        XCTAssertEqual(try rows(db, "SELECT id FROM identifies ORDER BY 1"), [["m-identify"], ["m-import"]])
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM pages WHERE id = 'm-page' AND url = 'https://x.test/'"), "1")
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM screens"), "1")
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM groups WHERE group_id = 'g1'"), "1")
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM aliases WHERE previous_id = 'a1'"), "1")
        XCTAssertEqual(try rows(db, "SELECT id, context_library_name, context_page_path FROM tracks WHERE user_id = 'u2' ORDER BY 1"),
                       [["m-b1", "analytics.js", "NULL"], ["m-b2", "analytics.js", "/x"]])
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM tracks WHERE user_id = 'u4'"), "1", "the retry is deduplicated")
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM tracks WHERE received_at IS NULL"), "0")
    }

    func testKeysLimitsAndBadBodiesGetSegmentsAnswersAndNothingIsWritten() throws {
        let dir = try temporaryDirectory(self)
        let server = try CollectorProcess.start(dir, ["--source", "KEY=web"])
        func refused(_ reply: CollectorProcess.Reply, _ status: Int, _ phrase: String, file: StaticString = #filePath, line: UInt = #line) {
            XCTAssertEqual(reply.status, status, reply.text, file: file, line: line)
            XCTAssertTrue(reply.text.hasPrefix(#"{"success":false,"error":"#), reply.text, file: file, line: line)
            XCTAssertTrue(reply.text.contains(phrase), "\(reply.text) should say \(phrase)", file: file, line: line)
        }
        let ok = #"{"userId":"u1","event":"E"}"#
        refused(try server.post("track", ok), 401, "no write key")
        refused(try server.post("track", ok, key: "WRONG"), 401, "unknown write key")
        refused(try server.post("track", #"{"writeKey":"KEYX","userId":"u1","event":"E"}"#), 401, "unknown write key")
        refused(try server.post("track", ok, headers: ["Authorization": "Bearer KEY"]), 401, "Basic")
        refused(try server.post("track", "{\"userId\":", key: "KEY"), 400, "not valid JSON")
        refused(try server.post("track", "[1,2]", key: "KEY"), 400, "JSON object")
        let big = String(repeating: "x", count: 33 * 1024)
        refused(try server.post("track", #"{"userId":"u1","event":"E","properties":{"p":"\#(big)"}}"#, key: "KEY"), 400, "larger than 32768 bytes")
        let items = (0..<20).map { _ in #"{"type":"track","userId":"u1","event":"E","properties":{"p":"\#(String(repeating: "y", count: 30_000))"}}"# }
        refused(try server.post("batch", #"{"batch":[\#(items.joined(separator: ","))]}"#, key: "KEY"), 400, "larger than 512000 bytes")
        refused(try server.post("batch", #"{"batch":[{"type":"track","event":"E","userId":"u","properties":{"p":"\#(big)"}}]}"#, key: "KEY"), 400, "message 0 of the batch")
        refused(try server.post("batch", #"{"batch":{}}"#, key: "KEY"), 400, "a list of messages")
        let deep = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        refused(try server.post("track", #"{"userId":"u1","event":"E","properties":{"p":\#(deep)}}"#, key: "KEY"), 400, "not valid JSON")
        // A gzip body is limited by what it inflates to: 1 MB of zeros in 1 KB is refused.
        refused(try server.post("track", gzip(#"{"p":""# + String(repeating: "0", count: 1 << 20) + #""}"#), key: "KEY",
                                headers: ["Content-Encoding": "gzip"]), 400, "larger than 32768 bytes")
        refused(try server.post("track", Array("not gzip at all".utf8), key: "KEY", headers: ["Content-Encoding": "gzip"]), 400, "not valid gzip")
        refused(try server.post("track", ok, key: "KEY", headers: ["Content-Encoding": "br"]), 400, "not supported")
        XCTAssertEqual(try server.request("GET", "/v1/track").status, 405)
        XCTAssertEqual(try server.request("POST", "/v2/track", body: Array(ok.utf8)).status, 404)
        let health = try server.request("GET", "/health")
        XCTAssertEqual(health.status, 200)
        XCTAssertEqual(health.text, "ok\n")
        let metrics = try server.request("GET", "/metrics").text
        for line in [#"collector_requests_total{route="track",status="401"} 4"#,
                     #"collector_requests_total{route="track",status="400"} 7"#,
                     #"collector_requests_total{route="batch",status="400"} 3"#,
                     #"collector_requests_rejected_total{reason="unknown_key",source=""} 2"#,
                     #"collector_requests_rejected_total{reason="too_large",source="web"} 4"#,
                     #"collector_requests_rejected_total{reason="encoding",source="web"} 1"#,
                     #"collector_requests_rejected_total{reason="invalid_json",source="web"} 2"#] {
            XCTAssertTrue(metrics.contains(line), "metrics lack \(line):\n\(metrics)")
        }
        XCTAssertEqual(try server.stop(), 0)
        XCTAssertEqual(try server.archivedText(), "", "a refused request writes nothing")
    }

    func testCORSPreflightAnswersAllowedOriginsOnly() throws {
        let dir = try temporaryDirectory(self)
        let server = try CollectorProcess.start(dir, yaml: "cors: {allowed_origins: [https://shop.example.com]}")
        let preflight = try server.request("OPTIONS", "/v1/batch", headers: [
            "Origin": "https://shop.example.com", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type"])
        XCTAssertEqual(preflight.status, 204)
        XCTAssertEqual(preflight.headers["access-control-allow-origin"], "https://shop.example.com")
        XCTAssertEqual(preflight.headers["access-control-allow-methods"], "POST, OPTIONS")
        XCTAssertEqual(preflight.headers["access-control-allow-headers"], "content-type")
        let stranger = try server.request("OPTIONS", "/v1/batch", headers: ["Origin": "https://evil.example", "Access-Control-Request-Method": "POST"])
        XCTAssertEqual(stranger.status, 403)
        XCTAssertNil(stranger.headers["access-control-allow-origin"])
        let post = try server.post("track", #"{"writeKey":"KEY","userId":"u1","event":"E"}"#, headers: ["Origin": "https://shop.example.com"])
        XCTAssertEqual(post.status, 200)
        XCTAssertEqual(post.headers["access-control-allow-origin"], "https://shop.example.com")
        XCTAssertEqual(try server.stop(), 0)
    }

    func testCheckReportsEveryMistakeWithItsPosition() throws {
        let dir = try temporaryDirectory(self)
        let bad = try write("""
            listen: localhost
            out: out
            sources:
              - write_key: KEY
                source_id: ../web
              - write_key: KEY
                source_id: app
            flush:
              interval_ms: 0
              bytez: 10
            """, to: dir.appendingPathComponent("bad.yml"))
        let result = try CollectorProcess.run(["--config", bad.path, "--check"])
        XCTAssertEqual(result.status, 64)
        let lines = result.stderr.split(separator: "\n").map(String.init)
        guard lines.count == 5 else { return XCTFail(result.stderr) }
        XCTAssertTrue(lines[0].hasSuffix("bad.yml:1:9: listen must be HOST:PORT (e.g. 127.0.0.1:8088), not 'localhost'"), lines[0])
        XCTAssertTrue(lines[1].contains("bad.yml:5:16: source_id '../web' must be letters"), lines[1])
        XCTAssertTrue(lines[2].contains("bad.yml:6:16: this write key is already given at line 4"), lines[2])
        XCTAssertTrue(lines[3].contains("bad.yml:9:16: flush.interval_ms must be between 1 and 10000, not 0"), lines[3])
        XCTAssertTrue(lines[4].contains("bad.yml:10:3: unknown key 'bytez' in flush (did you mean bytes?)"), lines[4])
        let good = try write(CollectorConfigFile.example, to: dir.appendingPathComponent("good.yml"))
        let checked = try CollectorProcess.run(["--config", good.path, "--check"])
        XCTAssertEqual(checked.status, 0, checked.stderr)
        XCTAssertTrue(checked.stdout.hasPrefix("ok: listen 127.0.0.1:8088, out /var/lib/segment-collector, 1 source(s): web"), checked.stdout)
        let loud = try CollectorProcess.run(["--listen", "127.0.0.1:0", "--out", "x", "--source", "K=web", "--log-level", "loud"])
        XCTAssertEqual(loud.status, 64)
        XCTAssertTrue(loud.stderr.contains("--log-level must be one of trace, debug, info, notice, warning, error, critical, not 'loud'"), loud.stderr)
        let file = try write("not a folder", to: dir.appendingPathComponent("file"))
        let unwritable = try CollectorProcess.run(["--listen", "127.0.0.1:0", "--out", file.path, "--source", "K=web"])
        XCTAssertEqual(unwritable.status, 74)
        XCTAssertTrue(unwritable.stderr.contains("cannot write in \(file.path)"), unwritable.stderr)
        let missing = try CollectorProcess.run(["--listen", "127.0.0.1:0"])
        XCTAssertEqual(missing.status, 64)
        XCTAssertTrue(missing.stderr.contains("no output folder") && missing.stderr.contains("no sources"), missing.stderr)
    }

    /// A second collector on the same output folder is refused (exit 75, naming the
    /// first), and the first goes on writing; once it is gone the folder can be taken.
    func testASecondCollectorOnTheSameFolderIsRefused() throws {
        let dir = try temporaryDirectory(self)
        let out = dir.appendingPathComponent("out").path
        let first = try CollectorProcess.start(dir, ["--source", "KEY=web"], out: out)
        let second = try CollectorProcess.run(["--listen", "127.0.0.1:0", "--out", out, "--source", "KEY=web"])
        XCTAssertEqual(second.status, 75, second.stderr)
        XCTAssertTrue(second.stderr.contains("another segment-collector already writes into \(out): process \(first.process.processIdentifier)"), second.stderr)
        XCTAssertEqual(try first.stop(), 0)
        let third = try CollectorProcess.start(dir, ["--source", "KEY=web"], out: out)
        XCTAssertEqual(try third.stop(), 0, "the lock of a stopped collector does not block the next")
    }

    /// An address already in use: exit 69 with the reason, not a hang.
    func testAnAddressInUseExits69() throws {
        let dir = try temporaryDirectory(self)
        let first = try CollectorProcess.start(dir, ["--source", "KEY=web"])
        let second = try CollectorProcess.run(["--listen", "127.0.0.1:\(first.port)", "--out", dir.appendingPathComponent("other").path, "--source", "KEY=web"])
        XCTAssertEqual(second.status, 69)
        XCTAssertTrue(second.stderr.contains("cannot serve on 127.0.0.1:\(first.port)"), second.stderr)
        XCTAssertEqual(try first.stop(), 0)
    }

    /// kill -9 while clients send, restart (which finishes the archives left open), load: every
    /// message that got a 200 is in the warehouse exactly once.
    func testKillNineWhileClientsSendLosesNoAcknowledgedMessage() throws {
        let dir = try temporaryDirectory(self)
        let out = dir.appendingPathComponent("out").path
        let server = try CollectorProcess.start(dir, ["--source", "KEY=web"])
        let acknowledged = Locked<[String]>([])
        let clients = 4, requestsPerClient = 400
        let group = DispatchGroup()
        for client in 0..<clients {
            onThread(group) {
                for request in 0..<requestsPerClient {
                    let ids = (0..<10).map { "c\(client)-r\(request)-m\($0)" }
                    let items = ids.map { #"{"type":"track","userId":"u\#(client)","event":"Clicked","messageId":"\#($0)"}"# }
                    guard let reply = try? server.post("batch", #"{"batch":[\#(items.joined(separator: ","))]}"#, key: "KEY", timeout: 5) else { return }
                    if reply.status == 200 { acknowledged.withLock { $0 += ids } }
                }
            }
        }
        // Kill once a good part has been acknowledged (bounded: at most 20 s).
        let deadline = Date().addingTimeInterval(20)
        while acknowledged.withLock({ $0.count }) < 2000 && Date() < deadline { usleep(10_000) }
        server.kill9()
        XCTAssertEqual(group.wait(timeout: .now() + 60), .success)
        let acked = acknowledged.withLock { $0 }
        XCTAssertGreaterThanOrEqual(acked.count, 2000)
        XCTAssertLessThan(acked.count, clients * requestsPerClient * 10, "the kill came before the clients finished")

        let restarted = try CollectorProcess.start(dir, ["--source", "KEY=web"], out: out)
        XCTAssertTrue(restarted.stderr.contains("finished an archive a previous run left open"), restarted.stderr)
        XCTAssertEqual(try restarted.stop(), 0)
        let db = dir.appendingPathComponent("w.sqlite")
        _ = try load([URL(fileURLWithPath: out + "/segment-logs")], into: db)
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM _rejects"), "0", "no torn line: a member cut short was never acknowledged")
        let loaded = try rows(db, "SELECT id, count(*) FROM tracks GROUP BY id")
        var counts: [String: Int] = [:]
        for row in loaded { counts[row[0]] = Int(row[1]) }
        for id in acked { XCTAssertEqual(counts[id], 1, "\(id) was acknowledged") }
        XCTAssertEqual(counts.values.filter { $0 != 1 }, [])
    }

    /// The trace seam records, in order, each member's write and fsync, each request's ack
    /// and each answer sent: no 200 goes out before its messages were written and fsynced.
    func testEveryOKIsSentAfterTheWriteAndTheFsyncOfItsMessages() throws {
        let dir = try temporaryDirectory(self)
        let trace = dir.appendingPathComponent("trace.txt").path
        let server = try CollectorProcess.start(dir, ["--source", "KEY=web", "--source", "K2=app", "--test-trace", trace])
        let group = DispatchGroup()
        let statuses = Locked<[Int]>([])
        for i in 0..<40 {
            onThread(group) {
                let reply = try? server.post("track", #"{"userId":"u","event":"E","messageId":"m\#(i)"}"#, key: i % 3 == 0 ? "K2" : "KEY")
                statuses.withLock { $0.append(reply?.status ?? -1) }
            }
        }
        XCTAssertEqual(group.wait(timeout: .now() + 30), .success)
        XCTAssertEqual(statuses.withLock { $0 }.filter { $0 == 200 }.count, 40)
        XCTAssertEqual(try server.stop(), 0)
        let events = try String(contentsOfFile: trace, encoding: .utf8).split(separator: "\n").map(String.init)
        var written: [String: Bool] = [:], synced: [String: Bool] = [:]
        var lastSynced = false
        var acks = 0, answers = 0
        for event in events {
            let parts = event.split(separator: " ").map(String.init)
            switch parts.last! {
            case "write": written[parts[0]] = true; synced[parts[0]] = false; lastSynced = false
            case "fsync":
                XCTAssertEqual(written[parts[0]], true, "fsync after a write")
                synced[parts[0]] = true; lastSynced = true
            case "ack":
                XCTAssertTrue(lastSynced, "an ack right after its member's fsync: \(events)")
                acks += 1
            default:
                XCTAssertEqual(parts, ["respond", "200"])
                answers += 1
                XCTAssertLessThanOrEqual(answers, acks, "a 200 went out before its ack")
            }
        }
        XCTAssertEqual(acks, 40)
        XCTAssertEqual(answers, 40)
        XCTAssertGreaterThanOrEqual(events.filter { $0.hasSuffix("fsync") }.count, 2, "both sources were written")
    }

    /// SIGTERM while requests wait for their flush: they all get 200, the process exits 0
    /// after closing every archive, and then nothing listens any more.
    func testSIGTERMDrainsWhatIsQueuedAndClosesEveryArchive() throws {
        let dir = try temporaryDirectory(self)
        let server = try CollectorProcess.start(dir, yaml: "flush: {interval_ms: 1500}")
        let group = DispatchGroup()
        let statuses = Locked<[Int]>([])
        // A first flush opens the archive, so the drain has one to close.
        XCTAssertEqual(try server.post("track", #"{"userId":"u","event":"E","messageId":"first"}"#, key: "KEY").status, 200)
        for i in 0..<8 {
            onThread(group) {
                let reply = try? server.post("track", #"{"userId":"u","event":"E","messageId":"d\#(i)"}"#, key: "KEY")
                statuses.withLock { $0.append(reply?.status ?? -1) }
            }
        }
        usleep(400_000)
        XCTAssertEqual(statuses.withLock { $0 }, [], "the requests wait for the next flush")
        server.signal(SIGTERM)
        XCTAssertEqual(group.wait(timeout: .now() + 30), .success)
        XCTAssertEqual(statuses.withLock { $0 }, Array(repeating: 200, count: 8))
        XCTAssertEqual(server.waitForExit(), 0)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: server.out + "/.incoming"), [])
        XCTAssertEqual(try server.archivedText().split(separator: "\n").count, 9)
        XCTAssertTrue(server.stderr.contains("draining"), server.stderr)
        XCTAssertThrowsError(try server.post("track", "{}", key: "KEY", timeout: 2), "nothing listens after the drain")
    }

    /// A full queue answers 503 with Retry-After instead of growing; so does a full disk, and
    /// the collector recovers when space returns without a torn archive.
    func testAFullQueueAndAFullDiskAnswer503AndTheCollectorRecovers() throws {
        let dir = try temporaryDirectory(self)
        let flag = dir.appendingPathComponent("disk-full").path
        let server = try CollectorProcess.start(dir, yaml: "flush: {interval_ms: 2000, queue_bytes: 1024}\nlimits: {retry_after_seconds: 7}", ["--test-disk-full-while", flag])
        let padding = String(repeating: "p", count: 600)
        let waiting = DispatchSemaphore(value: 0)
        let first = Locked(0)
        DispatchQueue.global().async {
            let reply = try? server.post("track", #"{"userId":"u","event":"E","messageId":"q1","properties":{"p":"\#(padding)"}}"#, key: "KEY")
            first.withLock { $0 = reply?.status ?? -1 }
            waiting.signal()
        }
        usleep(300_000)
        let full = try server.post("track", #"{"userId":"u","event":"E","messageId":"q2","properties":{"p":"\#(padding)"}}"#, key: "KEY")
        XCTAssertEqual(full.status, 503)
        XCTAssertEqual(full.headers["retry-after"], "7")
        XCTAssertTrue(full.text.contains("queue is full"), full.text)
        waiting.wait()
        XCTAssertEqual(first.withLock { $0 }, 200)

        XCTAssertTrue(FileManager.default.createFile(atPath: flag, contents: nil))
        let disk = try server.post("track", #"{"userId":"u","event":"E","messageId":"lost"}"#, key: "KEY")
        XCTAssertEqual(disk.status, 503)
        XCTAssertEqual(disk.headers["retry-after"], "7")
        XCTAssertTrue(disk.text.contains("could not write to disk"), disk.text)
        try FileManager.default.removeItem(atPath: flag)
        XCTAssertEqual(try server.post("track", #"{"userId":"u","event":"E","messageId":"after"}"#, key: "KEY").status, 200)
        let metrics = try server.request("GET", "/metrics").text
        XCTAssertTrue(metrics.contains(#"collector_flush_errors_total{source="web"} 1"#), metrics)
        XCTAssertTrue(metrics.contains(#"collector_requests_rejected_total{reason="queue_full",source="web"} 1"#), metrics)
        XCTAssertEqual(try server.stop(), 0)
        let db = dir.appendingPathComponent("w.sqlite")
        _ = try load([URL(fileURLWithPath: server.out + "/segment-logs")], into: db)
        XCTAssertEqual(try rows(db, "SELECT id FROM tracks ORDER BY 1"), [["after"], ["q1"]])
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM _rejects"), "0", "the half-written member was cut off")
    }

    /// A client that stops sending in the middle of a body is cut off after the read timeout.
    func testASlowClientIsCutOffAfterTheReadTimeout() throws {
        let dir = try temporaryDirectory(self)
        let server = try CollectorProcess.start(dir, yaml: "limits: {read_timeout_seconds: 1}")
        let fd = try server.connect()
        defer { close(fd) }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let head = "POST /v1/track HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"userId\":"
        _ = head.withCString { send(fd, $0, strlen($0), 0) }
        let started = Date()
        var buffer = [UInt8](repeating: 0, count: 4096)
        var received = 0
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { break }
            received += n
        }
        let waited = Date().timeIntervalSince(started)
        XCTAssertLessThan(waited, 8, "the server closed the connection (not our 10 s receive timeout)")
        XCTAssertGreaterThanOrEqual(waited, 0.9)
        XCTAssertEqual(try server.stop(), 0)
        XCTAssertEqual(try server.archivedText(), "")
        _ = received
    }
}

extension CollectorServerTests {
    /// Connections past limits.max_connections wait (in the listen backlog) instead of each
    /// taking memory for a body: with one allowed, a second client is served only once the
    /// first connection closes.
    func testConnectionsPastTheLimitWaitForAFreeOne() throws {
        let dir = try temporaryDirectory(self)
        let server = try CollectorProcess.start(dir, yaml: "limits: {max_connections: 1}")
        let first = try server.connect()
        usleep(200_000)
        try assertAPostWaits(on: server, "the second client waits while the first holds the only connection") { close(first) }
        XCTAssertEqual(try server.stop(), 0)
    }

    /// A POST sent now is not answered within 1.5 s, and is answered 200 once `release` runs.
    func assertAPostWaits(on server: CollectorProcess, _ why: String, until release: () -> Void,
                          file: StaticString = #filePath, line: UInt = #line) throws {
        let status = Locked(0)
        let group = DispatchGroup()
        onThread(group) {
            let reply = try? server.post("track", #"{"userId":"u","event":"E"}"#, key: "KEY", timeout: 20)
            status.withLock { $0 = reply?.status ?? -1 }
        }
        XCTAssertEqual(group.wait(timeout: .now() + 1.5), .timedOut, why, file: file, line: line)
        release()
        XCTAssertEqual(group.wait(timeout: .now() + 20), .success, file: file, line: line)
        XCTAssertEqual(status.withLock { $0 }, 200, file: file, line: line)
    }
}

/// Runs a blocking client on a thread of its own (GCD's pool is small on Linux, and URLSession
/// needs threads of it to deliver the answers the blocked clients wait for).
func onThread(_ group: DispatchGroup, _ body: @escaping @Sendable () -> Void) {
    group.enter()
    let thread = Thread {
        body()
        group.leave()
    }
    thread.start()
}

/// A `segment-collector` process on a free loopback port, and a plain HTTP client for it.
final class CollectorProcess: @unchecked Sendable {
    struct Reply {
        var status: Int
        var headers: [String: String]
        var body: Data
        var text: String { String(decoding: body, as: UTF8.self) }
    }

    let process: Process
    let port: Int
    let out: String
    private let errors: Locked<Data>

    /// One session for every test, with room for as many connections as the tests open at once
    /// (the default of 6 per host left queued requests waiting on Linux).
    static let session: URLSession = {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.httpMaximumConnectionsPerHost = 64
        return URLSession(configuration: configuration)
    }()

    static var binary: URL { segmentLoaderBinary.deletingLastPathComponent().appendingPathComponent("segment-collector") }

    private init(process: Process, port: Int, out: String, errors: Locked<Data>) {
        self.process = process
        self.port = port
        self.out = out
        self.errors = errors
    }

    /// Starts the server with `--out <dir>/out --listen 127.0.0.1:0` (unless given) and waits
    /// for its "listening on" line.
    static func start(_ dir: URL, _ arguments: [String], out: String? = nil) throws -> CollectorProcess {
        let out = out ?? dir.appendingPathComponent("out").path
        var args = arguments
        if !args.contains("--config") { args += ["--listen", "127.0.0.1:0", "--out", out] }
        let process = Process()
        process.executableURL = binary
        process.arguments = args
        let stdout = Pipe(), stderr = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        let errors = Locked(Data())
        stderr.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            errors.withLock { $0.append(data) }
        }
        try process.run()
        var line = Data()
        let deadline = Date().addingTimeInterval(30)
        while !line.contains(UInt8(ascii: "\n")) && Date() < deadline && process.isRunning {
            let chunk = stdout.fileHandleForReading.availableData
            if chunk.isEmpty { usleep(10_000) } else { line.append(chunk) }
        }
        let text = String(decoding: line, as: UTF8.self)
        guard let portText = text.split(separator: "\n").first?.split(separator: ":").last, let port = Int(portText) else {
            process.terminate()
            throw NSError(domain: "CollectorProcess", code: 1, userInfo: [NSLocalizedDescriptionKey:
                "the collector did not start: \(text) \(String(decoding: errors.withLock { $0 }, as: UTF8.self))"])
        }
        return CollectorProcess(process: process, port: port, out: out, errors: errors)
    }

    /// Starts the server with a configuration file: `out: out`, the source `KEY` = `web`, then `yaml`.
    static func start(_ dir: URL, yaml: String, _ arguments: [String] = []) throws -> CollectorProcess {
        let config = try write("out: out\nsources: [{write_key: KEY, source_id: web}]\n\(yaml)\n", to: dir.appendingPathComponent("collector.yml"))
        return try start(dir, ["--config", config.path, "--listen", "127.0.0.1:0"] + arguments, out: dir.appendingPathComponent("out").path)
    }

    /// Runs the binary to its end (for --check and refusals).
    static func run(_ arguments: [String]) throws -> BinaryResult {
        try runBinary(binary, arguments)
    }

    var stderr: String { String(decoding: errors.withLock { $0 }, as: UTF8.self) }

    func signal(_ signal: Int32) { kill(process.processIdentifier, signal) }

    func kill9() {
        signal(SIGKILL)
        process.waitUntilExit()
    }

    /// The exit status (waits at most 60 s, then kills).
    func waitForExit() -> Int32 {
        let deadline = Date().addingTimeInterval(60)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { kill9() }
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// SIGTERM and the exit status.
    func stop() throws -> Int32 {
        signal(SIGTERM)
        return waitForExit()
    }

    /// A raw TCP connection to the server (for clients no HTTP library would imitate).
    func connect() throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EMFILE) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { close(fd); throw POSIXError(.ECONNREFUSED) }
        return fd
    }

    /// Every line the archives in segment-logs/ hold.
    func archivedText() throws -> String {
        guard let files = FileManager.default.enumerator(atPath: out + "/segment-logs") else { return "" }
        var text = ""
        for case let file as String in files where file.hasSuffix(".gz") {
            let data = try Data(contentsOf: URL(fileURLWithPath: out + "/segment-logs/" + file))
            text += String(decoding: try GzipMember.inflate([UInt8](data), limit: 1 << 30), as: UTF8.self)
        }
        return text
    }

    func post(_ route: String, _ body: String, key: String? = nil, headers: [String: String] = [:], timeout: TimeInterval = 30) throws -> Reply {
        try post(route, Array(body.utf8), key: key, headers: headers, timeout: timeout)
    }

    func post(_ route: String, _ body: [UInt8], key: String? = nil, headers: [String: String] = [:], timeout: TimeInterval = 30) throws -> Reply {
        var all = headers
        all["Content-Type"] = "application/json"
        if let key { all["Authorization"] = "Basic " + Data("\(key):".utf8).base64EncodedString() }
        return try request("POST", "/v1/" + route, headers: all, body: body, timeout: timeout)
    }

    func request(_ method: String, _ path: String, headers: [String: String] = [:], body: [UInt8]? = nil, timeout: TimeInterval = 30) throws -> Reply {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
        request.httpMethod = method
        request.timeoutInterval = timeout
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        if let body { request.httpBody = Data(body) }
        let result = Locked<Result<Reply, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        Self.session.dataTask(with: request) { data, response, error in
            if let http = response as? HTTPURLResponse {
                var fields: [String: String] = [:]
                for (name, value) in http.allHeaderFields { fields["\(name)".lowercased()] = "\(value)" }
                result.withLock { $0 = .success(Reply(status: http.statusCode, headers: fields, body: data ?? Data())) }
            } else {
                result.withLock { $0 = .failure(error ?? URLError(.badServerResponse)) }
            }
            done.signal()
        }.resume()
        done.wait()
        return try result.withLock { $0! }.get()
    }
}

extension CollectorServerTests {
    /// 2,000 connections that send nothing (keep-alive browsers, or a script) do not
    /// lock a real client out: an idle connection takes a descriptor, not one of the slots for
    /// bodies being read, and the descriptor limit is raised at start to fit them. (Before, the
    /// 256 connection slots were full and the client waited for the 30 s read timeout.)
    func testTwoThousandIdleConnectionsDoNotKeepAClientWaiting() throws {
        let dir = try temporaryDirectory(self)
        // This process needs a descriptor per idle socket too.
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < 4096 {
            limit.rlim_cur = min(limit.rlim_max, 8192)
            _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
        let server = try CollectorProcess.start(dir, yaml: "limits: {read_timeout_seconds: 60}")
        var idle: [Int32] = []
        defer { idle.forEach { close($0) } }
        for _ in 0..<2000 {
            let fd = try server.connect()
            idle.append(fd)
        }
        usleep(300_000)
        let reply = try server.post("track", #"{"userId":"u","event":"Past The Crowd"}"#, key: "KEY", timeout: 10)
        XCTAssertEqual(reply.status, 200, "a client is served while 2,000 idle connections are open")
        let health = try server.request("GET", "/health", timeout: 10)
        XCTAssertEqual(health.status, 200)
        idle.forEach { close($0) }
        idle = []
        XCTAssertEqual(try server.stop(), 0)
    }

    /// limits.max_bodies bounds the bodies being read at once: with one, a second request
    /// waits while a first client sends its body slowly, and is served once it is done.
    func testBodiesPastTheLimitWaitForAFreeSlot() throws {
        let dir = try temporaryDirectory(self)
        let server = try CollectorProcess.start(dir, yaml: "limits: {max_bodies: 1}")
        let slow = try server.connect()
        defer { close(slow) }
        let body = #"{"userId":"u","event":"Slow"}"#
        let head = "POST /v1/track HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic \(Data("KEY:".utf8).base64EncodedString())\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n" + String(body.prefix(5))
        _ = head.withCString { write(slow, $0, strlen($0)) }
        usleep(300_000)
        try assertAPostWaits(on: server, "the second body waits while the first is being read") {
            let rest = String(body.dropFirst(5))
            _ = rest.withCString { write(slow, $0, strlen($0)) }
        }
        XCTAssertEqual(try server.stop(), 0)
    }
}
