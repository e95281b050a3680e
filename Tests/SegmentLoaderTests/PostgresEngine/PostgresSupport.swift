import Foundation
import XCTest
@testable import SegmentLoader
@testable import PostgresEngine

/// The test run's own PostgreSQL 15 (Debian's `postgresql-15`, which `.ci/run` installs):
/// `initdb` and `pg_ctl` in a temporary folder, listening on 127.0.0.1 on a free port only,
/// run as `nobody` when the tests run as root (`initdb` refuses root), password
/// authentication over TCP. Started by the first test that asks, stopped when the test
/// process exits. A test never skips for want of it: a server that cannot start fails the test.
/// What creates a database of its own for a test: one server, or a Citus cluster.
protocol TestDatabaseServer {
    /// A fresh database of its own for one test; returns its URL.
    func createDatabase(_ name: String) throws -> String
}

final class TestPostgres: TestDatabaseServer, @unchecked Sendable {
    let dir: URL
    let port: Int
    let bin: URL
    let password = "sl-test-secret"

    private static let lock = NSLock()
    nonisolated(unsafe) private static var started: Result<TestPostgres, any Error>?

    /// The shared server, started on first use.
    static func shared() throws -> TestPostgres {
        lock.lock()
        defer { lock.unlock() }
        if started == nil {
            started = Result { try TestPostgres() }
            atexit { TestPostgres.stopShared() }
        }
        return try started!.get()
    }

    private static func stopShared() {
        guard case .success(let server)? = started else { return }
        server.stop()
    }

    /// Stops the server at once and removes its folder.
    func stop() {
        _ = try? pgCtl(["stop", "-m", "immediate"])
        try? FileManager.default.removeItem(at: dir)
    }

    /// A URL for `database` as the superuser, with the password in it.
    func url(_ database: String = "postgres", password: String? = nil) -> String {
        "postgresql://postgres:\(password ?? self.password)@127.0.0.1:\(port)/\(database)"
    }

    /// A fresh database of its own for one test; returns its URL.
    func createDatabase(_ name: String) throws -> String {
        let connection = try PostgresConnection(try PostgresLocation(url()))
        try connection.execute("DROP DATABASE IF EXISTS \(name)")
        try connection.execute("CREATE DATABASE \(name)")
        return url(name)
    }

    /// A server of its own; `settings` are more `-c name=value` for it.
    init(settings: [String] = []) throws {
        let candidates = ["/usr/lib/postgresql/15/bin"] + ((try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? [])
            .sorted().reversed().map { "/usr/lib/postgresql/\($0)/bin" }
        guard let bin = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0 + "/initdb") }) else {
            throw TestPostgresError("no initdb under /usr/lib/postgresql: install postgresql-15 (.ci/run does)")
        }
        self.bin = URL(fileURLWithPath: bin)
        var template = Array("/tmp/sl-pg-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw TestPostgresError("mkdtemp failed") }
        dir = URL(fileURLWithPath: String(cString: made))
        if getuid() == 0 { chown(dir.path, 65534, 65534) }
        let passwordFile = dir.appendingPathComponent("pw")
        try Data((password + "\n").utf8).write(to: passwordFile)
        if getuid() == 0 { chown(passwordFile.path, 65534, 65534) }
        port = try TestPostgres.freePort()
        try run(self.bin.appendingPathComponent("initdb"), ["-D", dir.appendingPathComponent("data").path, "-U", "postgres",
                                                            "--pwfile", passwordFile.path, "--auth-local=trust", "--auth-host=scram-sha-256",
                                                            "-E", "UTF8", "--locale=C", "--no-sync"])
        options = "-p \(port) -k \(dir.path) -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=50"
            + settings.map { " -c " + $0 }.joined()
        try start()
    }

    /// The server's command-line settings.
    private var options = ""

    /// Starts the server (again), waiting until it takes connections.
    func start() throws {
        try pgCtl(["start", "-w", "-t", "60", "-l", dir.appendingPathComponent("log").path, "-o", options])
    }

    @discardableResult
    func pgCtl(_ arguments: [String]) throws -> String {
        try run(bin.appendingPathComponent("pg_ctl"), ["-D", dir.appendingPathComponent("data").path] + arguments)
    }

    /// Runs a server program, as `nobody` when the tests run as root. posix_spawn and waitpid,
    /// not Foundation's Process, which never saw a child that changed its user id exit.
    @discardableResult
    private func run(_ program: URL, _ arguments: [String]) throws -> String {
        // In the server's folder (nobody may not enter the test's working directory).
        let inFolder = ["/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", dir.path, program.path] + arguments
        let argv = getuid() == 0 ? ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] + inFolder : inFolder
        // A file, not a pipe: the server pg_ctl starts inherits its output and would keep a
        // pipe open for as long as it runs.
        let outputFile = dir.appendingPathComponent("command.out")
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, outputFile.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        let cArguments: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { cArguments.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, argv[0], &actions, nil, cArguments, environ)
        guard spawned == 0 else { throw TestPostgresError("cannot start \(argv[0]): \(String(cString: strerror(spawned)))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let text = (try? String(contentsOf: outputFile, encoding: .utf8)) ?? ""
        guard status == 0 else {
            let log = (try? String(contentsOf: dir.appendingPathComponent("log"), encoding: .utf8)) ?? ""
            throw TestPostgresError("\(program.lastPathComponent) \(arguments.joined(separator: " ")) exited with status \(status): \(text)\n\(log)")
        }
        return text
    }

    /// A port nothing listens on now (bound to port 0, then closed).
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestPostgresError("socket failed") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw TestPostgresError("bind failed") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// The warehouse of `paths` loaded once into the test server, uninterrupted, as the tests of
/// faults compare them (`PostgresConcurrencyTests.comparable`).
func uninterruptedWarehouse(_ paths: [String], database: String) throws -> [String: PostgresDifferentialTests.Table] {
    let url = try TestPostgres.shared().createDatabase(database)
    let clean = try runSegmentLoader(["load", "--db", url] + paths)
    guard clean.status == 0 else { throw TestPostgresError("the reference load exited with \(clean.status): \(clean.stderr)") }
    return try PostgresConcurrencyTests.comparable(PostgresConnection(PostgresLocation(url)))
}

/// Starts the binary loading `paths` into `url` (`--jobs 1`), and once a file is in (and others
/// remain) does `fault`; returns the exit status and what it printed.
func loadWithFault(_ url: String, _ paths: [String], _ fault: () throws -> Void) throws -> (status: Int32, printed: String) {
    let watcher = try PostgresConnection(PostgresLocation(url))
    let process = Process()
    process.executableURL = segmentLoaderBinary
    process.arguments = ["load", "--jobs", "1", "--db", url] + paths
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let deadline = Date().addingTimeInterval(60)
    while Date() < deadline {
        if let count = try? watcher.scalar("SELECT count(*) FROM segment._files"), (Int(count) ?? 0) >= 1 { break }
        usleep(20_000)
    }
    try fault()
    let stdout = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    return (process.terminationStatus, stdout + stderr)
}

struct TestPostgresError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
