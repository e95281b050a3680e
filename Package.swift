// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "segment-loader",
    // Linux only: the archive reader and the lock use Glibc directly, and no macOS build is
    // tested; README says so.
    products: [
        .executable(name: "segment-loader", targets: ["segment-loader"]),
        .library(name: "SegmentLoader", targets: ["SegmentLoader"]),
    ],
    dependencies: [
        // Command-line parsing for the thin executable only; the library never imports it.
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // SHA-256 of every archive (skip-if-loaded), deterministic message ids and hashed
        // name suffixes; BoringSSL's assembly is several times faster than a Swift rewrite.
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        // Pipeline files: YAML with the line and column of every node, so a mistake is
        // reported where it is. Hand-parsing YAML is not a job for this project.
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        // --verbose/--quiet logging in the command line (the library reports through closures).
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        .systemLibrary(
            name: "CSQLite",
            pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"])]
        ),
        .systemLibrary(
            name: "CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        .target(
            name: "SegmentLoader",
            dependencies: [
                "CSQLite",
                "CZlib",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        .executableTarget(
            name: "segment-loader",
            dependencies: [
                "SegmentLoader",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The collector's core (issue 13): stamping accepted messages and writing durable
        // archives; the HTTP server will be an executable over it, so the loader never
        // compiles a server stack.
        .target(
            name: "Collector",
            dependencies: [
                "SegmentLoader",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // The fuzz harness: a replay tool in normal builds, a libFuzzer target in scripts/fuzz.sh.
        .executableTarget(
            name: "segment-loader-fuzz",
            dependencies: ["SegmentLoader"]
        ),
        .testTarget(
            name: "SegmentLoaderTests",
            dependencies: ["SegmentLoader", "Collector", "CZlib", "CSQLite"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
