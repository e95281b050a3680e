import Foundation

/// An `s3://BUCKET/PREFIX` source.
public struct S3Location: Sendable, Equatable, CustomStringConvertible {
    public var bucket: String
    /// The key prefix, as given (`segment-logs/wk_123/`), without a leading slash.
    public var prefix: String

    /// nil for anything that is not `s3://` followed by a bucket name.
    public init?(_ text: String) {
        guard text.hasPrefix("s3://") else { return nil }
        let rest = text.dropFirst(5)
        let bucket = rest.prefix { $0 != "/" }
        guard !bucket.isEmpty else { return nil }
        self.bucket = String(bucket)
        prefix = String(rest.dropFirst(bucket.count).drop { $0 == "/" })
    }

    public var description: String { "s3://\(bucket)/\(prefix)" }

    /// Whether a path given as a source is an S3 URL.
    public static func isURL(_ path: String) -> Bool { path.hasPrefix("s3://") }

    /// What a source that is neither a local path nor `s3://` was meant to be, said as a
    /// correction: `s3:/bucket/prefix`, `S3://...`, `s3:bucket/...` or `s3//...` (a slash or
    /// colon short, or upper case) suggest the `s3://` URL; another scheme (`gs://`, `https://`)
    /// is named as one this loader does not read. nil for a plain path.
    public static func misspelling(_ path: String) -> String? {
        let lower = path.lowercased()
        for wrong in ["s3:/", "s3:", "s3//"] where lower.hasPrefix(wrong) && !path.hasPrefix("s3://") {
            let rest = path.dropFirst(wrong.count).drop { $0 == "/" || $0 == ":" }
            guard !rest.isEmpty, !FileManager.default.fileExists(atPath: path) else { continue }
            return "did you mean s3://\(rest)? (an S3 source is written s3://BUCKET/PREFIX)"
        }
        if let end = path.range(of: "://"), !path.hasPrefix("s3://") {
            let scheme = path[..<end.lowerBound]
            if !scheme.isEmpty, scheme.allSatisfy({ $0.isLetter || $0.isNumber || "+.-".contains($0) }) {
                return "\(scheme):// is not a source this loader reads: give a local file or folder, or s3://BUCKET/PREFIX"
            }
        }
        return nil
    }

    /// The URL of `key` in this bucket and the path the signature covers: virtual-hosted on
    /// AWS (`https://BUCKET.s3.REGION.amazonaws.com/KEY`), path-style on an endpoint of
    /// the user's (`http://host:9000/BUCKET/KEY`), as S3-compatible stores want.
    public func request(key: String, query: [(name: String, value: String)] = [], region: String, endpoint: String?)
        -> (url: String, host: String, path: String) {
        let base: String, host: String, path: String
        if let endpoint {
            let trimmed = endpoint.hasSuffix("/") ? String(endpoint.dropLast()) : endpoint
            let authority = trimmed.components(separatedBy: "://").last ?? trimmed
            (base, host, path) = (trimmed, String(authority.prefix { $0 != "/" }), "/\(bucket)/\(key)")
        } else if bucket.contains(".") {
            // A dotted name would not match the wildcard certificate of virtual-hosted
            // addresses: AWS's SDKs go path-style for it, and so does this.
            host = "s3.\(region).amazonaws.com"
            (base, path) = ("https://\(host)", "/\(bucket)/\(key)")
        } else {
            host = "\(bucket).s3.\(region).amazonaws.com"
            (base, path) = ("https://\(host)", "/\(key)")
        }
        return (base + SigV4.encodedPath(path) + Self.queryPart(query), host, path)
    }

    private static func queryPart(_ query: [(name: String, value: String)]) -> String {
        query.isEmpty ? "" : "?" + SigV4.canonicalQuery(query)
    }
}

