import CCurl
import Foundation

/// libcurl, opened the first time an s3:// source is read rather than linked: building the
/// loader then needs none of libcurl's development files, and a loader that never reads S3 never
/// touches it. Debian's runtime package `libcurl4` (libcurl.so.4, OpenSSL) is tried first, then
/// `libcurl3-gnutls` (libcurl-gnutls.so.4); `SEGMENT_LOADER_LIBCURL` names another file.
final class Curl: @unchecked Sendable {
    /// The library's functions; written once by `open`, read only after.
    private let api: UnsafeMutablePointer<ccurl_api>
    /// The file that was opened.
    let file: String

    /// The files tried, in order, when `SEGMENT_LOADER_LIBCURL` is not set.
    static let candidates = ["libcurl.so.4", "libcurl-gnutls.so.4"]

    /// The library of this process, opened (and `curl_global_init` called) on first use.
    static let shared: Result<Curl, S3Error> = {
        let named = ProcessInfo.processInfo.environment["SEGMENT_LOADER_LIBCURL"].flatMap { $0.isEmpty ? nil : $0 }
        return open(named.map { [$0] } ?? candidates)
    }()

    /// The process's library, or the error that says why there is none and how to install it.
    static func library() throws -> Curl {
        try shared.get()
    }

    private init(api: UnsafeMutablePointer<ccurl_api>, file: String) {
        self.api = api
        self.file = file
    }

    /// The first of `files` that opens and has every function the client calls.
    static func open(_ files: [String]) -> Result<Curl, S3Error> {
        var reasons: [String] = []
        for file in files {
            let api = UnsafeMutablePointer<ccurl_api>.allocate(capacity: 1)
            api.initialize(to: ccurl_api())
            if ccurl_open(file, api) != 0 {
                _ = api.pointee.global_init!(CURL_GLOBAL_DEFAULT)
                return .success(Curl(api: api, file: file))
            }
            reasons.append(dlerror().map { String(cString: $0) } ?? "\(file): not a libcurl")
            api.deallocate()
        }
        return .failure(S3Error(kind: .unavailable, message: """
            cannot read from S3: libcurl, the HTTP client of s3:// sources, is not on this machine \
            (\(reasons.joined(separator: "; "))); install its runtime library: apt-get install libcurl4
            """))
    }

    func easyInit() -> UnsafeMutableRawPointer? { api.pointee.easy_init!() }
    func cleanup(_ handle: UnsafeMutableRawPointer) { api.pointee.easy_cleanup!(handle) }
    func reset(_ handle: UnsafeMutableRawPointer) { api.pointee.easy_reset!(handle) }
    func perform(_ handle: UnsafeMutableRawPointer) -> CURLcode { api.pointee.easy_perform!(handle) }
    func describe(_ code: CURLcode) -> String { api.pointee.easy_strerror!(code).map { String(cString: $0) } ?? "libcurl error \(code.rawValue)" }

    func append(_ list: UnsafeMutablePointer<curl_slist>?, _ line: String) -> UnsafeMutablePointer<curl_slist>? {
        api.pointee.slist_append!(list, line)
    }

    func free(_ list: UnsafeMutablePointer<curl_slist>?) { api.pointee.slist_free_all!(list) }

    func set(_ handle: UnsafeMutableRawPointer, _ option: CURLoption, _ value: Int) {
        _ = ccurl_setopt_long(api, handle, option, value)
    }

    func set(_ handle: UnsafeMutableRawPointer, _ option: CURLoption, _ value: String) {
        _ = ccurl_setopt_string(api, handle, option, value)
    }

    func set(_ handle: UnsafeMutableRawPointer, _ option: CURLoption, _ value: UnsafeMutableRawPointer?) {
        _ = ccurl_setopt_pointer(api, handle, option, value)
    }

    func set(_ handle: UnsafeMutableRawPointer, _ option: CURLoption, _ value: ccurl_data_callback) {
        _ = ccurl_setopt_callback(api, handle, option, value)
    }

    func info(_ handle: UnsafeMutableRawPointer, _ info: CURLINFO) -> Int {
        var value = 0
        _ = ccurl_getinfo_long(api, handle, info, &value)
        return value
    }
}
