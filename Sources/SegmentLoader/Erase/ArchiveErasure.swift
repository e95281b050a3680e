import Foundation
import SegmentCore
import SegmentS3
import SegmentStages
import SegmentWarehouse

/// A forgotten person's lines taken out of one archive (docs/operations.md, Erasure requests):
/// every other line is written back byte for byte, in order (gzip archives as one new gzip
/// member), the new file renamed over the old one (an S3 object: a PUT of the whole object
/// after its ETag is checked). Lines are numbered as they lie in the inflated stream, from 1,
/// blank ones included, so the first pass (finding them, with the plain ids) and the second
/// (writing, perhaps in a later run that has only the digests) agree.
struct ArchiveErasure {
    /// One archive with lines to take out: whole lines (`[]`) or items of a batch line.
    struct Entry: Equatable {
        var path: String
        var sha256: String
        var drops: [Int: [Int]]
        /// The SHA-256 of the rewritten archive, once known (set before it replaces the old one).
        var newSha256: String?

        var json: JSONValue {
            .object([
                ("path", .string(path)), ("sha256", .string(sha256)), ("new_sha256", newSha256.map { .string($0) } ?? .null),
                ("drop", .object(drops.keys.sorted().map { (String($0), .array(drops[$0]!.map { .int(Int64($0)) })) })),
            ])
        }

        init(path: String, sha256: String, drops: [Int: [Int]], newSha256: String? = nil) {
            self.path = path
            self.sha256 = sha256
            self.drops = drops
            self.newSha256 = newSha256
        }

        init?(_ json: JSONValue) {
            guard let path = json["path"]?.stringValue, let sha = json["sha256"]?.stringValue,
                  case .object(let members)? = json["drop"] else { return nil }
            var drops: [Int: [Int]] = [:]
            for member in members {
                guard let line = Int(member.key), case .array(let items) = member.value else { return nil }
                drops[line] = items.compactMap { if case .int(let n) = $0 { return Int(n) } else { return nil } }
            }
            self.init(path: path, sha256: sha, drops: drops, newSha256: json["new_sha256"]?.stringValue)
        }

        var linesRemoved: Int { drops.values.reduce(0) { $0 + ($1.isEmpty ? 1 : $1.count) } }

        static func list(_ entries: [Entry]) -> String { JSONWriter.string(.array(entries.map(\.json))) }
        static func parse(_ text: String) -> [Entry] {
            guard case .array(let items)? = try? JSONParser.parse(text) else { return [] }
            return items.compactMap(Entry.init)
        }
    }

    let objects: S3Client?
    /// The pipeline's privacy rules: a message is matched as the load stored it (a hashed
    /// user id as its digest).
    var privacy = Privacy()

    // MARK: Reading

    /// Calls `line` with each line of the archive (its number, its bytes without the `\n`, and
    /// whether a `\n` ended it); `format` first, with whether it is gzip. Returns the SHA-256
    /// of the archive's bytes as stored and, for an S3 object, its ETag.
    func lines(of path: String, format: (Bool) throws -> Void = { _ in },
               _ line: (Int, ArraySlice<UInt8>, Bool) throws -> Void) throws -> (sha256: String, etag: String?) {
        var hasher = SHA256Hasher()
        var inflater: Inflater?
        var decided = false
        var pending: [UInt8] = []
        var number = 0
        func take(_ bytes: UnsafeBufferPointer<UInt8>) throws {
            pending.append(contentsOf: bytes)
            var start = pending.startIndex
            while let end = pending[start...].firstIndex(of: 10) {
                number += 1
                try line(number, pending[start..<end], true)
                start = end + 1
            }
            pending.removeSubrange(..<start)
        }
        func block(_ raw: UnsafeRawBufferPointer) throws {
            hasher.update(raw)
            if !decided {
                decided = true
                if raw.count >= 2 && raw[0] == 0x1f && raw[1] == 0x8b { inflater = Inflater() }
                try format(inflater != nil)
            }
            if let inflater {
                try inflater.inflate(raw) { try take($0) }
            } else {
                try take(raw.bindMemory(to: UInt8.self))
            }
        }
        var etag: String?
        if S3Location.isURL(path) {
            guard let objects else { throw ReadError(path: path, message: "an s3:// archive needs S3 settings") }
            etag = try objects.read(path) { try block($0) }.etag
        } else {
            guard let handle = FileHandle(forReadingAtPath: path) else {
                throw ReadError(path: path, message: "cannot be opened" + (path.hasPrefix("/") ? ""
                    : " (a relative path, as the load was given it: run forget from the folder the loads ran in)"))
            }
            defer { try? handle.close() }
            while let data = try handle.read(upToCount: 1 << 20), !data.isEmpty {
                try data.withUnsafeBytes { try block($0) }
            }
        }
        if !decided { try format(false) }
        try inflater?.finish()
        if !pending.isEmpty {
            number += 1
            try line(number, pending[...], false)
        }
        return (hexString(hasher.finalize()), etag)
    }

