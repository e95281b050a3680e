import Foundation
import XCTest
@testable import SegmentLoader
@testable import SegmentCore
@testable import SegmentS3
@testable import SegmentStages
@testable import SegmentWarehouse
@testable import SQLiteEngine
@testable import PostgresEngine

/// s3:// sources against a real S3 API (moto's server, signature checks on; `TestS3`), with a
/// proxy in front of it where a test needs to count requests or break answers (`S3Proxy`).
final class S3SourceTests: XCTestCase {
    static let day1 = "1700438400000"  // 2023-11-20
    static let day2 = "1700524800000"  // 2023-11-21

    /// Loads every object of `bucket` into the SQLite warehouse `db` through `client`.
    func loadBucket(_ bucket: String, into db: URL, client: S3Client, jobs: Int = 2) throws -> RunSummary {
        var options = LoadOptions(database: db.path, jobs: jobs)
        options.objects = client
        return try LoadRun.run(found: try Discovery.find(["s3://\(bucket)/"], objects: client), options: options)
    }

    /// A bucket of its own holding one day of archives, behind a proxy in `mode`: what a
    /// fault test starts from.
    func proxiedDay(_ name: String, mode: S3Proxy.Mode, files: Int, perFile: Int) throws
        -> (s3: TestS3, proxy: S3Proxy, dir: URL, bucket: String, db: URL, client: S3Client, written: Int) {
        let s3 = try TestS3.shared()
        let proxy = try S3Proxy(upstream: s3.endpoint)
        proxy.set(mode)
        let dir = try temporaryDirectory(self)
        let bucket = bucket(name)
        let written = try writeDay(dir.appendingPathComponent("up"), day: Self.day1, files: files, perFile: perFile)
        try s3.put(dir.appendingPathComponent("up"), bucket: bucket)
        return (s3, proxy, dir, bucket, dir.appendingPathComponent("w.sqlite"), s3.client(endpoint: proxy.endpoint), written)
    }

    /// A bucket of its own per test.
    func bucket(_ name: String) -> String { "sl-\(name)-\(UUID().uuidString.prefix(8).lowercased())" }

    /// Segment's layout under `root`: `segment-logs/<source>/<day>/<name>.gz`, returning the
    /// message ids written. People return with the same anonymous id across days.
    @discardableResult
    func writeDay(_ root: URL, source: String = "wk_web", day: String, files: Int = 2, perFile: Int = 30) throws -> Int {
        let dayStart = Double(Int64(day)! / 1000)
        var count = 0
        for f in 0..<files {
            var messages: [[String: Any]] = []
            for i in 0..<perFile {
                let at = Date(timeIntervalSince1970: dayStart + Double(f * 3600 + i * 60))
                let time = Timestamp.format(Instant(date: at)).replacingOccurrences(of: " ", with: "T") + "Z"
                var message = track("\(source)-\(day)-\(f)-\(i)", event: i % 3 == 0 ? "Order Completed" : "Product Viewed", user: "u\(i % 7)",
                                    received: time, properties: ["amount": i, "sku": "s\(i % 5)"])
                message["anonymousId"] = "anon-\(i % 7)"
                messages.append(message)
                count += 1
            }
            try write(gzip(ndjson(messages)), to: root.appendingPathComponent("segment-logs/\(source)/\(day)/\(day).\(f)abc.gz"))
        }
        return count
    }