/// One page of a ListObjectsV2 answer: the objects (key, size, ETag without its quotes) and,
/// when the listing is truncated, the token of the next page.
public struct S3ListPage: Sendable, Equatable {
    public struct Object: Sendable, Equatable {
        public var key: String
        public var size: Int64
        public var etag: String
    }

    public var objects: [Object] = []
    /// With a delimiter: the "folders" below the prefix (`<CommonPrefixes><Prefix>`).
    public var folders: [String] = []
    public var nextToken: String?

    public struct Malformed: Error, CustomStringConvertible {
        public var description: String
    }

    /// Reads the XML S3 answers `GET /?list-type=2` with: `<Contents>` elements with `<Key>`,
    /// `<Size>` and `<ETag>`, `<IsTruncated>` and `<NextContinuationToken>`. Text is
    /// unescaped (`&amp;` and the other four, `&#NN;`, `&#xNN;`).
    public static func parse(_ xml: String) throws -> S3ListPage {
        var page = S3ListPage()
        for body in try bodies(of: "Contents", in: Substring(xml)) {
            guard let key = element("Key", in: body), let sizeText = element("Size", in: body), let size = Int64(sizeText) else {
                throw Malformed(description: "a listed object lacks its Key or Size")
            }
            page.objects.append(Object(key: key, size: size, etag: unquoted(element("ETag", in: body) ?? "")))
        }
        for body in try bodies(of: "CommonPrefixes", in: Substring(xml)) {
            if let prefix = element("Prefix", in: body) { page.folders.append(prefix) }
        }
        if element("IsTruncated", in: Substring(xml)) == "true" {
            guard let token = element("NextContinuationToken", in: Substring(xml)), !token.isEmpty else {
                throw Malformed(description: "the listing is truncated but gives no NextContinuationToken")
            }
            page.nextToken = token
        }
        return page
    }

    /// The insides of every `<name>` element in `text`, in order.
    static func bodies(of name: String, in text: Substring) throws -> [Substring] {
        var found: [Substring] = []
        var rest = text
        while let open = rest.range(of: "<\(name)>") {
            guard let close = rest.range(of: "</\(name)>", range: open.upperBound..<rest.endIndex) else {
                throw Malformed(description: "a <\(name)> element of the listing has no end")
            }
            found.append(rest[open.upperBound..<close.lowerBound])
            rest = rest[close.upperBound...]
        }
        return found
    }

    /// An ETag without the quotes S3 puts around it (in listings and in the ETag header).
    static func unquoted(_ etag: String) -> String {
        etag.count >= 2 && etag.hasPrefix("\"") && etag.hasSuffix("\"") ? String(etag.dropFirst().dropLast()) : etag
    }

    /// The unescaped text of the first `<name>` element in `text`.
    static func element(_ name: String, in text: Substring) -> String? {
        guard let open = text.range(of: "<\(name)>"), let close = text.range(of: "</\(name)>", range: open.upperBound..<text.endIndex) else {
            return nil
        }
        return unescape(text[open.upperBound..<close.lowerBound])
    }

    static func unescape(_ text: Substring) -> String {
        guard text.contains("&") else { return String(text) }
        var out = "", rest = text
        while let amp = rest.firstIndex(of: "&") {
            out += rest[..<amp]
            guard let semi = rest[amp...].firstIndex(of: ";") else { break }
            let entity = rest[rest.index(after: amp)..<semi]
            switch entity {
            case "amp": out += "&"
            case "lt": out += "<"
            case "gt": out += ">"
            case "quot": out += "\""
            case "apos": out += "'"
            default:
                let number = entity.hasPrefix("#x") ? UInt32(entity.dropFirst(2), radix: 16) : entity.hasPrefix("#") ? UInt32(entity.dropFirst()) : nil
                if let number, let scalar = UnicodeScalar(number) { out.unicodeScalars.append(scalar) } else { out += rest[amp...semi] }
            }
            rest = rest[rest.index(after: semi)...]
        }
        return out + rest
    }
}
