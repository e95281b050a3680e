import Foundation
import SegmentCore

/// An AWS access key, as the AWS tools read it (environment, profile files).
public struct AWSCredentials: Sendable, Equatable {
    public var accessKeyId: String
    public var secretAccessKey: String
    /// Temporary credentials (STS, SSO) come with a session token, sent as
    /// `x-amz-security-token` and signed with the other headers.
    public var sessionToken: String?

    public init(accessKeyId: String, secretAccessKey: String, sessionToken: String? = nil) {
        self.accessKeyId = accessKeyId
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
    }
}

/// AWS Signature Version 4 for S3 requests, in the Authorization header (AWS's "Signature
/// Calculations for the Authorization Header"): the canonical request, the string to sign,
/// the signing key derived from the secret by HMAC-SHA256 over the date, region, service and
/// `aws4_request`, and the header that carries the result. S3's form: the path is encoded
/// once (not twice, as other services want), and the payload's SHA-256 is a signed header.
public struct SigV4: Sendable {
    public var credentials: AWSCredentials
    public var region: String
    public var service = "s3"

    public init(credentials: AWSCredentials, region: String) {
        self.credentials = credentials
        self.region = region
    }

    /// SHA-256 of an empty body, the payload hash of every GET.
    public static let emptyPayloadHash = hexString(SHA256Hasher.hash([UInt8]()))

    /// The headers to add to a request (`Authorization`, `x-amz-date`,
    /// `x-amz-content-sha256` and, with a session token, `x-amz-security-token`). `path` is
    /// the request's path before encoding ("/bucket/key" or "/key"), `query` its parameters
    /// before encoding, `headers` the others to sign (`host` at least).
    public func sign(method: String, path: String, query: [(name: String, value: String)], headers: [String: String],
                     payloadHash: String = SigV4.emptyPayloadHash, date: Date) -> [String: String] {
        let (stamp, day) = Self.timestamps(date)
        var signed: [String: String] = [:]
        for (name, value) in headers { signed[name.lowercased()] = Self.trimmed(value) }
        signed["x-amz-date"] = stamp
        signed["x-amz-content-sha256"] = payloadHash
        if let token = credentials.sessionToken { signed["x-amz-security-token"] = token }
        let names = signed.keys.sorted()
        let canonical = [
            method,
            Self.encodedPath(path),
            Self.canonicalQuery(query),
            names.map { "\($0):\(signed[$0]!)\n" }.joined(),
            names.joined(separator: ";"),
            payloadHash,
        ].joined(separator: "\n")
        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let toSign = ["AWS4-HMAC-SHA256", stamp, scope, hexString(SHA256Hasher.hash(canonical))].joined(separator: "\n")
        var key = Array("AWS4\(credentials.secretAccessKey)".utf8)
        for part in [day, region, service, "aws4_request"] { key = HMACSHA256(key: key).code(Array(part.utf8)) }
        let signature = hexString(HMACSHA256(key: key).code(Array(toSign.utf8)))
        var added = ["x-amz-date": stamp, "x-amz-content-sha256": payloadHash]
        if let token = credentials.sessionToken { added["x-amz-security-token"] = token }
        added["Authorization"] = "AWS4-HMAC-SHA256 Credential=\(credentials.accessKeyId)/\(scope),SignedHeaders=\(names.joined(separator: ";")),Signature=\(signature)"
        return added
    }

    /// `YYYYMMDD'T'HHMMSS'Z'` and `YYYYMMDD`, in UTC: the warehouse's own ISO 8601 writer's
    /// form without its separators and milliseconds.
    static func timestamps(_ date: Date) -> (stamp: String, day: String) {
        let iso = Timestamp.iso8601(Instant(date: date))  // YYYY-MM-DDTHH:MM:SS.sssZ
        let digits = String(iso.prefix(19).filter { $0 != "-" && $0 != ":" })
        return (digits + "Z", String(digits.prefix(8)))
    }

    /// A header value as signed: outer spaces trimmed, inner runs of spaces made one.
    static func trimmed(_ value: String) -> String {
        value.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
    }

    /// RFC 3986 encoding as SigV4 wants it: every byte but letters, digits and `-_.~` as
    /// `%XX` (upper-case hex); `/` kept in a path, encoded in a query.
    static func encode(_ text: String, keepSlash: Bool) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
                out.unicodeScalars.append(UnicodeScalar(byte))
            case UInt8(ascii: "/") where keepSlash:
                out.append("/")
            default:
                out += String(format: "%%%02X", byte)
            }
        }
        return out
    }

    /// The path as the request sends it and the signature covers it (encoded once).
    public static func encodedPath(_ path: String) -> String {
        path.isEmpty ? "/" : encode(path, keepSlash: true)
    }

    /// The query as the request sends it and the signature covers it: each name and value
    /// encoded, sorted by name then value, a parameter without a value as `name=`.
    public static func canonicalQuery(_ query: [(name: String, value: String)]) -> String {
        query.map { (encode($0.name, keepSlash: false), encode($0.value, keepSlash: false)) }
            .sorted { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }
            .map { "\($0.0)=\($0.1)" }.joined(separator: "&")
    }
}
