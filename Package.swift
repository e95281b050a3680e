// swift-tools-version:6.1
import PackageDescription

// The loader's library targets: release builds leave out the run-time exclusivity checks (each
// access to a class's stored property through inout, e.g. appending to a buffer, took a
// thread-local lookup: 14% of the loader's CPU in a PostgreSQL load). Debug builds, which the
// tests run, keep them, so an overlapping access still traps there.
let loaderLibrary: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]

let package = Package(
    name: "segment-loader",
    // Linux only: the archive reader and the lock use Glibc directly, and no macOS build is
    // tested; README says so.
    products: [
        .executable(name: "segment-loader", targets: ["segment-loader"]),
        .library(name: "SegmentLoader", targets: ["SegmentLoader"]),
        // The collector is a product of its own: `swift build --product
        // segment-loader` never compiles the server stack below.
        .executable(name: "segment-collector", targets: ["segment-collector"]),
    ],
    dependencies: [
        // Command-line parsing for the thin executable only; the library never imports it.
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // Pipeline files: YAML with the line and column of every node, so a mistake is
        // reported where it is. Hand-parsing YAML is not a job for this project.
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        // --verbose/--quiet logging in the command line (the library reports through closures).
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        // The collector's HTTP server: Hummingbird 2 on SwiftNIO, maintained, async/await,
        // graceful shutdown on SIGTERM through swift-service-lifecycle, per-connection idle
        // timeouts. Its default traits pull in swift-configuration, which the collector does
        // not use (it reads its own YAML with positions), so they are off.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        // /metrics in Prometheus' text format, without a metrics backend to bootstrap.
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        // Already in Hummingbird's graph; named because the collector uses their types directly
        // (header names, the peer's address, the drain on SIGTERM).
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CSQLite",
            pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"])]
        ),
        // SHA-256 (archive hashes, seen-id keys, derived ids, the privacy HMAC) from OpenSSL's
        // libcrypto: a system library like the two above, so it compiles nothing. swift-crypto
        // did the same work but compiled BoringSSL, most of a fresh clone's first build.
        .systemLibrary(
            name: "CCrypto",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]
        ),
        // PostgreSQL warehouses through libpq, the client psql itself uses: it reads
        // the URL, the PG* variables, ~/.pgpass, service files and every sslmode as psql does,
        // streams COPY, and blocks, which fits the loader's writer threads. A system library,
        // so it compiles nothing; postgres-nio would have brought SwiftNIO and swift-crypto
        // into the loader's build and left .pgpass and service files to us.
        .systemLibrary(
            name: "CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),
        // s3:// sources through libcurl, which FoundationNetworking's URLSession itself
        // uses on Linux: a blocking transfer whose write callback runs the read stage, so an
        // object streams with TCP's own back-pressure and bounded memory (URLSession's delegate
        // is handed data as it arrives, with suspending the task as the only brake), Range
        // resumes, timeouts and the proxy variables. A system library: it compiles nothing, and
        // a fresh clone's builds take as long as before (AsyncHTTPClient would have brought
        // SwiftNIO, about 2 minutes of compiling on 2 cores, into the loader's build).
        // libcurl is opened with dlopen when an s3:// source is first read (S3/Curl.swift), not
        // linked: its header declares the few types and numbers the client uses, so a fresh
        // machine builds with only the runtime library (libcurl4, which Debian's curl, git and
        // Swift's FoundationNetworking already need) and without libcurl4-openssl-dev.
        .systemLibrary(name: "CCurl"),
        .systemLibrary(
            name: "CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        // What every other target stands on, the collector included: JSON, digests, timestamps,
        // the archive envelope and gzip members, lock files, exit statuses and the small
        // concurrency helpers. It links libcrypto and zlib only.
        .target(
            name: "SegmentCore",
            dependencies: ["CCrypto", "CZlib"],
            swiftSettings: loaderLibrary
        ),
        // s3:// sources: listing, signed requests, ranged reads, through the libcurl opened at
        // run time.
        .target(
            name: "SegmentS3",
            dependencies: ["SegmentCore", "CCurl"],
            swiftSettings: loaderLibrary
        ),
        // The stages before the warehouse: discover and read archives, normalize each line to
        // the Spec, filter, dedupe within the run, split into rows and plan the schema they
        // need. Nothing here knows a database.
        .target(
            name: "SegmentStages",
            dependencies: ["SegmentCore", "SegmentS3"],
            swiftSettings: loaderLibrary
        ),
        // The warehouse as every engine has it: the write seam (`Destination`, `LoadTarget`),
        // the schema catalog, bookkeeping, row conversion, the query indexes and the models,
        // over an `SQLSession`. No database library.
        .target(
            name: "SegmentWarehouse",
            dependencies: ["SegmentCore", "SegmentStages"],
            swiftSettings: loaderLibrary
        ),
        // One target per engine: its driver, bulk path, claims, locks and error classification.
        .target(
            name: "SQLiteEngine",
            dependencies: ["SegmentCore", "SegmentStages", "SegmentWarehouse", "CSQLite"],
            swiftSettings: loaderLibrary
        ),
        .target(
            name: "PostgresEngine",
            dependencies: ["SegmentCore", "SegmentStages", "SegmentWarehouse", "CLibPQ"],
            swiftSettings: loaderLibrary
        ),
        // The run: pass 1 and pass 2 over the engines, pipelines, status, rejects, the bench.
        .target(
            name: "SegmentLoader",
            dependencies: [
                "SegmentCore",
                "SegmentS3",
                "SegmentStages",
                "SegmentWarehouse",
                "SQLiteEngine",
                "PostgresEngine",
            ],
            swiftSettings: loaderLibrary
        ),
        // Strict reading of a YAML file a person wrote: every mistake at its line and column.
        // The collector's configuration uses it without the loader.
        .target(
            name: "YAMLCore",
            dependencies: [
                "SegmentCore",
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        // The pipeline files the loader reads and the Datasette metadata it writes. A module of
        // its own so that Yams compiles beside the loader's library, not before it: on a
        // fresh clone's 2 cores that is most of a minute off the first build.
        .target(
            name: "YAMLFiles",
            dependencies: [
                "SegmentCore",
                "YAMLCore",
                "SegmentS3",
                "SegmentStages",
                "SegmentWarehouse",
                "SQLiteEngine",
                "PostgresEngine",
                "SegmentLoader",
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        .executableTarget(
            name: "segment-loader",
            dependencies: [
                "SegmentCore",
                "SegmentS3",
                "SegmentStages",
                "SegmentWarehouse",
                "SQLiteEngine",
                "PostgresEngine",
                "SegmentLoader",
                "YAMLFiles",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The collector's core, free of any HTTP stack so it is tested directly:
        // configuration, authentication, limits, stamping, durable archives, group commit.
        .target(
            name: "Collector",
            dependencies: [
                "SegmentCore",
                "YAMLCore",
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        // The HTTP server over the collector's core (a separate product; see above).
        .executableTarget(
            name: "segment-collector",
            dependencies: [
                "Collector",
                "SegmentCore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The fuzz harness: a replay tool in normal builds, a libFuzzer target in scripts/fuzz.sh.
        .executableTarget(
            name: "segment-loader-fuzz",
            dependencies: ["SegmentCore", "SegmentStages", "SegmentWarehouse", "SQLiteEngine", "SegmentLoader"]
        ),
        .testTarget(
            name: "SegmentLoaderTests",
            dependencies: [
                "SegmentCore", "SegmentS3", "SegmentStages", "SegmentWarehouse", "SQLiteEngine", "PostgresEngine", "YAMLCore",
                "SegmentLoader", "YAMLFiles", "Collector", "CZlib", "CSQLite",
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
