import CCurl
import Foundation
import SegmentCore

/// A libcurl easy handle, kept between requests so its connection is reused; used by one
/// thread at a time (taken from and given back to the client's pool).
struct CurlHandle: @unchecked Sendable {
    let curl: Curl
    let pointer: UnsafeMutableRawPointer
}

/// The state of one transfer that libcurl's callbacks reach through their context pointer.
final class TransferContext {
    var response = S3Client.Response()
    let onBody: (S3Client.Response, UnsafeRawBufferPointer) -> Bool
    private var contentLength: Int64?

    init(onBody: @escaping (S3Client.Response, UnsafeRawBufferPointer) -> Bool) {
        self.onBody = onBody
    }

    func header(_ bytes: UnsafeRawBufferPointer) {
        let line = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        if line.hasPrefix("HTTP/") {
            // A new response (after a 100 Continue or a redirect): forget the last one's.
            response = S3Client.Response()
            let parts = line.split(separator: " ")
            if parts.count >= 2, let status = Int(parts[1]) { response.status = status }
            return
        }
        guard let colon = line.firstIndex(of: ":") else { return }
        let name = line[..<colon].lowercased()
        let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        switch name {
        case "etag":
            response.etag = S3ListPage.unquoted(value)
        case "content-length": if response.status == 200 { response.total = Int64(value) }
        case "content-range":
            // bytes START-END/TOTAL
            if let slash = value.lastIndex(of: "/") { response.total = Int64(value[value.index(after: slash)...]) }
        case "x-amz-bucket-region": response.region = value
        default: break
        }
    }

    func body(_ bytes: UnsafeRawBufferPointer) -> Bool {
        onBody(response, bytes)
    }
}
