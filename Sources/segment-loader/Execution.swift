import ArgumentParser
import Dispatch
import Foundation
import Logging
import SegmentLoader

#if canImport(Glibc)
import Glibc
#endif
import SegmentCore
import SegmentS3
import SegmentStages
import SegmentWarehouse
import SQLiteEngine
import PostgresEngine

/// Exit codes, as README documents them (the library's `ExitStatus`; a run's own comes from
/// its `RunOutcome`).
enum Exit {
    static let ok = ExitStatus.ok
    static let failure = ExitStatus.failure
    static let usage = ExitStatus.usage
    static let dataProblem = ExitStatus.dataProblem
    /// The warehouse cannot be written: disk full, read-only file or folder (sysexits' EX_IOERR).
    static let storage = ExitStatus.storage
    static let locked = ExitStatus.locked
    static func interrupted(by signal: Int32) -> Int32 { ExitStatus.interrupted(by: signal) }

    /// Prints why a command on `database` failed and gives its exit code: 75 for the lock, 74
    /// when the warehouse cannot be written, 64 for a database that is refused, 1 otherwise.
    static func failing(_ error: any Error, database: String, waited: Double = Warehouse.defaultBusyTimeout) -> ExitCode {
        switch error {
        case let held as WarehouseLock.Held:
            printError(held.description)
            return ExitCode(locked)
        case let refused as WarehouseError:
            printError(refused.message)
            return ExitCode(refused.storage ? storage : usage)
        case let sqlite as SQLiteError where sqlite.isBusy:
            printError(WarehouseLockedOut(seconds: waited).description)
            return ExitCode(locked)
        case let postgres as PostgresError:
            printError(postgres.message)
            return ExitCode(postgres.exitStatus)
        case let missing as ReadError:
            printError(missing.description)
            return ExitCode(usage)
        case let s3 as S3Error:
            printError(s3.message)
            return ExitCode(s3.exitStatus)
        case let sqlite as SQLiteError where sqlite.isDiskProblem:
            printError("cannot write to the warehouse \(database): \(sqlite.message)")
            return ExitCode(storage)
        default:
            printError("\(error)")
            return ExitCode(failure)
        }
    }
}

/// Fault-injection points for the crash and disk-full tests, hidden from `--help`: the product
/// reads no environment variable for them.
struct TestSeams: ParsableArguments {
    @Option(name: .customLong("test-kill-at"), help: .hidden)
    var testKillAt: String?

    @Option(name: .customLong("test-max-pages"), help: .hidden)
    var testMaxPages: Int?

    @Flag(name: .customLong("test-damage-spill"), help: .hidden)
    var testDamageSpill = false

    var faults: TestFaults {
        var faults = TestFaults()
        faults.killPoint = testKillAt.flatMap(KillPoint.init)
        faults.maxPageCount = testMaxPages
        faults.damageSpills = testDamageSpill
        return faults
    }
}

/// `--verbose` / `--quiet`, shared by the commands that run loads.
struct OutputOptions: ParsableArguments {
    @Flag(name: .shortAndLong, help: "Log each file as it is committed, and more.")
    var verbose = false

    @Flag(name: .shortAndLong, help: "Print nothing but errors (no summary, no progress).")
    var quiet = false

    func validate() throws {
        if verbose && quiet { throw ValidationError("--verbose and --quiet cannot be used together") }
    }

    /// Logs go to standard error through swift-log.
    func makeLogger() -> Logger {
        let level: Logger.Level = quiet ? .error : verbose ? .info : .notice
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        var logger = Logger(label: "segment-loader")
        logger.logLevel = level
        return logger
    }
}

func printError(_ message: String) {
    FileHandle.standardError.write(Data("segment-loader: error: \(message)\n".utf8))
}

/// Writes a file so that a reader sees the old content or the new, never a mix: a temporary
/// file beside it, then rename(2).
func writeAtomically(_ text: String, to path: String) throws {
    let url = URL(fileURLWithPath: path)
    try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
    try Data(text.utf8).write(to: url, options: .atomic)
}

/// Runs one load with everything an unattended run needs around it: the lock (exit 75),
/// SIGINT/SIGTERM (stop after the current file), a progress line on a terminal, the summary,
/// the JSON report and the Prometheus textfile, and the exit code.
struct Execution {
    var options: LoadOptions
    var output: OutputOptions
    var report: String?
    var metrics: String?
    var strict = false
    var seams = TestSeams()