    /// A line without its `\r`, its byte order mark and surrounding blanks, for parsing.
    private static func body(_ bytes: ArraySlice<UInt8>) -> (body: ArraySlice<UInt8>, cr: Bool) {
        var body = bytes
        let cr = body.last == 13
        if cr { body = body.dropLast() }
        if body.starts(with: [0xEF, 0xBB, 0xBF]) { body = body.dropFirst(3) }
        return (body, cr)
    }

    /// The lines of the person in an archive: each line whose message (or every item of whose
    /// batch) is theirs, or, for a line that is not a message, that holds one of their ids.
    func find(in path: String, suppression: SuppressionList, mentions: SuppressionList) throws -> Entry {
        var drops: [Int: [Int]] = [:]
        let read = try lines(of: path) { number, bytes, _ in
            let body = Self.body(bytes).body
            guard !body.allSatisfy({ $0 == 32 || $0 == 9 }) else { return }
            guard let json = body.withUnsafeBufferPointer({ try? JSONParser.parse($0) }) else {
                if body.withUnsafeBufferPointer({ mentions.mentioned(in: $0) }) { drops[number] = [] }
                return
            }
            if case .array(let items)? = json["batch"] {
                let messages = Envelope.messages(in: json).map { privacy.isEmpty ? $0 : privacy.apply(to: $0) }
                let theirs = messages.indices.filter { suppression.suppresses(messages[$0]) || mentionedWithoutIds(messages[$0]) }
                if !theirs.isEmpty { drops[number] = theirs.count == items.count ? [] : theirs }
            } else if suppression.suppresses(privacy.isEmpty ? json : privacy.apply(to: json)) || mentionedWithoutIds(json) {
                drops[number] = []
            }
            func mentionedWithoutIds(_ message: JSONValue) -> Bool {
                let ids = MessageIds.of(message)
                guard ids.userId == nil && ids.anonymousId == nil else { return false }
                var out: [UInt8] = []
                JSONWriter.write(message, into: &out, sortedKeys: false)
                return out.withUnsafeBufferPointer { mentions.mentioned(in: $0) }
            }
        }
        return Entry(path: path, sha256: read.sha256, drops: drops)
    }

    /// The archive as it is now: SHA-256 of its bytes, size, ETag (S3).
    func current(_ path: String) throws -> (sha256: String, size: Int64, etag: String?) {
        if S3Location.isURL(path) {
            guard let objects else { throw ReadError(path: path, message: "an s3:// archive needs S3 settings") }
            var hasher = SHA256Hasher()
            let read = try objects.read(path) { hasher.update($0) }
            return (hexString(hasher.finalize()), read.size, read.etag)
        }
        let (sha, size) = try ArchiveReader.sha256(path: path)
        return (sha, size, nil)
    }

    // MARK: Writing

    struct Rewritten {
        var temporary: String
        var sha256: String
        var size: Int64
        /// The ETag of the object read (S3), to check before it is replaced.
        var etag: String?
    }

