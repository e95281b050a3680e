import Foundation
import XCTest
@testable import SegmentLoader
@testable import YAMLFiles
@testable import SegmentS3
@testable import SQLiteEngine

/// A newcomer's mistakes, each answered with what is wrong and what to do.
final class FirstRunMessageTests: XCTestCase {
    var dir: URL!
    var repo: URL { URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent() }

    override func setUpWithError() throws {
        dir = try temporaryDirectory(self)
    }

    /// `postgressql://` is a mistyped PostgreSQL URL, not a file to make in a folder named
    /// `postgressql:`; the password stays out of the message.
    func testAURLWithAnUnknownSchemeIsATypoWithTheSchemesKnown() throws {
        let result = try runSegmentLoader(["load", "--db", "postgressql://loader:sekrit@127.0.0.1:43945/analytics",
                                           repo.appendingPathComponent("sample-data").path], in: dir)
        XCTAssertEqual(result.status, 64, result.stderr)
        XCTAssertTrue(result.stderr.contains("unknown scheme postgressql:// (did you mean postgresql://?)"), result.stderr)
        XCTAssertTrue(result.stderr.contains("postgresql://... or postgres://..."), result.stderr)
        XCTAssertFalse(result.stderr.contains("sekrit"), result.stderr)
        XCTAssertFalse(result.stderr.contains("does not exist"), result.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), [], "nothing made")
        // A scheme far from any known one is still a URL, without a guess.
        let far = try runSegmentLoader(["status", "--db", "mysql://root@localhost/analytics"])
        XCTAssertEqual(far.status, 64, far.stderr)
        XCTAssertTrue(far.stderr.contains("unknown scheme mysql://:"), far.stderr)
    }

    func testADirectoryIsNotAWarehouseFile() throws {
        let folder = dir.appendingPathComponent("somefolder")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let result = try runSegmentLoader(["load", "--db", folder.path, repo.appendingPathComponent("sample-data").path])
        XCTAssertEqual(result.status, 64, result.stderr)
        XCTAssertTrue(result.stderr.contains("\(folder.path) is a directory, not a warehouse file"), result.stderr)
        XCTAssertTrue(result.stderr.contains("e.g. \(folder.path)/warehouse.sqlite"), result.stderr)
        XCTAssertFalse(result.stderr.contains("disk I/O"), result.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), [], "nothing written in it")
        let status = try runSegmentLoader(["status", "--db", folder.path])
        XCTAssertTrue(status.stderr.contains("is a directory, not a warehouse file"), status.stderr)
    }

    /// A pipeline file that is not there is missing: no line and column, not "not valid", and
    /// the nearest pipeline beside it is offered.
    func testAMissingPipelineFileIsSaidMissingWithTheNearestOne() throws {
        let pipelines = dir.appendingPathComponent("pipelines")
        try FileManager.default.createDirectory(at: pipelines, withIntermediateDirectories: true)
        _ = try write("version: 1\nname: s\nsources: [{path: .}]\nwarehouse: {path: w.sqlite}\n", to: pipelines.appendingPathComponent("sample.yml"))
        let result = try runSegmentLoader(["run", "pipelines/sampel.yml"], in: dir)
        XCTAssertEqual(result.status, 64, result.stderr)
        XCTAssertEqual(result.stderr, "segment-loader: error: pipelines/sampel.yml: no such pipeline file (did you mean pipelines/sample.yml?)\n")
        let validate = try runSegmentLoader(["validate", "pipelines/nothing-like-it.yml"], in: dir)
        XCTAssertEqual(validate.status, 64, validate.stderr)
        XCTAssertEqual(validate.stderr, "pipelines/nothing-like-it.yml: no such pipeline file\n")
        let folder = try runSegmentLoader(["run", "pipelines"], in: dir)
        XCTAssertEqual(folder.stderr, "segment-loader: error: pipelines: is a directory, not the pipeline file\n")
        // A file that is there keeps its positions.
        let broken = try write("version: 1\nnme: x\n", to: pipelines.appendingPathComponent("broken.yml"))
        let invalid = try runSegmentLoader(["run", broken.path])
        XCTAssertTrue(invalid.stderr.hasPrefix("segment-loader: error: the pipeline is not valid:\n"), invalid.stderr)
        XCTAssertTrue(invalid.stderr.contains("\n\(broken.path):2:1: unknown key 'nme' in the pipeline (did you mean name?)"), invalid.stderr)
    }

    /// `s3:/bucket/prefix` (one slash) is an S3 URL mistyped, on the command line and in a
    /// pipeline; another scheme is named as one the loader does not read.
    func testAnS3URLShortOfASlashSuggestsS3() throws {
        let db = dir.appendingPathComponent("w.sqlite").path
        let result = try runSegmentLoader(["load", "--db", db, "s3:/bucket/segment-logs"])
        XCTAssertEqual(result.status, 64, result.stderr)
        XCTAssertTrue(result.stderr.contains("s3:/bucket/segment-logs: no such file or directory; did you mean s3://bucket/segment-logs?"), result.stderr)
        let upper = try runSegmentLoader(["load", "--db", db, "S3://bucket/segment-logs"])
        XCTAssertTrue(upper.stderr.contains("did you mean s3://bucket/segment-logs?"), upper.stderr)
        let gcs = try runSegmentLoader(["load", "--db", db, "gs://bucket/segment-logs"])
        XCTAssertTrue(gcs.stderr.contains("gs:// is not a source this loader reads"), gcs.stderr)
        XCTAssertNil(S3Location.misspelling("sample-data/segment-logs"))
        XCTAssertNil(S3Location.misspelling("s3://bucket/x"))

        let pipeline = try write("version: 1\nname: p\nsources:\n  - path: s3:/bucket/segment-logs\nwarehouse: {path: w.sqlite}\n",
                                 to: dir.appendingPathComponent("p.yml"))
        let validate = try runSegmentLoader(["validate", pipeline.path])
        XCTAssertEqual(validate.status, 64, validate.stderr)
        XCTAssertTrue(validate.stderr.contains("p.yml:4:11: 's3:/bucket/segment-logs' is not a local path nor an S3 location: did you mean s3://bucket/segment-logs?"), validate.stderr)
    }

    /// `status --db warehous.sqlite` names the warehouse beside it; a folder without one says
    /// what --db wants.
    func testAMissingWarehouseNamesTheWarehouseBesideIt() throws {
        let load = try runSegmentLoader(["load", "--db", "warehouse.sqlite", repo.appendingPathComponent("sample-data").path], in: dir)
        XCTAssertEqual(load.status, 0, load.stderr)
        // Not warehouses: a text file, and an SQLite database of another program.
        _ = try write("notes", to: dir.appendingPathComponent("warehouse.txt"))
        let other = try Database(path: dir.appendingPathComponent("warehouses.sqlite").path)
        try other.execute("CREATE TABLE t (x)")
        let status = try runSegmentLoader(["status", "--db", "warehous.sqlite"], in: dir)
        XCTAssertEqual(status.status, 64, status.stderr)
        XCTAssertTrue(status.stderr.contains("there is no warehouse at warehous.sqlite; the warehouse beside it is warehouse.sqlite: did you mean --db warehouse.sqlite?"), status.stderr)
        let nested = try runSegmentLoader(["models", "--db", dir.appendingPathComponent("warehose.sqlite").path])
        XCTAssertEqual(nested.status, 64, nested.stderr)
        XCTAssertTrue(nested.stderr.contains("did you mean --db \(dir.appendingPathComponent("warehouse.sqlite").path)?"), nested.stderr)
        let empty = dir.appendingPathComponent("empty")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        let none = try runSegmentLoader(["status", "--db", empty.appendingPathComponent("warehouse.sqlite").path])
        XCTAssertEqual(none.status, 64, none.stderr)
        XCTAssertTrue(none.stderr.contains("there is no warehouse at \(empty.path)/warehouse.sqlite: give --db the file a run or load wrote"), none.stderr)
    }

    /// An endpoint where nothing listens refused the connection, and the message says so.
    func testAnEndpointThatRefusesTheConnectionIsSaidToRefuseIt() throws {
        let port = try TestPostgres.freePort()
        let client = S3Client(settings: AWSSettings(credentials: AWSCredentials(accessKeyId: "AKIDEXAMPLE", secretAccessKey: "secret"),
                                                    region: "us-east-1", endpoint: "http://127.0.0.1:\(port)", source: "the test"),
                              retry: S3Retry(attempts: 2, firstDelay: 0.01, maxDelay: 0.02))
        XCTAssertThrowsError(try client.list(S3Location("s3://bucket/segment-logs/")!)) { error in
            let s3 = error as! S3Error
            XCTAssertEqual(s3.exitStatus, 69)
            XCTAssertTrue(s3.message.contains("the endpoint http://127.0.0.1:\(port) refused the connection after 2 tries: nothing listens there"), s3.message)
            XCTAssertTrue(s3.message.contains("is the endpoint (AWS_ENDPOINT_URL or the pipeline's endpoint:) right"), s3.message)
        }
    }

    /// libcurl is opened when S3 is first read: a machine without it is told which package
    /// to install, and exits 69; a loader that never reads S3 never needs it.
    func testAMachineWithoutLibcurlIsToldWhatToInstall() throws {
        guard case .failure(let error) = Curl.open(["/nonexistent/libcurl.so.4", "libcurl-none.so.4"]) else {
            return XCTFail("a library that is not there opened")
        }
        XCTAssertTrue(error.message.contains("/nonexistent/libcurl.so.4: cannot open shared object file"), error.message)
        XCTAssertTrue(error.message.contains("libcurl-none.so.4"), error.message)
        XCTAssertTrue(error.message.hasSuffix("apt-get install libcurl4"), error.message)
        // A library without curl's functions is not taken for it.
        guard case .failure(let notCurl) = Curl.open(["libz.so.1"]) else { return XCTFail("zlib taken for libcurl") }
        XCTAssertTrue(notCurl.message.contains("libz.so.1"), notCurl.message)
        XCTAssertNoThrow(try Curl.open(Curl.candidates).get())

        let environment = ["SEGMENT_LOADER_LIBCURL": "/nonexistent/libcurl.so.4", "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
                           "AWS_SECRET_ACCESS_KEY": "secret", "AWS_ENDPOINT_URL": "http://127.0.0.1:9"]
        let db = dir.appendingPathComponent("w.sqlite").path
        let s3 = try runSegmentLoader(["load", "--db", db, "s3://bucket/segment-logs/"], environment: environment)
        XCTAssertEqual(s3.status, 69, s3.stderr)
        XCTAssertTrue(s3.stderr.contains("libcurl, the HTTP client of s3:// sources, is not on this machine"), s3.stderr)
        let local = try runSegmentLoader(["load", "--db", db, repo.appendingPathComponent("sample-data").path], environment: environment)
        XCTAssertEqual(local.status, 0, local.stderr)
    }
}