    func testANightlyRunLoadsOnlyTheNewDayAndASecondRunDownloadsNothing() throws {
        let s3 = try TestS3.shared()
        let proxy = try S3Proxy(upstream: s3.endpoint)
        let dir = try temporaryDirectory(self)
        let bucket = bucket("nightly")
        let day1 = dir.appendingPathComponent("day1"), day2 = dir.appendingPathComponent("day2")
        try writeDay(day1, day: Self.day1)
        // A hidden folder (a collector's .incoming/) and a folder marker are not archives to load.
        try write(gzip(ndjson([track("hidden-1")])), to: day1.appendingPathComponent("segment-logs/wk_web/.incoming/partial.gz"))
        // Segment's own marker object, and an empty one: not archives, reported.
        try write("segment", to: day1.appendingPathComponent("segment-logs/dummy-object.txt"))
        try write([UInt8](), to: day1.appendingPathComponent("segment-logs/wk_web/empty.gz"))
        try s3.put(day1, bucket: bucket)
        let db = dir.appendingPathComponent("w.sqlite")
        let pipeline = try write("""
            version: 1
            name: nightly
            sources:
              - path: s3://\(bucket)/segment-logs/
                endpoint: \(proxy.endpoint)
            warehouse:
              path: \(db.path)
            run:
              report: \(dir.appendingPathComponent("report.json").path)
            """, to: dir.appendingPathComponent("nightly.yml"))
        var environment = s3.environment()
        environment["AWS_ENDPOINT_URL"] = nil

        let first = try runSegmentLoader(["run", pipeline.path], environment: environment)
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertTrue(first.stdout.contains("2 loaded"), first.stdout)
        XCTAssertTrue(first.stdout.contains("2 not archives"), first.stdout)
        XCTAssertTrue(first.stdout.contains("skipped s3://\(bucket)/segment-logs/dummy-object.txt: not an archive (neither gzip nor newline-delimited JSON)"), first.stdout)
        XCTAssertTrue(first.stdout.contains("skipped s3://\(bucket)/segment-logs/wk_web/empty.gz: not an archive (empty file)"), first.stdout)
        XCTAssertFalse(first.stdout.contains(".incoming"), first.stdout)
        // Archives are read once; an object that is no archive is told by its first bytes, as a
        // local file is, so each run reads the start of dummy-object.txt again (7 bytes).
        let archiveGets = { proxy.objectGets.filter { !$0.path.hasSuffix("dummy-object.txt") } }
        XCTAssertEqual(archiveGets().count, 2)
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM tracks WHERE id LIKE 'hidden%'"), "0")

        try writeDay(day2, day: Self.day2, files: 3)
        try s3.put(day2, bucket: bucket)
        proxy.reset()
        let dry = try runSegmentLoader(["run", "--dry-run", pipeline.path], environment: environment)
        XCTAssertEqual(dry.status, 0, dry.stderr)
        XCTAssertEqual(proxy.objectGets.count, 0, "a dry run lists, it reads nothing")
        XCTAssertEqual(dry.stdout.components(separatedBy: "\n").filter { $0.contains(Self.day2) && $0.contains("load:") }.count, 3, dry.stdout)
        XCTAssertEqual(dry.stdout.components(separatedBy: "\n").filter { $0.contains(Self.day1) && $0.contains("already loaded") }.count, 2, dry.stdout)

        let second = try runSegmentLoader(["run", pipeline.path], environment: environment)
        XCTAssertEqual(second.status, 0, second.stderr)
        XCTAssertEqual(Set(archiveGets().map(\.path)).count, 3, "only the new day's objects are read")
        XCTAssertTrue(archiveGets().allSatisfy { $0.path.contains(Self.day2) })
        XCTAssertTrue(second.stdout.contains("3 loaded"), second.stdout)
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM tracks"), "150")

        proxy.reset()
        let third = try runSegmentLoader(["run", pipeline.path], environment: environment)
        XCTAssertEqual(third.status, 0, third.stderr)
        XCTAssertEqual(archiveGets().count, 0, "a run with nothing new downloads no archive")
        XCTAssertEqual(proxy.objectGets.count, 1)
        XCTAssertFalse(proxy.seen.isEmpty, "it listed the prefix")
        XCTAssertTrue(third.stdout.contains("5 skipped (already loaded)"), third.stdout)
        // The summary and the report say what S3 was asked.
        XCTAssertTrue(second.stdout.contains("s3:         1 listing request, 4 GETs of objects"), second.stdout)
        XCTAssertTrue(third.stdout.contains("s3:         1 listing request, 1 GET of objects, 0.0 MB read"), third.stdout)
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("report.json"))) as? [String: Any]
        XCTAssertEqual((report?["s3"] as? [String: Any])?["get_requests"] as? Int, 1)
        XCTAssertEqual((report?["s3"] as? [String: Any])?["bytes_read"] as? Int, 7)

        // _files keeps the URL and the ETag (moto's, like S3's for a single-part upload, is the MD5).
        let files = try rows(db, "SELECT path, etag, size, status FROM _files ORDER BY path")
        XCTAssertEqual(files.count, 5)
        let local = day1.appendingPathComponent("segment-logs/wk_web/\(Self.day1)/\(Self.day1).0abc.gz")
        let md5 = try runBinary(URL(fileURLWithPath: "/usr/bin/md5sum"), [local.path]).stdout.prefix(32)
        XCTAssertEqual(files[0], ["s3://\(bucket)/segment-logs/wk_web/\(Self.day1)/\(Self.day1).0abc.gz", String(md5),
                                  String(try Data(contentsOf: local).count), "loaded"])
        XCTAssertEqual(try scalar(db, "SELECT count(DISTINCT source_id || day) FROM _files"), "2")

        // The secret is in no output, report or table.
        let warehouseBytes = try Data(contentsOf: db)
        for text in [first.stdout, first.stderr, second.stdout, third.stdout, dry.stdout,
                     try String(contentsOf: dir.appendingPathComponent("report.json"), encoding: .utf8)] {
            XCTAssertFalse(text.contains(s3.secretAccessKey))
        }
        XCTAssertNil(warehouseBytes.firstRange(of: Data(s3.secretAccessKey.utf8)))
    }

    func testMoreThanAThousandObjectsAreListedPageByPage() throws {
        let s3 = try TestS3.shared()
        let dir = try temporaryDirectory(self)
        let bucket = bucket("pages")
        let root = dir.appendingPathComponent("up")
        for i in 0..<1005 {
            try write(ndjson([track(String(format: "m%04d", i), user: "u\(i % 10)")]),
                      to: root.appendingPathComponent("logs/\(String(format: "%04d", i)).ndjson"))
        }
        try s3.put(root, bucket: bucket)
        let client = s3.client()
        let found = try Discovery.find(["s3://\(bucket)/logs/"], objects: client)
        XCTAssertEqual(found.archives.count, 1005)
        XCTAssertTrue(found.archives.allSatisfy { $0.source == .s3Object }, "an object is known as one from its discovery on")
        let local = try Discovery.find([try write(gzip(ndjson([track("a")])), to: dir.appendingPathComponent("in/a.gz")).path])
        XCTAssertEqual(local.archives.map(\.source), [.file])
        XCTAssertEqual(client.requestCounts["list"], 2, "ListObjectsV2 gives 1000 keys a page")
        var options = LoadOptions(database: dir.appendingPathComponent("w.sqlite").path, jobs: 2)
        options.objects = client
        options.models.enabled = false
        let summary = try LoadRun.run(found: found, options: options)
        XCTAssertEqual(summary.filesLoaded, 1005)
        XCTAssertEqual(try scalar(dir.appendingPathComponent("w.sqlite"), "SELECT count(*) FROM tracks"), "1005")
    }

    func testAnObjectStreamsAsTheReaderTakesIt() throws {
        let s3 = try TestS3.shared()
        let proxy = try S3Proxy(upstream: s3.endpoint)
        let dir = try temporaryDirectory(self)
        let bucket = bucket("stream")
        var generator = SeededGenerator(seed: 22)
        let size = 48 << 20
        var bytes = [UInt8](repeating: 0, count: size)
        for i in stride(from: 0, to: size, by: 8) {
            withUnsafeBytes(of: generator.next()) { word in for j in 0..<8 { bytes[i + j] = word[j] } }
        }
        try write(bytes, to: dir.appendingPathComponent("up/big.bin"))
        try s3.put(dir.appendingPathComponent("up"), bucket: bucket)
        let client = s3.client(endpoint: proxy.endpoint)
        var received = 0, largestBlock = 0, sentWhenFirstBlockCame = 0
        var hasher = SHA256Hasher()
        let read = try client.read("s3://\(bucket)/big.bin") { block in
            if received == 0 {
                // A reader busy with its first block: the store may send only what the
                // connection's buffers hold meanwhile, not the whole object.
                Thread.sleep(forTimeInterval: 1)
                sentWhenFirstBlockCame = proxy.bytesSent
            }
            received += block.count
            largestBlock = max(largestBlock, block.count)
            hasher.update(block)
        }
        XCTAssertEqual(read.size, Int64(size))
        XCTAssertEqual(received, size)
        XCTAssertEqual(hexString(hasher.finalize()), hexString(SHA256Hasher.hash(bytes)))
        XCTAssertLessThanOrEqual(largestBlock, 256 << 10)
        XCTAssertLessThan(sentWhenFirstBlockCame, 24 << 20, "the object streams with TCP's back-pressure instead of piling up in memory")
        XCTAssertEqual(read.etag?.count, 32)
    }

    func testRefusedCredentialsAndAMissingBucketOrPrefixStopTheRunWithTheirExitStatus() throws {
        let s3 = try TestS3.shared()
        let dir = try temporaryDirectory(self)
        let bucket = bucket("refused")
        try writeDay(dir.appendingPathComponent("up"), day: Self.day1, files: 1)
        try s3.put(dir.appendingPathComponent("up"), bucket: bucket)
        let db = dir.appendingPathComponent("w.sqlite").path
        var wrong = s3.environment()
        wrong["AWS_SECRET_ACCESS_KEY"] = "not-the-secret-key-0123456789"
        let refused = try runSegmentLoader(["load", "--db", db, "s3://\(bucket)/segment-logs/"], environment: wrong)
        XCTAssertEqual(refused.status, 77, refused.stderr)
        XCTAssertTrue(refused.stderr.contains("bucket \(bucket)"), refused.stderr)
        XCTAssertTrue(refused.stderr.contains("SignatureDoesNotMatch"), refused.stderr)
        XCTAssertTrue(refused.stderr.contains("secret access key"), refused.stderr)
        XCTAssertFalse(refused.stderr.contains("not-the-secret-key"), refused.stderr)

        let noBucket = try runSegmentLoader(["load", "--db", db, "s3://\(bucket)-none/segment-logs/"], environment: s3.environment())
        XCTAssertEqual(noBucket.status, 66, noBucket.stderr)
        XCTAssertTrue(noBucket.stderr.contains("there is no bucket \(bucket)-none"), noBucket.stderr)
        let noPrefix = try runSegmentLoader(["load", "--db", db, "s3://\(bucket)/segment-logz/"], environment: s3.environment())
        XCTAssertEqual(noPrefix.status, 66, noPrefix.stderr)
        XCTAssertTrue(noPrefix.stderr.contains("bucket \(bucket) has no object under segment-logz/"), noPrefix.stderr)
        // A prefix is a folder: segment-logs does not take in segment-logs-old/.
        XCTAssertThrowsError(try Discovery.find(["s3://\(bucket)/segment-log"], objects: s3.client()))

        var noKey = s3.environment()
        noKey["AWS_ACCESS_KEY_ID"] = nil
        noKey["AWS_SECRET_ACCESS_KEY"] = nil
        let none = try runSegmentLoader(["load", "--db", db, "s3://\(bucket)/segment-logs/"], environment: noKey)
        XCTAssertEqual(none.status, 77, none.stderr)
        XCTAssertTrue(none.stderr.contains("no AWS credentials"), none.stderr)
    }

    func testACutAnswerIsResumedWithRangeAndTheFileLoadedOnce() throws {
        // Large enough that half of it is many blocks.
        let (s3, proxy, dir, bucket, db, client, written) = try proxiedDay("cut", mode: .cutFirstAnswer, files: 2, perFile: 3000)
        let summary = try loadBucket(bucket, into: db, client: client, jobs: 2)
        XCTAssertEqual(summary.filesLoaded, 2)
        XCTAssertEqual(summary.totals.loaded, Int64(written))
        XCTAssertEqual(summary.totals.duplicates, 0)
        let gets = proxy.objectGets
        XCTAssertEqual(gets.count, 4, "each object: a GET cut in half, then one Range GET for the rest")
        XCTAssertEqual(gets.filter { $0.range != nil }.count, 2)
        XCTAssertTrue(gets.compactMap(\.range).allSatisfy { $0.hasPrefix("bytes=") && !$0.hasPrefix("bytes=0-") })
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM tracks"), String(written))
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM _files WHERE status = 'loaded'"), "2")

        // 503 SlowDown is waited out.
        proxy.set(.slowDown(times: 2))
        proxy.reset()
        let more = dir.appendingPathComponent("more")
        try writeDay(more, day: Self.day2, files: 1)
        try s3.put(more, bucket: bucket)
        let again = try loadBucket(bucket, into: db, client: client)
        XCTAssertEqual(again.filesLoaded, 1)
        XCTAssertEqual(proxy.objectGets.count, 3, "two answers of 503 SlowDown, then the object")
    }

    /// A bucket in another region than AWS_REGION says: S3 redirects and names the region, and
    /// the client goes on there, as the AWS CLI does, instead of failing the night.
    func testABucketInAnotherRegionIsFollowedThere() throws {
        let (_, proxy, _, bucket, db, client, written) = try proxiedDay("region", mode: .bucketIn(region: "eu-west-1"), files: 2, perFile: 10)
        let summary = try loadBucket(bucket, into: db, client: client)
        XCTAssertEqual(summary.filesLoaded, 2)
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM tracks"), String(written))
        XCTAssertEqual(proxy.seen.count, 4, "one redirect, then the listing and both objects signed for eu-west-1")
    }

    func testAListingAnswerLargerThanAnyPageIsRefused() throws {
        let (_, proxy, _, bucket, _, client, _) = try proxiedDay("huge", mode: .hugeListing, files: 1, perFile: 1)
        XCTAssertThrowsError(try Discovery.find(["s3://\(bucket)/"], objects: client)) { error in
            XCTAssertTrue("\(error)".contains("passed 32 MB, which no listing page reaches"), "\(error)")
        }
        XCTAssertLessThan(proxy.bytesSent, 40 << 20, "the rest of the answer is not read")
    }

    func testAnObjectThatCannotBeReadWholeFailsAndIsReadAgainNextRun() throws {
        let (_, proxy, _, bucket, db, client, written) = try proxiedDay("failed", mode: .cutAlways, files: 1, perFile: 2000)
        let failed = try loadBucket(bucket, into: db, client: client, jobs: 1)
        XCTAssertEqual(failed.filesFailed, 1)
        XCTAssertEqual(failed.totals.loaded, 0, "nothing of a file read in part is loaded")
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM sqlite_master WHERE name = 'tracks'"), "0")
        XCTAssertEqual(try scalar(db, "SELECT status FROM _files"), "failed")
        XCTAssertTrue(try scalar(db, "SELECT error FROM _files").contains("did not answer whole"))

        proxy.set(.pass)
        let again = try loadBucket(bucket, into: db, client: client)
        XCTAssertEqual(again.filesLoaded, 1)
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM tracks"), String(written))
    }

    func testObjectsStoredWithContentEncodingGzipAndUncompressedAreReadAsStored() throws {
        let s3 = try TestS3.shared()
        let dir = try temporaryDirectory(self)
        let bucket = bucket("encoding")
        let gz = dir.appendingPathComponent("gz"), plain = dir.appendingPathComponent("plain")
        let written = try writeDay(gz, day: Self.day1, files: 1, perFile: 50)
        try s3.put(gz, bucket: bucket, contentEncoding: "gzip")
        try write(ndjson([track("plain-1"), track("plain-2")]), to: plain.appendingPathComponent("exports/batch.ndjson"))
        try s3.put(plain, bucket: bucket)
        let db = dir.appendingPathComponent("w.sqlite")
        let client = s3.client()
        let summary = try loadBucket(bucket, into: db, client: client, jobs: 2)
        XCTAssertEqual(summary.filesLoaded, 2)
        XCTAssertEqual(summary.totals.rejected, 0)
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM tracks"), String(written + 2))
        let object = gz.appendingPathComponent("segment-logs/wk_web/\(Self.day1)/\(Self.day1).0abc.gz")
        XCTAssertEqual(try scalar(db, "SELECT size FROM _files WHERE path LIKE '%.gz'"), String(try Data(contentsOf: object).count),
                       "the object's bytes as stored, not decoded on the way")
    }

    func testCredentialsFromAProfileFile() throws {
        let s3 = try TestS3.shared()
        let dir = try temporaryDirectory(self)
        let bucket = bucket("profile")
        let written = try writeDay(dir.appendingPathComponent("up"), day: Self.day1, files: 1)
        try s3.put(dir.appendingPathComponent("up"), bucket: bucket)
        let credentials = try write("""
            [default]
            aws_access_key_id = AKIDNOTTHEONE
            aws_secret_access_key = wrong

            [segment]
            aws_access_key_id = \(s3.accessKeyId)
            aws_secret_access_key = \(s3.secretAccessKey)
            """, to: dir.appendingPathComponent("aws/credentials"))
        let config = try write("""
            [profile segment]
            region = us-east-1
            endpoint_url = \(s3.endpoint)
            """, to: dir.appendingPathComponent("aws/config"))
        let db = dir.appendingPathComponent("w.sqlite")
        let environment = ["AWS_SHARED_CREDENTIALS_FILE": credentials.path, "AWS_CONFIG_FILE": config.path, "AWS_PROFILE": "segment",
                           "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_ENDPOINT_URL": "", "AWS_REGION": ""]
        let result = try runSegmentLoader(["load", "--db", db.path, "s3://\(bucket)/segment-logs"], environment: environment)
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(try scalar(db, "SELECT count(*) FROM tracks"), String(written))
        XCTAssertFalse(result.stdout.contains(s3.secretAccessKey) || result.stderr.contains(s3.secretAccessKey))
    }

    func testTheSameArchivesFromS3AndFromALocalCopyGiveTheSameWarehouse() throws {
        let s3 = try TestS3.shared()
        let dir = try temporaryDirectory(self)
        let bucket = bucket("same")
        let root = dir.appendingPathComponent("copy")
        try writeDay(root, source: "wk_web", day: Self.day1, files: 2)
        try writeDay(root, source: "wk_web", day: Self.day2, files: 2)
        try writeDay(root, source: "wk_srv", day: Self.day2, files: 1)
        // Sample data: a duplicate across files, a rejected line, identifies, pages, screens.
        let samples = TestS3.repository.appendingPathComponent("sample-data/segment-logs")
        for file in try FileManager.default.subpathsOfDirectory(atPath: samples.path) where file.hasSuffix(".gz") {
            try write(Array(try Data(contentsOf: samples.appendingPathComponent(file))), to: root.appendingPathComponent("segment-logs/" + file))
        }
        try s3.put(root, bucket: bucket)
        let fromS3 = dir.appendingPathComponent("s3.sqlite"), fromDisk = dir.appendingPathComponent("disk.sqlite")
        let client = s3.client()
        var options = LoadOptions(database: fromS3.path, jobs: 2)
        options.objects = client
        options.now = { Date(timeIntervalSince1970: 1_700_000_000) }
        let found = try Discovery.find(["s3://\(bucket)/segment-logs/"], objects: client)
        // Objects are scanned by four times as many workers as files (they wait on the network),
        // and the warehouse is the same.
        XCTAssertEqual(ScanPass.workers(for: found.archives, jobs: 2), 8)
        XCTAssertEqual(ScanPass.workers(for: try Discovery.find([root.path]).archives, jobs: 2), 2)
        _ = try LoadRun.run(found: found, options: options)
        _ = try load([root.appendingPathComponent("segment-logs")], into: fromDisk)

        // The same warehouse, the paths and ETags in the bookkeeping aside.
        let database = try Database(path: fromS3.path)
        try database.execute("""
            UPDATE _files SET etag = NULL, path = replace(path, 's3://\(bucket)/', '\(root.path)/');
            UPDATE _rejects SET file = replace(file, 's3://\(bucket)/', '\(root.path)/');
            """)
        let s3Dump = try dumpWarehouse(fromS3), diskDump = try dumpWarehouse(fromDisk)
        XCTAssertGreaterThan(try Int(scalar(fromDisk, "SELECT count(*) FROM tracks"))!, 100)
        XCTAssertEqual(try scalar(fromDisk, "SELECT count(*) FROM _rejects"), "1")
        XCTAssertEqual(s3Dump, diskDump)
    }

    /// `_files.etag` came after format 3 was set: a warehouse without it gets it on its next
    /// run, in SQLite and in PostgreSQL, and objects loaded from S3 into either are skipped
    /// by their ETag the run after.
    func testAWarehouseMadeBeforeTheETagColumnGetsItOnItsNextRun() throws {
        let s3 = try TestS3.shared()
        let dir = try temporaryDirectory(self)
        let bucket = bucket("etag")
        let local = dir.appendingPathComponent("local")
        try writeDay(local, day: Self.day1, files: 1)
        let up = dir.appendingPathComponent("up")
        try writeDay(up, day: Self.day2, files: 2)
        try s3.put(up, bucket: bucket)
        let client = s3.client()

        let sqlite = dir.appendingPathComponent("w.sqlite")
        let postgres = try TestPostgres.shared().createDatabase("s3_etag")
        for database in [sqlite.path, postgres] {
            var options = LoadOptions(database: database, jobs: 2)
            options.models.enabled = false
            _ = try LoadRun.run(paths: [local.path], options: options)
            let session: any SQLSession = database == sqlite.path ? try Database(path: database) : try PostgresConnection(PostgresLocation(database))
            try session.execute("ALTER TABLE _files DROP COLUMN etag")
            XCTAssertFalse(try LoadRecords.hasETagColumn(session))

            options.objects = client
            let summary = try LoadRun.run(found: try Discovery.find(["s3://\(bucket)/"], objects: client), options: options)
            XCTAssertEqual(summary.filesLoaded, 2, database)
            XCTAssertTrue(try LoadRecords.hasETagColumn(session), database)
            let etags = try session.rows("SELECT path, etag FROM _files ORDER BY id", [])
            XCTAssertEqual(etags.count, 3)
            XCTAssertEqual(etags[0][1], .null, "a file from before has no ETag")
            XCTAssertEqual(etags[1][1].text?.count, 32)
            XCTAssertTrue(etags[1][0].text?.hasPrefix("s3://\(bucket)/segment-logs/") == true)

            let again = try LoadRun.run(found: try Discovery.find(["s3://\(bucket)/"], objects: client), options: options)
            XCTAssertEqual(again.skippedAlreadyLoaded.count, 2, database)
            XCTAssertEqual(again.filesLoaded, 0)
        }
        XCTAssertEqual(client.requestCounts["get"], 4, "two objects read once into each warehouse, none on the runs after")
    }

    /// A night's listing does not grow with the history: with since/until, day folders
    /// outside the range are never listed, and the selection is the same as from a whole listing.
    func testADayRangeNeverListsTheDayFoldersOutsideIt() throws {
        let s3 = try TestS3.shared()
        let proxy = try S3Proxy(upstream: s3.endpoint)
        let dir = try temporaryDirectory(self)
        let bucket = bucket("days")
        let root = dir.appendingPathComponent("up")
        let days = (0..<12).map { String(1_700_438_400_000 + Int64($0) * 86_400_000) }
        for source in ["wk_web", "wk_srv"] {
            for day in days { try writeDay(root, source: source, day: day, files: 1, perFile: 2) }
        }
        try s3.put(root, bucket: bucket)
        let client = s3.client(endpoint: proxy.endpoint)
        var pipeline = Pipeline(name: "nightly", sources: [Pipeline.Source(path: "s3://\(bucket)/segment-logs/")],
                                warehouse: .init(path: dir.appendingPathComponent("w.sqlite").path))
        let everything = try pipeline.select(objects: client).found.archives
        XCTAssertEqual(everything.count, 24)

        let since = Timestamp.day(fromEpochMilliseconds: Int64(days[9])!)
        pipeline.sources[0].since = DayBound.parse(since, allowLast: true)
        proxy.reset()
        let selected = try pipeline.select(objects: client).found.archives
        XCTAssertEqual(selected.map(\.path), everything.filter { $0.day! >= since }.map(\.path))
        XCTAssertEqual(selected.count, 6)
        let listed = proxy.seen.map(\.path)
        for day in days[..<9] {
            XCTAssertFalse(listed.contains { $0.contains(day) }, "the day folder \(day) before since was listed")
        }
        XCTAssertTrue(listed.contains { $0.contains(days[9]) })

        // A quiet night: every day folder is before since, and that is no error.
        pipeline.sources[0].since = DayBound.parse("2030-01-01", allowLast: true)
        XCTAssertEqual(try pipeline.select(objects: client).found.archives.count, 0)
    }
}
