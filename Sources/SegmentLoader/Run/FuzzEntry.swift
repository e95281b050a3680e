#if canImport(Glibc)
import Glibc
#endif

/// What the fuzz harness (`Sources/segment-loader-fuzz`, `scripts/fuzz.sh`) drives: everything a
/// line goes through before the writer, with the checks that must hold for any input. A broken
/// check traps, which the fuzzer reports with the input that caused it.
public enum FuzzEntry {
    /// The input as a whole archive (gzip when it starts like one, else NDJSON), read from a
    /// scratch file by the same reader a load uses, with a small line limit so that long lines,
    /// torn lines, damaged members and member boundaries all come up; each line then goes
    /// through `line`.
    public static func archive(_ bytes: UnsafeBufferPointer<UInt8>, scratch path: String) {
        guard let fd = Optional(open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)), fd >= 0 else { return }
        var written = 0
        while written < bytes.count {
            let n = write(fd, bytes.baseAddress! + written, bytes.count - written)
            if n <= 0 { break }
            written += n
        }
        close(fd)
        let gzip = bytes.count >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b
        var reader = ArchiveReader(maxLineBytes: 1024, blockSize: 64)
        reader.bombFloor = 1 << 16
        var lastLine = 0
        var distrustFrom: Int?
        var reason = ""
        for pass in 0..<2 {
            let distrust = pass == 1 ? distrustFrom.map { Distrust(fromLine: $0, reason: reason) } : nil
            var lines = 0
            guard let outcome = try? reader.read(path: path, format: gzip ? .gzip : .ndjson, distrust: distrust, body: { number, line, problem in
                precondition(number > lastLine || lines == 0, "line numbers increase")
                precondition(line.count <= 1024, "a line handed on is within the limit")
                if let distrust, number >= distrust.fromLine { precondition(problem != nil, "distrusted lines come with their problem") }
                lastLine = number
                lines += 1
                if pass == 0 && problem == nil { Self.line(line) }
            }) else { return }
            precondition(outcome.physicalLines >= lines, "physical lines count every line")
            precondition(outcome.size == Int64(bytes.count), "every byte was read")
            if pass == 0 {
                distrustFrom = outcome.corruptFromLine
                reason = outcome.streamError ?? ""
                guard distrustFrom != nil else { return }
                lastLine = 0
            }
        }
    }

    /// One NDJSON line: parse, unwrap a batch, privacy rules, normalize, pack into records and
    /// read the records back; and JSON that parses must print as JSON that parses and prints
    /// the same (the writer keeps the last of duplicate keys, so printing is the fixed point).
    public static func line(_ bytes: UnsafeBufferPointer<UInt8>) {
        if let value = try? JSONParser.parse(bytes) {
            var out: [UInt8] = []
            JSONWriter.write(value, into: &out, sortedKeys: false)
            guard let again = out.withUnsafeBufferPointer({ try? JSONParser.parse($0) }) else {
                preconditionFailure("JSONWriter printed JSON that does not parse: \(String(decoding: out, as: UTF8.self))")
            }
            var out2: [UInt8] = []
            JSONWriter.write(again, into: &out2, sortedKeys: false)
            precondition(out == out2, "JSONWriter is not stable: \(String(decoding: out, as: UTF8.self)) vs \(String(decoding: out2, as: UTF8.self))")
        }
        var privacy = Privacy()
        privacy.drop = [["context", "ip"]]
        privacy.hash = [["traits", "email"]]
        privacy.hashKeyVariable = "K"
        _ = privacy.loadKey(environment: ["K": "fuzzing-key-0123456789"])
        let names = NameTable()
        for privacy in [Privacy(), privacy] {
            var processor = LineProcessor(loadTime: Instant(seconds: 1_700_000_000), names: names, privacy: privacy)
            var records = MessageRecords()
            var count = 0
            for parsed in processor.process(bytes, problem: nil) {
                switch parsed {
                case .message(let message, _):
                    precondition(!message.id.isEmpty, "a message has an id")
                    precondition(Timestamp.parse(Timestamp.format(message.receivedAt)) != nil, "received_at prints as a timestamp")
                    for field in message.common + message.context + message.payload {
                        let name = names.name(field.column)
                        precondition(!name.isEmpty && name.utf8.count <= 63, "column name \(name)")
                        precondition(name.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5f }, "column name \(name)")
                    }
                    let table = names.name(message.table)
                    precondition(!table.isEmpty && table.utf8.count <= 63, "table name \(table)")
                    records.append(message)
                    count += 1
                case .reject(_, let reason, _):
                    precondition(!reason.isEmpty, "a reject has a reason")
                    // Without privacy rules the line is kept exactly as read. (Discarding this
                    // result with `_ =` made Swift 6.3 -O free the array before copying into it.)
                    let raw = processor.rawForReject(bytes)
                    precondition(!processor.privacy.isEmpty || raw.elementsEqual(bytes), "a rejected line is kept as read")
                }
            }
            records.bytes.withUnsafeBytes { raw in
                var cursor = RecordCursor(raw)
                for _ in 0..<count {
                    let header = cursor.header()
                    for _ in 0..<(header.common + header.context + header.payload) { _ = cursor.field() }
                    for _ in 0..<header.discards { _ = cursor.discard() }
                }
                precondition(cursor.offset == raw.count, "records read back to their end")
            }
        }
    }
}