    /// Returns normally when the run succeeded; throws the exit code otherwise.
    func run(select: () throws -> Discovery.Result) throws {
        let logger = output.makeLogger()
        let stop = StopRequest()
        let progress = LoadProgress()
        var options = self.options
        options.stop = stop
        options.progress = progress
        options.announce = { [logger] message in logger.notice("\(message)") }
        if !output.quiet && isatty(STDERR_FILENO) == 1 {
            options.waitNotice = { message in FileHandle.standardError.write(Data("segment-loader: \(message)\n".utf8)) }
        }

        let signals = [SIGINT, SIGTERM].map { number -> DispatchSourceSignal in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                if stop.isSet {
                    FileHandle.standardError.write(Data("\nsegment-loader: second signal: stopping now; the file being written is rolled back and loads again next run\n".utf8))
                    _exit(Exit.interrupted(by: number))
                }
                stop.set(signal: number)
                FileHandle.standardError.write(Data("\nsegment-loader: \(number == SIGINT ? "SIGINT" : "SIGTERM") received: stopping after the file being committed (send it again to stop at once)\n".utf8))
            }
            source.resume()
            return source
        }
        defer { signals.forEach { $0.cancel() } }

        let display = ProgressDisplay(progress: progress, enabled: !output.quiet && isatty(STDERR_FILENO) == 1)
        display.start()
        let summary: RunSummary
        do {
            let found = try select()
            summary = try LoadRun.run(found: found, options: options, faults: seams.faults) { message in
                display.clear()
                logger.info("\(message)")
            }
        } catch {
            display.stop()
            throw Exit.failing(error, database: options.database, waited: options.busyTimeout)
        }
        display.stop()

        if !output.quiet { print(summary.render()) }
        var code = Exit.ok
        if let report {
            do { try writeAtomically(summary.report() + "\n", to: report) } catch {
                printError("cannot write the report to \(report): \(error.localizedDescription)")
                code = Exit.failure
            }
        }
        if let metrics {
            do { try writeAtomically(summary.prometheus(), to: metrics) } catch {
                printError("cannot write the metrics to \(metrics): \(error.localizedDescription)")
                code = Exit.failure
            }
        }
        let outcomeCode = summary.outcome.exitStatus(signal: stop.signalNumber)
        if outcomeCode != Exit.ok {
            code = outcomeCode
        } else if strict && summary.totals.rejected > 0 {
            if !output.quiet { print("strict: \(summary.totals.rejected) rejected line(s) make this run fail (exit 65)") }
            code = Exit.dataProblem
        }
        if code != Exit.ok { throw ExitCode(code) }
    }
}

/// One line on standard error, redrawn twice a second: phase, files, bytes, rate, ETA.
final class ProgressDisplay {
    let progress: LoadProgress
    let enabled: Bool
    /// Created only when shown: Dispatch traps when a source that never ran is released.
    private var timer: DispatchSourceTimer?

    init(progress: LoadProgress, enabled: Bool) {
        self.progress = progress
        self.enabled = enabled
    }

    func start() {
        guard enabled else { return }
        let timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "segment-loader.progress"))
        self.timer = timer
        timer.schedule(deadline: .now() + .milliseconds(500), repeating: .milliseconds(500))
        timer.setEventHandler { [progress] in ProgressDisplay.draw(progress) }
        timer.resume()
    }

    static func draw(_ p: LoadProgress) {
        guard p.phase != .starting, p.bytesTotal > 0 else { return }
        let seconds = max(p.phaseSeconds, 0.001)
        let rate = Double(p.bytesDone) / seconds
        let remaining = rate > 0 ? Double(p.bytesTotal - p.bytesDone) / rate : 0
        var line = "\(p.phase == .scanning ? "scanning" : "loading") \(p.filesDone)/\(p.filesTotal) files, "
            + "\(mb(p.bytesDone))/\(mb(p.bytesTotal)) MB, \(String(format: "%.1f", rate / 1e6)) MB/s"
        if p.phase == .loading, p.messages > 0 {
            line += ", \(Int(Double(p.messages) / seconds)) messages/s"
        }
        if p.bytesDone > 0 { line += ", ETA \(Int(remaining.rounded())) s" }
        FileHandle.standardError.write(Data("\r\u{1B}[K\(line)".utf8))
    }

    func clear() {
        if enabled { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }

    func stop() {
        guard let timer else { return }
        timer.cancel()
        self.timer = nil
        clear()
    }

    private static func mb(_ bytes: Int64) -> String { String(format: "%.1f", Double(bytes) / 1e6) }
}
