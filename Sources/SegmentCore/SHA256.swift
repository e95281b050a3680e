import CCrypto

/// SHA-256 through OpenSSL's libcrypto (a system library, as SQLite and zlib are): archive
/// hashes, seen-id keys, derived message ids, session ids, hashed name suffixes and, through
/// `HMACSHA256`, the privacy hash. The state is a plain struct, so hashing allocates nothing.
public struct SHA256Hasher {
    public static let byteCount = 32
    private var context = SHA256_CTX()

    public init() {
        SHA256_Init(&context)
    }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        SHA256_Update(&context, base, bytes.count)
    }

    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// Writes the digest into the first 32 bytes of `out`; the hasher is spent afterwards.
    public mutating func finalize(into out: UnsafeMutableRawBufferPointer) {
        precondition(out.count >= Self.byteCount)
        SHA256_Final(out.baseAddress!.assumingMemoryBound(to: UInt8.self), &context)
    }

    public mutating func finalize() -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: Self.byteCount)
        digest.withUnsafeMutableBytes { finalize(into: $0) }
        return digest
    }

    /// The SHA-256 of `bytes`.
    public static func hash(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        var hasher = SHA256Hasher()
        hasher.update(bytes)
        return hasher.finalize()
    }

    public static func hash(_ bytes: [UInt8]) -> [UInt8] {
        bytes.withUnsafeBytes { hash($0) }
    }

    /// The SHA-256 of `text`'s UTF-8 bytes.
    public static func hash(_ text: String) -> [UInt8] {
        hash(Array(text.utf8))
    }

    /// Calls `body` with the digest of `bytes` in a buffer that lives only for the call.
    @inline(__always)
    public static func withHash<R>(of bytes: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        var hasher = SHA256Hasher()
        hasher.update(bytes)
        return try withUnsafeTemporaryAllocation(byteCount: byteCount, alignment: 8) { out in
            hasher.finalize(into: out)
            return try body(UnsafeRawBufferPointer(out))
        }
    }
}

/// HMAC-SHA256 (RFC 2104) built on `SHA256Hasher`: the key's inner and outer blocks are
/// hashed once, and each message then costs two SHA-256 runs from copies of those states.
public struct HMACSHA256 {
    private static let blockSize = 64
    private let inner: SHA256Hasher
    private let outer: SHA256Hasher

    public init(key: [UInt8]) {
        var block = key.count > Self.blockSize ? SHA256Hasher.hash(key) : key
        block += [UInt8](repeating: 0, count: Self.blockSize - block.count)
        var inner = SHA256Hasher()
        inner.update(block.map { $0 ^ 0x36 })
        var outer = SHA256Hasher()
        outer.update(block.map { $0 ^ 0x5c })
        self.inner = inner
        self.outer = outer
    }

    /// The 32-byte authentication code of `message`.
    public func code(_ message: [UInt8]) -> [UInt8] {
        var inner = self.inner
        inner.update(message)
        var outer = self.outer
        outer.update(inner.finalize())
        return outer.finalize()
    }
}
