import CZlib

/// Why inflating stopped early, with the offset in the compressed file.
public struct InflateError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public var compressedOffset: Int64
    /// Corrupt data (not a file that merely ends early): the output of the member it is in
    /// cannot be trusted, not even the part inflated before zlib noticed.
    public var corrupt = false
    public var description: String { "\(message) (at compressed byte \(compressedOffset))" }

    package init(message: String, compressedOffset: Int64, corrupt: Bool = false) {
        self.message = message
        self.compressedOffset = compressedOffset
        self.corrupt = corrupt
    }
}

/// A streaming gzip inflater that reads every member of a multi-member file (RFC 1952, 2.2).
///
/// Owns one `z_stream`, allocated on the heap because zlib checks that it never moves, and
/// ends it in `deinit` (https://zlib.net/manual.html#Advanced).
package final class Inflater {
    private let stream: UnsafeMutablePointer<z_stream>
    private var output: [UInt8]
    /// True between members: the previous one ended and no byte of the next was consumed.
    package private(set) var atMemberBoundary = true
    private var consumed: Int64 = 0
    private var finishedMembers = 0
    /// Nanoseconds spent inside zlib, for the benchmark's stage times.
    package private(set) var nanoseconds: UInt64 = 0

    package init(outputChunk: Int = 256 * 1024) {
        stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        stream.initialize(to: z_stream())
        output = [UInt8](repeating: 0, count: outputChunk)
        // 15 + 16: a gzip wrapper only (zlib's "windowBits" convention).
        let status = czlib_inflate_init2(stream, 15 + 16)
        precondition(status == Z_OK, "inflateInit2 failed with \(status): zlib is out of memory")
    }

    deinit {
        inflateEnd(stream)
        stream.deinitialize(count: 1)
        stream.deallocate()
    }

    /// Inflates `input` completely, handing each piece of output to `sink`.
    /// Throws at corrupt data; bytes inflated before the error have been handed on.
    /// `onMemberStart` is called when a member starts (the first one included), before any of its output.
    package func inflate(_ input: UnsafeRawBufferPointer, onMemberStart: () -> Void = {}, sink: (UnsafeBufferPointer<UInt8>) throws -> Void) throws {
        guard let base = input.baseAddress, input.count > 0 else { return }
        var offset = 0
        while offset < input.count {
            if atMemberBoundary {
                // Between members: the next byte must start another gzip member.
                // Zero bytes of padding after the last member are tolerated, as gzip(1) does.
                let b = input[offset]
                if b == 0 && finishedMembers > 0 {
                    offset += 1
                    consumed += 1
                    continue
                }
                onMemberStart()
            }
            let chunk = min(input.count - offset, Int(UInt32.max))
            stream.pointee.next_in = UnsafeMutablePointer(mutating: base.advanced(by: offset).assumingMemoryBound(to: Bytef.self))
            stream.pointee.avail_in = uInt(chunk)
            var status: Int32 = Z_OK
            repeat {
                let produced: Int = output.withUnsafeMutableBufferPointer { out in
                    stream.pointee.next_out = out.baseAddress
                    stream.pointee.avail_out = uInt(out.count)
                    let started = monotonicNanoseconds()
                    status = CZlib.inflate(stream, Z_NO_FLUSH)
                    nanoseconds &+= monotonicNanoseconds() &- started
                    return out.count - Int(stream.pointee.avail_out)
                }
                atMemberBoundary = false
                if produced > 0 {
                    try output.withUnsafeBufferPointer { try sink(UnsafeBufferPointer(rebasing: $0[0..<produced])) }
                }
                if status == Z_STREAM_END { break }
                if status == Z_BUF_ERROR && stream.pointee.avail_in == 0 { status = Z_OK; break }
                if status != Z_OK {
                    let used = chunk - Int(stream.pointee.avail_in)
                    let reason = stream.pointee.msg.map { String(cString: $0) } ?? "zlib error \(status)"
                    throw InflateError(message: "corrupt gzip data: \(reason)", compressedOffset: consumed + Int64(used), corrupt: true)
                }
            } while stream.pointee.avail_out == 0 || stream.pointee.avail_in > 0
            let used = chunk - Int(stream.pointee.avail_in)
            offset += used
            consumed += Int64(used)
            if status == Z_STREAM_END {
                finishedMembers += 1
                atMemberBoundary = true
                inflateReset(stream)
            }
        }
    }

    /// Call at the end of the file: throws if it ended inside a member.
    package func finish() throws {
        if !atMemberBoundary {
            throw InflateError(message: "gzip data ends in the middle of a member: the file is truncated", compressedOffset: consumed)
        }
    }
}
