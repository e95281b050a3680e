import Foundation
import XCTest
@testable import PostgresEngine

/// The test run's own Citus cluster: a coordinator and two workers, three PostgreSQL 15
/// servers (`TestPostgres`, password authentication on 127.0.0.1) with Citus preloaded,
/// started by the first test that asks and stopped when the test process exits. Each test's
/// database is made on every node with the extension, the coordinator registered and the
/// workers added, as docs/scaling.md says a cluster is set up. Without Citus installed (a
/// user's machine) the tests that need it skip, saying so in one line; in CI (`CI` set),
/// where `.ci/run` installs it, they fail instead.
final class TestCitus: TestDatabaseServer, @unchecked Sendable {
    let coordinator: TestPostgres
    let workers: [TestPostgres]
    var nodes: [TestPostgres] { [coordinator] + workers }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var started: Result<TestCitus, any Error>?

    /// Where Debian's PostgreSQL 15 keeps extensions (`pg_config --pkglibdir`).
    static let library = "/usr/lib/postgresql/15/lib/citus.so"

    /// The shared cluster, started on first use; skips the test when Citus is not installed.
    static func shared() throws -> TestCitus {
        guard FileManager.default.fileExists(atPath: library) else {
            if ProcessInfo.processInfo.environment["CI"] != nil {
                throw TestPostgresError("Citus is not installed (\(library)); .ci/run installs it with ../shared/citus/install.sh")
            }
            throw XCTSkip("Citus is not installed (no \(library)): skipping the Citus tests; docs/scaling.md says how to install it")
        }
        lock.lock()
        defer { lock.unlock() }
        if started == nil {
            started = Result { try TestCitus() }
            atexit { TestCitus.stopShared() }
        }
        return try started!.get()
    }

    private static func stopShared() {
        guard case .success(let cluster)? = started else { return }
        cluster.nodes.forEach { $0.stop() }
    }

    private init() throws {
        // Loopback only: the nodes talk without TLS (and without reading a client certificate
        // from the home folder of the user the tests run as).
        // Citus runs a maintenance worker per database, and each test makes a database of its own.
        let settings = ["shared_preload_libraries=citus", "max_connections=100", "max_worker_processes=64", "citus.node_conninfo=sslmode=disable"]
        coordinator = try TestPostgres(settings: settings)
        workers = try (0..<2).map { _ in try TestPostgres(settings: settings) }
    }

    /// A database `name` on every node, the extension in each, the password the nodes use to
    /// reach each other (pg_dist_authinfo), the coordinator registered and both workers added.
    /// Returns the coordinator's URL.
    func createDatabase(_ name: String) throws -> String {
        for node in nodes { try prepare(node, name) }
        let db = try PostgresConnection(try PostgresLocation(coordinator.url(name)))
        try db.execute("SELECT citus_set_coordinator_host('127.0.0.1', \(coordinator.port))")
        for worker in workers { try db.execute("SELECT citus_add_node('127.0.0.1', \(worker.port))") }
        return coordinator.url(name)
    }

    /// A database `name` on `node` with the extension and the nodes' password.
    func prepare(_ node: TestPostgres, _ name: String, extension: Bool = true) throws {
        _ = try node.createDatabase(name)
        guard `extension` else { return }
        let db = try PostgresConnection(try PostgresLocation(node.url(name)))
        try db.execute("CREATE EXTENSION citus")
        try db.execute("INSERT INTO pg_dist_authinfo (nodeid, rolename, authinfo) VALUES (0, 'postgres', 'password=\(node.password)')")
    }

    /// `database` on the node at `index` (0: the coordinator).
    func url(_ database: String, node index: Int = 0) -> String { nodes[index].url(database) }
}