    /// Writes the archive without the entry's lines to a temporary file: beside it (hidden,
    /// so no load takes it for an archive), or for an S3 object in `folder`. Returns nil when
    /// the archive is no longer the one the entry was made from (its SHA-256).
    func rewrite(_ entry: Entry, folder: String) throws -> Rewritten? {
        let name = URL(fileURLWithPath: entry.path).lastPathComponent
        let base = S3Location.isURL(entry.path) ? URL(fileURLWithPath: folder) : URL(fileURLWithPath: entry.path).deletingLastPathComponent()
        let temporary = base.appendingPathComponent(".\(name).forget-\(getpid()).tmp").path
        try? FileManager.default.removeItem(atPath: temporary)
        var gzip: GzipWriter?
        var plain: FileHandle?
        defer { try? plain?.close() }
        var buffer: [UInt8] = []
        func flush() throws {
            guard !buffer.isEmpty else { return }
            if let gzip { try gzip.write(buffer) } else { try plain?.write(contentsOf: buffer) }
            buffer.removeAll(keepingCapacity: true)
        }
        let read = try lines(of: entry.path, format: { isGzip in
            if isGzip {
                gzip = try GzipWriter(path: temporary)
            } else {
                guard FileManager.default.createFile(atPath: temporary, contents: nil), let handle = FileHandle(forWritingAtPath: temporary) else {
                    throw ReadError(path: temporary, message: "cannot be created")
                }
                plain = handle
            }
        }) { number, bytes, terminated in
            if let items = entry.drops[number] {
                guard !items.isEmpty else { return }
                // A batch with other people's items: the envelope again without theirs.
                let (body, cr) = Self.body(bytes)
                guard let json = body.withUnsafeBufferPointer({ try? JSONParser.parse($0) }), case .object(var members) = json else { return }
                let drop = Set(items)
                for i in members.indices where members[i].key == "batch" {
                    if case .array(let list) = members[i].value {
                        members[i].value = .array(list.enumerated().filter { !drop.contains($0.offset) }.map(\.element))
                    }
                }
                JSONWriter.write(.object(members), into: &buffer, sortedKeys: false)
                if cr { buffer.append(13) }
            } else {
                buffer.append(contentsOf: bytes)
            }
            if terminated { buffer.append(10) }
            if buffer.count >= 1 << 20 { try flush() }
        }
        try flush()
        try gzip?.finish()
        try plain?.synchronize()
        guard read.sha256 == entry.sha256 else {
            try? FileManager.default.removeItem(atPath: temporary)
            return nil
        }
        let (sha, _) = try ArchiveReader.sha256(path: temporary)
        let size = (try FileManager.default.attributesOfItem(atPath: temporary)[.size] as? NSNumber)?.int64Value ?? 0
        return Rewritten(temporary: temporary, sha256: sha, size: size, etag: read.etag)
    }

    /// Puts the rewritten archive in the old one's place: a rename (then the folder synced), or
    /// for an S3 object a PUT after its ETag is checked. Returns the new ETag of an object.
    func replace(_ entry: Entry, with rewritten: Rewritten) throws -> String? {
        defer { try? FileManager.default.removeItem(atPath: rewritten.temporary) }
        if S3Location.isURL(entry.path) {
            guard let objects else { throw ReadError(path: entry.path, message: "an s3:// archive needs S3 settings") }
            let bytes = try Data(contentsOf: URL(fileURLWithPath: rewritten.temporary))
            return try objects.replace(entry.path, with: [UInt8](bytes), ifETag: rewritten.etag)
        }
        let handle = FileHandle(forUpdatingAtPath: rewritten.temporary)
        try handle?.synchronize()
        try handle?.close()
        guard rename(rewritten.temporary, entry.path) == 0 else {
            throw ReadError(path: entry.path, message: "cannot be replaced: \(String(cString: strerror(errno)))")
        }
        let folder = open(URL(fileURLWithPath: entry.path).deletingLastPathComponent().path, O_RDONLY)
        if folder >= 0 { fsync(folder); close(folder) }
        return nil
    }
}
