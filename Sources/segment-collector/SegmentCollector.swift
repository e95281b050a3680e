import ArgumentParser
import Collector
import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import ServiceLifecycle
import SegmentCore

@main
struct SegmentCollector: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "segment-collector",
        abstract: "Receive Segment tracking calls over HTTP and write them as archives segment-loader loads.",
        discussion: """
            Speaks Segment's HTTP Tracking API (POST /v1/track, identify, page, screen, group, alias, \
            batch, import), so any Segment client library can send to it by changing its host. A 200 \
            is sent only once the message is on disk (group commit: one fsynced gzip member per \
            flush). Archives grow in OUT/.incoming/ and move to \
            OUT/segment-logs/<source>/<received day epoch ms>/<epoch ms>.<unique>.gz when they close \
            (size, age, day change, shutdown); a pipeline whose source is OUT/segment-logs loads them.

            Quick start:
              segment-collector --listen 127.0.0.1:8088 --out collected --source KEY=web

            SIGTERM or SIGINT: stop accepting, write what is queued, close every archive, exit 0. \
            SIGHUP: read the suppression list again (--suppressions, from segment-loader \
            suppressions export): the calls of the people it names are answered 200 and never written.
            GET /health answers "ok"; GET /metrics gives Prometheus metrics.
            Exit codes: 0 stopped cleanly, 64 bad configuration, 69 cannot listen, 74 cannot write OUT, \
            75 another segment-collector writes into OUT.
            See docs/collector.md for the configuration file, systemd and nginx.
            """
    )

    @Option(name: .long, help: ArgumentHelp("YAML configuration (docs/collector.md).", valueName: "file"))
    var config: String?

    @Flag(name: .long, help: "Check the configuration (every mistake with its line and column) and exit.")
    var check = false

    @Option(name: .long, help: ArgumentHelp("Address to listen on, HOST:PORT (overrides the file; default 127.0.0.1:8088; port 0 picks a free one).", valueName: "host:port"))
    var listen: String?

    @Option(name: .long, help: ArgumentHelp("Folder that receives segment-logs/ (overrides the file).", valueName: "dir"))
    var out: String?

    @Option(name: .long, help: ArgumentHelp("A write key and the source id its messages are filed under; repeatable (replaces the file's sources).", valueName: "writekey=source_id"))
    var source: [String] = []

    @Option(name: .long, help: ArgumentHelp("The suppression list of `segment-loader suppressions export` (overrides the file; re-read on SIGHUP).", valueName: "file"))
    var suppressions: String?

    @Option(name: .long, help: ArgumentHelp("Log level: trace, debug, info, notice, warning, error.", valueName: "level"))
    var logLevel: String = "info"

    /// Test seams (hidden): the order of write, fsync, ack and answers, and a full disk.
    @Option(name: .long, help: .hidden)
    var testTrace: String?
    @Option(name: .long, help: .hidden)
    var testDiskFullWhile: String?

    func run() async throws {
        var settings = CollectorConfig()
        var problems: [String] = []
        if let config {
            do {
                settings = try CollectorConfigFile.load(path: config)
            } catch {
                FileHandle.standardError.write(Data("\(error.description)\n".utf8))
                throw ExitCode(64)
            }
        }
        if let listen {
            if let (host, port) = CollectorConfig.parseListen(listen) {
                settings.host = host
                settings.port = port
            } else {
                problems.append("--listen must be HOST:PORT, not '\(listen)'")
            }
        }
        if let out { settings.out = URL(fileURLWithPath: out).standardizedFileURL.path }
        if let suppressions { settings.suppressions = URL(fileURLWithPath: suppressions).standardizedFileURL.path }
        if !source.isEmpty {
            settings.sources = []
            for text in source {
                if let parsed = CollectorConfig.parseSource(text) {
                    settings.sources.append(parsed)
                } else {
                    problems.append("--source must be WRITEKEY=SOURCE_ID (a source id of letters, digits, '-', '_', '.'), not '\(text)'")
                }
            }
        }
        if Logger.Level(rawValue: logLevel) == nil {
            problems.append("--log-level must be one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")), not '\(logLevel)'")
        }
        problems += settings.problems()
        if !problems.isEmpty {
            FileHandle.standardError.write(Data(problems.map { "segment-collector: \($0)\n" }.joined().utf8))
            throw ExitCode(64)
        }
        if check {
            print("ok: listen \(settings.listen), out \(settings.out!), \(settings.sources.count) source(s): \(settings.sources.map(\.sourceId).joined(separator: ", "))")
            print("limits: \(settings.messageLimitBytes) bytes per message, \(settings.batchLimitBytes) per batch; flush every \(settings.commit.intervalMilliseconds) ms or \(settings.commit.flushBytes) bytes; queue \(settings.commit.queueLimitBytes) bytes")
            return
        }
        try await serve(settings)
    }

    func serve(_ settings: CollectorConfig) async throws {
        var logger = Logger(label: "segment-collector")
        logger.logLevel = Logger.Level(rawValue: logLevel)!
        let out = settings.out!

        let committer = GroupCommitter(out: out, settings: settings.commit)
        let metrics = CollectorMetrics(queueLimitBytes: settings.commit.queueLimitBytes)
        let trace: Trace? = testTrace.flatMap { Trace(path: $0) }
        if let trace { committer.observe = { trace.record($0) } }
        if let flag = testDiskFullWhile { committer.failWrites = { FileManager.default.fileExists(atPath: flag) } }
        let eventLogger = logger
        committer.events = { event in
            metrics.commit(event)
            switch event {
            case .closed(let source, let path): eventLogger.info("archive closed", metadata: ["source": "\(source)", "path": "\(path)"])
            case .failed(let source, let error): eventLogger.error("flush failed: \(error)", metadata: ["source": "\(source)"])
            case .flushed: break
            }
        }
        // One collector per output folder: a second one would move the first's open archives.
        // The kernel drops the lock when its holder dies, however it dies.
        let owner: WarehouseLock
        do {
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            guard access(out, W_OK) == 0 else { throw CocoaError(.fileWriteNoPermission) }
            owner = try WarehouseLock(database: out + "/")
        } catch let held as WarehouseLock.Held {
            let who = held.pid.map { "process \($0)" } ?? "another process"
            FileHandle.standardError.write(Data("segment-collector: another segment-collector already writes into \(out): \(who) (\(held.holder)); lock file \(held.lockPath). Two would move each other's open archives: stop that one first, or give this one another --out.\n".utf8))
            throw ExitCode(75)
        } catch {
            FileHandle.standardError.write(Data("segment-collector: cannot write in \(out): \(error.localizedDescription)\n".utf8))
            throw ExitCode(74)
        }
        defer { withExtendedLifetime(owner) {} }
        do {
            for name in try committer.start() {
                logger.notice("finished an archive a previous run left open", metadata: ["archive": "\(name)"])
            }
        } catch {
            FileHandle.standardError.write(Data("segment-collector: cannot write in \(out): \(error.localizedDescription)\n".utf8))
            throw ExitCode(74)
        }

        let connections = Self.raiseDescriptorLimit(toFit: settings.maxConnections, logger: logger)
        var suppression = SuppressionList()
        if let path = settings.suppressions {
            do { suppression = try Intake.readSuppression(path: path) } catch {
                committer.stop()
                FileHandle.standardError.write(Data("segment-collector: \(error)\n".utf8))
                throw ExitCode(64)
            }
            logger.info("suppression list read", metadata: ["path": "\(path)", "ids": "\(suppression.count)"])
        }
        let intake = Intake(config: settings, suppression: suppression)
        // SIGHUP: the list again; a list that cannot be read leaves the one in use.
        signal(SIGHUP, SIG_IGN)
        let hangup = DispatchSource.makeSignalSource(signal: SIGHUP, queue: DispatchQueue(label: "segment-collector.sighup"))
        let hupLogger = logger
        hangup.setEventHandler {
            guard let path = settings.suppressions else {
                hupLogger.notice("SIGHUP: no suppression list configured (--suppressions or suppressions:)")
                return
            }
            do {
                let list = try Intake.readSuppression(path: path)
                intake.replaceSuppression(list)
                hupLogger.notice("suppression list read again", metadata: ["path": "\(path)", "ids": "\(list.count)"])
            } catch {
                hupLogger.error("SIGHUP: \(error); the list in use is kept")
            }
        }
        hangup.resume()
        defer { hangup.cancel() }
        let responder = CollectorResponder(intake: intake, committer: committer, bodies: BodySlots(settings.maxBodies),
                                           metrics: metrics, trace: trace, logger: logger)
        let listen = settings.listen
        let sources = settings.sources.map(\.sourceId).joined(separator: ", ")
        let app = Application(
            responder: responder,
            server: .http1(configuration: .init(idleTimeout: .seconds(Int64(settings.readTimeoutSeconds)))),
            configuration: .init(address: .hostname(settings.host, port: settings.port), serverName: "segment-collector",
                                 availableConnectionsDelegate: MaximumAvailableConnections(connections)),
            services: [CommitterService(committer: committer, logger: logger)],
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? settings.port
                // The first line on stdout, for scripts and tests started with port 0.
                let host = settings.host.contains(":") ? "[\(settings.host)]" : settings.host
                FileHandle.standardOutput.write(Data("listening on \(host):\(port)\n".utf8))
                eventLogger.info("listening", metadata: ["address": "\(listen)", "port": "\(port)", "out": "\(out)", "sources": "\(sources)"])
            },
            logger: logger
        )
        do {
            try await app.runService(gracefulShutdownSignals: [.sigterm, .sigint])
        } catch {
            committer.stop()
            FileHandle.standardError.write(Data("segment-collector: cannot serve on \(listen): \(error)\n".utf8))
            throw ExitCode(69)
        }
        logger.info("stopped: every accepted message is in an archive under \(out)/segment-logs")
    }

    /// Raises the soft limit on open descriptors to the hard one (systemd's LimitNOFILE sets
    /// the hard one), so that idle connections up to limits.max_connections each get one;
    /// returns the connections the limit allows (a few descriptors stay for archives and logs).
    static func raiseDescriptorLimit(toFit connections: Int, logger: Logger) -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return connections }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        let allowed = Int(clamping: limit.rlim_cur) - 64
        if allowed < connections {
            logger.warning("the descriptor limit (\(limit.rlim_cur)) allows \(max(allowed, 1)) connections, not limits.max_connections (\(connections)); raise LimitNOFILE")
            return max(allowed, 1)
        }
        return connections
    }
}
