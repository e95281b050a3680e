// The fuzz harness for the line parser and the normalizer. Built two ways:
//
// - `scripts/fuzz.sh` builds it with `-sanitize=fuzzer -DFUZZING`: `main` hands over to
//   libFuzzer's driver (SwiftPM names the entry point itself, so libFuzzer's own `main` cannot
//   be used), which calls `LLVMFuzzerTestOneInput` with mutated inputs seeded from
//   Tests/Fixtures/hostile.
// - A plain `swift build` makes a replay tool: `segment-loader-fuzz FILE...` runs each file
//   through the same entry point, to reproduce a crash the fuzzer saved.
import Foundation
import SegmentLoader
import SegmentCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    FuzzEntry.line(bytes)
    FuzzEntry.archive(bytes, scratch: scratch)
    FuzzEntry.load(scratch: scratch)
    return 0
}

/// Where `FuzzEntry.archive` writes each input (one file per process).
let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("segment-loader-fuzz-\(getpid()).bin").path

#if FUZZING
@_silgen_name("LLVMFuzzerRunDriver")
func llvmFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

@main
struct Fuzz {
    static func main() {
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        let status = llvmFuzzerRunDriver(&argc, &argv) { data, size in
            guard let data else { return 0 }
            return fuzzOneInput(data, size)
        }
        exit(status)
    }
}
#else
@main
struct Replay {
    static func main() {
        let paths = CommandLine.arguments.dropFirst()
        if paths.isEmpty {
            FileHandle.standardError.write(Data("usage: segment-loader-fuzz FILE...  (replays fuzzer inputs; scripts/fuzz.sh fuzzes)\n".utf8))
            exit(64)
        }
        for path in paths {
            guard let data = FileManager.default.contents(atPath: path) else {
                FileHandle.standardError.write(Data("cannot read \(path)\n".utf8))
                exit(66)
            }
            data.withUnsafeBytes { raw in
                _ = fuzzOneInput(raw.bindMemory(to: UInt8.self).baseAddress ?? UnsafePointer(bitPattern: 1)!, data.count)
            }
            print("ok \(path) (\(data.count) bytes)")
        }
    }
}
#endif
