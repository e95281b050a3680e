import CZlib

/// One complete gzip member made from a buffer: what a collector appends per flush, so that
/// an archive it writes is a valid multi-member gzip after every flush (the reader reads every
/// member of a file).
public enum GzipMember {
    public static func deflate(_ bytes: [UInt8], level: Int32 = 6) -> [UInt8] {
        var stream = z_stream()
        let status = czlib_deflate_init2(&stream, level, 15 + 16)
        precondition(status == Z_OK, "deflateInit2 failed with \(status)")
        defer { deflateEnd(&stream) }
        var output = [UInt8](repeating: 0, count: Int(deflateBound(&stream, uLong(bytes.count))) + 64)
        var produced = 0
        bytes.withUnsafeBufferPointer { input in
            stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress)
            stream.avail_in = uInt(input.count)
            output.withUnsafeMutableBufferPointer { out in
                stream.next_out = out.baseAddress
                stream.avail_out = uInt(out.count)
                let result = CZlib.deflate(&stream, Z_FINISH)
                precondition(result == Z_STREAM_END, "deflate did not finish within deflateBound: \(result)")
                produced = out.count - Int(stream.avail_out)
            }
        }
        return Array(output[0..<produced])
    }
}

extension GzipMember {
    /// How many leading bytes of `bytes` are complete gzip members: a file cut in the middle of
    /// a member (a crash during a write) keeps what is before that member.
    public static func completeLength(of bytes: [UInt8]) -> Int {
        var offset = 0
        var complete = 0
        while offset < bytes.count {
            var stream = z_stream()
            guard czlib_inflate_init2(&stream, 15 + 16) == Z_OK else { return complete }
            defer { inflateEnd(&stream) }
            var scratch = [UInt8](repeating: 0, count: 1 << 16)
            var status: Int32 = Z_OK
            bytes.withUnsafeBufferPointer { input in
                stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress! + offset)
                stream.avail_in = uInt(input.count - offset)
                repeat {
                    scratch.withUnsafeMutableBufferPointer { out in
                        stream.next_out = out.baseAddress
                        stream.avail_out = uInt(out.count)
                        status = CZlib.inflate(&stream, Z_NO_FLUSH)
                    }
                } while status == Z_OK
            }
            guard status == Z_STREAM_END else { return complete }
            offset = bytes.count - Int(stream.avail_in)
            complete = offset
        }
        return complete
    }
}

extension GzipMember {
    /// Why a gzip body was refused: corrupt or cut short, or more than `limit` bytes inflated.
    public enum InflateFailure: Error, Equatable, Sendable {
        case corrupt(String)
        case tooLarge
    }

    /// The inflated bytes of a complete gzip body (every member), refused as soon as they
    /// would pass `limit`: a small compressed request cannot make the server allocate more.
    public static func inflate(_ bytes: [UInt8], limit: Int) throws(InflateFailure) -> [UInt8] {
        struct Over: Error {}
        let inflater = Inflater(outputChunk: 64 * 1024)
        var out: [UInt8] = []
        do {
            try bytes.withUnsafeBytes { raw in
                try inflater.inflate(raw) { piece in
                    guard out.count + piece.count <= limit else { throw Over() }
                    out.append(contentsOf: piece)
                }
            }
            try inflater.finish()
        } catch is Over {
            throw .tooLarge
        } catch {
            throw .corrupt("\(error)")
        }
        return out
    }
}
