import CZlib
import Foundation
import SegmentStages
import SegmentCore

/// Writes one gzip member to a file, streaming (for the benchmark corpus).
/// Owns one heap-allocated `z_stream`, ended in `deinit`.
public final class GzipWriter {
    private let stream: UnsafeMutablePointer<z_stream>
    private let handle: FileHandle
    private var output = [UInt8](repeating: 0, count: 1 << 18)
    private var finished = false

    public init(path: String, level: Int32 = 6) throws {
        guard FileManager.default.createFile(atPath: path, contents: nil),
              let handle = FileHandle(forWritingAtPath: path) else {
            throw ReadError(path: path, message: "cannot create")
        }
        self.handle = handle
        stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        stream.initialize(to: z_stream())
        let status = czlib_deflate_init2(stream, level, 15 + 16)
        precondition(status == Z_OK, "deflateInit2 failed with \(status)")
    }

    deinit {
        deflateEnd(stream)
        stream.deinitialize(count: 1)
        stream.deallocate()
        try? handle.close()
    }

    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBufferPointer { try pump($0, flush: Z_NO_FLUSH) }
    }

    public func finish() throws {
        guard !finished else { return }
        finished = true
        try pump(UnsafeBufferPointer(start: nil, count: 0), flush: Z_FINISH)
        try handle.close()
    }

    private func pump(_ input: UnsafeBufferPointer<UInt8>, flush: Int32) throws {
        stream.pointee.next_in = UnsafeMutablePointer(mutating: input.baseAddress)
        stream.pointee.avail_in = uInt(input.count)
        var status: Int32 = Z_OK
        repeat {
            let produced: Int = output.withUnsafeMutableBufferPointer { out in
                stream.pointee.next_out = out.baseAddress
                stream.pointee.avail_out = uInt(out.count)
                status = deflate(stream, flush)
                return out.count - Int(stream.pointee.avail_out)
            }
            if produced > 0 { try handle.write(contentsOf: output[0..<produced]) }
        } while stream.pointee.avail_out == 0 || (flush == Z_FINISH && status != Z_STREAM_END)
    }
}
