import SegmentCore

/// The normalizer's cache of key names: an open-addressing table keyed by (parent path id,
/// key, scope) with an FNV-1a hash of the key's bytes, its columns in separate arrays so a
/// probe copies nothing. A lookup costs a fraction of a `Dictionary` lookup, which runs SipHash
/// over the whole key; there are dozens per message.
struct NameCache {
    private var hashes: [UInt64]
    private var parents: [Int32]
    private var scopes: [UInt8]
    private var keys: [String]
    private var values: [Normalizer.CachedName]
    private var mask: Int
    private(set) var count = 0

    init(size: Int = 4096) {
        hashes = Array(repeating: 0, count: size)
        parents = Array(repeating: 0, count: size)
        scopes = Array(repeating: 0, count: size)
        keys = Array(repeating: "", count: size)
        values = Array(repeating: Normalizer.CachedName(key: -1, column: -1, prefix: ""), count: size)
        mask = size - 1
    }

    /// Never 0, which marks an empty slot.
    @inline(__always) static func hash(_ key: String, parent: Int32, scope: UInt8) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325 ^ (UInt64(UInt32(bitPattern: parent)) << 8 | UInt64(scope))
        for byte in key.utf8 {
            h = (h ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
        }
        h ^= h >> 29
        return h == 0 ? 1 : h
    }

    func find(_ key: String, parent: Int32, scope: UInt8, hash: UInt64) -> Normalizer.CachedName? {
        var i = Int(truncatingIfNeeded: hash) & mask
        while hashes[i] != 0 {
            if hashes[i] == hash && parents[i] == parent && scopes[i] == scope && keys[i] == key { return values[i] }
            i = (i + 1) & mask
        }
        return nil
    }

    mutating func insert(_ key: String, parent: Int32, scope: UInt8, hash: UInt64, value: Normalizer.CachedName) {
        if (count + 1) * 2 > hashes.count { rebuild(size: hashes.count * 2) }
        var i = Int(truncatingIfNeeded: hash) & mask
        while hashes[i] != 0 { i = (i + 1) & mask }
        hashes[i] = hash
        parents[i] = parent
        scopes[i] = scope
        keys[i] = key
        values[i] = value
        count += 1
    }

    mutating func removeAll() {
        self = NameCache()
    }

    private mutating func rebuild(size: Int) {
        let old = self
        self = NameCache(size: size)
        for i in 0..<old.hashes.count where old.hashes[i] != 0 {
            insert(old.keys[i], parent: old.parents[i], scope: old.scopes[i], hash: old.hashes[i], value: old.values[i])
        }
    }
}
