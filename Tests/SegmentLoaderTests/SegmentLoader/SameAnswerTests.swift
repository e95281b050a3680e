import Foundation
import XCTest
@testable import SegmentLoader

/// "the same answer everywhere": mistakes a new user makes get the answer every
/// other command gives.
final class SameAnswerTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = try temporaryDirectory(self)
    }

    func testAMistypedCommandIsNamedWithWhatItMayHaveMeant() throws {
        let typo = try runSegmentLoader(["lod", "--db", dir.appendingPathComponent("w.sqlite").path])
        XCTAssertEqual(typo.status, 64)
        XCTAssertTrue(typo.stderr.contains("unknown command 'lod' (did you mean load?)"), typo.stderr)
        XCTAssertFalse(typo.stderr.contains("Unknown option '--db'"), typo.stderr)
        let bare = try runSegmentLoader([])
        XCTAssertEqual(bare.status, 0, bare.stderr)
        XCTAssertTrue(bare.stdout.contains("SUBCOMMANDS"), bare.stdout)
    }

    func testRejectsOfAMissingWarehouseExit64AndLeaveNoLockFile() throws {
        let missingFolder = try runSegmentLoader(["rejects", "--db", dir.appendingPathComponent("nope/w.sqlite").path])
        XCTAssertEqual(missingFolder.status, 64, missingFolder.stderr)
        XCTAssertTrue(missingFolder.stderr.contains("there is no warehouse at"), missingFolder.stderr)
        let missing = dir.appendingPathComponent("missing.sqlite")
        let retry = try runSegmentLoader(["rejects", "retry", "--db", missing.path])
        XCTAssertEqual(retry.status, 64, retry.stderr)
        XCTAssertTrue(retry.stderr.contains("there is no warehouse at \(missing.path)"), retry.stderr)
        XCTAssertFalse(retry.stderr.contains("create it first"), retry.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: missing.path + ".lock"), "no stray lock file")
        XCTAssertFalse(FileManager.default.fileExists(atPath: missing.path))
    }

    /// A dry run prints paths as the run does: relative to the working directory.
    func testADryRunPrintsPathsAsTheRunDoes() throws {
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        for item in ["pipelines", "sample-data"] {
            try FileManager.default.copyItem(at: repo.appendingPathComponent(item), to: dir.appendingPathComponent(item))
        }
        func run(_ arguments: String) throws -> BinaryResult {
            try runBinary(URL(fileURLWithPath: "/bin/sh"), ["-c", "cd '\(dir.path)' && exec '\(segmentLoaderBinary.path)' \(arguments)"])
        }
        let dry = try run("run --dry-run pipelines/sample.yml")
        XCTAssertEqual(dry.status, 0, dry.stderr)
        XCTAssertTrue(dry.stdout.contains(": sample-data/segment-logs/"), dry.stdout)
        XCTAssertFalse(dry.stdout.contains(dir.path), dry.stdout)
        let real = try run("run pipelines/sample.yml")
        XCTAssertTrue(real.stdout.contains("  discarded:  1 value kept out of its column (see _discards)"), real.stdout)
        XCTAssertFalse(real.stdout.contains(dir.path), real.stdout)
    }
}
