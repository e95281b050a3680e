import CCurl
import Foundation
import SegmentCore

public final class S3Client: Sendable {
    public let settings: AWSSettings
    public let retry: S3Retry
    /// Requests made since the client was made, by kind: `list` pages and `get` (every GET
    /// of an object, resumes too); `bytes` counts the objects' bytes received.
    public var requestCounts: [String: Int] { requests.withLock { $0 } }
    package let requests = Locked<[String: Int]>([:])
    private let handles = Locked<[CurlHandle]>([])
    /// Buckets found in another region than the settings' (S3 says so in its redirect).
    private let bucketRegions = Locked<[String: String]>([:])

    public init(settings: AWSSettings, retry: S3Retry = S3Retry()) {
        self.settings = settings
        self.retry = retry
    }

    deinit {
        for handle in handles.withLock({ $0 }) { handle.curl.cleanup(handle.pointer) }
    }

    /// The environment's settings (`AWSSettings.resolve`) with an endpoint of the caller's
    /// (a pipeline's `endpoint:`) in place of theirs.
    public static func fromEnvironment(endpoint: String? = nil) throws -> S3Client {
        do {
            var settings = try AWSSettings.resolve()
            if let endpoint { settings.endpoint = endpoint }
            return S3Client(settings: settings)
        } catch let missing as AWSSettings.Missing {
            throw S3Error(kind: .permission, message: "cannot read from S3: \(missing.description)")
        }
    }

    /// The most a listing page (or an error answer) may hold before it is refused.
    package static let maxListingPage = 32 << 20

    // MARK: Listing

    /// Every object under the location's prefix (all pages of ListObjectsV2), in key order.
    /// With `keepDay`, folders are listed one level at a time (delimiter `/`) and a day folder
    /// of Segment's layout (`<epoch-ms>/`) whose day it refuses is never listed: a night's
    /// listing then costs the same after years of history as after a week.
    /// `skippedFolders` counts the day folders left out.
    public func list(_ location: S3Location, keepDay: ((String) -> Bool)? = nil) throws -> (objects: [S3ListPage.Object], skippedFolders: Int) {
        guard let keepDay else { return (try listAll(location, prefix: location.prefix, delimiter: nil).objects, 0) }
        var objects: [S3ListPage.Object] = []
        var skipped = 0
        var folders = [location.prefix]
        while let folder = folders.popLast() {
            let listed = try listAll(location, prefix: folder, delimiter: "/")
            objects += listed.objects
            for sub in listed.folders {
                let name = sub.split(separator: "/").last.map(String.init) ?? ""
                if let day = DayFolder.day(of: name), !keepDay(day) {
                    skipped += 1
                    continue
                }
                folders.append(sub)
            }
        }
        objects.sort { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
        return (objects, skipped)
    }

    /// Every page of one listing: the objects and (with a delimiter) the folders below.
    private func listAll(_ location: S3Location, prefix: String, delimiter: String?) throws -> (objects: [S3ListPage.Object], folders: [String]) {
        var objects: [S3ListPage.Object] = []
        var folders: [String] = []
        var token: String?
        repeat {
            var query: [(name: String, value: String)] = [("list-type", "2"), ("prefix", prefix)]
            if let delimiter { query.append(("delimiter", delimiter)) }
            if let token { query.append(("continuation-token", token)) }
            let body = try requestWhole(location: location, key: "", query: query, kind: "list",
                                        what: "list \(location)")
            let page: S3ListPage
            do {
                page = try S3ListPage.parse(String(decoding: body, as: UTF8.self))
            } catch {
                throw S3Error(kind: .other, message: "\(location): the listing could not be read: \(error)")
            }
            objects += page.objects
            folders += page.folders
            token = page.nextToken
        } while token != nil
        return (objects, folders)
    }

    /// A small request whose whole answer is wanted (a listing page), retried as `retry` says.
    private func requestWhole(location: S3Location, key: String, query: [(name: String, value: String)],
                              kind: String, what: String) throws -> [UInt8] {
        var attempt = 0
        while true {
            var body: [UInt8] = []
            var tooLarge = false
            let result = try perform(location: location, key: key, query: query, headers: [:], kind: kind) { _, bytes in
                // A page of 1000 keys of at most 1024 bytes each is under 2 MB of XML.
                guard body.count + bytes.count <= Self.maxListingPage else {
                    tooLarge = true
                    return false
                }
                body.append(contentsOf: bytes)
                return true
            }
            if tooLarge {
                throw S3Error(kind: .other, message: "cannot \(what): the store's answer passed \(Self.maxListingPage >> 20) MB, which no listing page reaches")
            }
            if result.curlCode == CURLE_OK && result.status == 200 { return body }
            if adoptRegion(of: result, bucket: location.bucket) { continue }
            let error = classify(result, body: body, location: location, what: what, object: false)
            attempt += 1
            guard error.retryable && attempt < retry.attempts else { throw error.error }
            Thread.sleep(forTimeInterval: retry.delay(afterAttempt: attempt - 1))
        }
    }

    // MARK: Objects

    /// What reading an object found out about it.
    public struct ObjectRead: Sendable {
        public var size: Int64 = 0
        public var etag: String?
        /// Requests it took (more than one when a connection dropped and the rest was resumed).
        public var requests = 0
    }

    /// Streams the object at `url` (`s3://bucket/key`) to `body` in blocks, as stored (an
    /// object uploaded with `Content-Encoding: gzip` comes as its gzip bytes: nothing asks
    /// for or decodes an encoding on the way). A
    /// connection that drops or stalls is resumed where it stopped; a resumed answer must be
    /// the same object (its ETag). Errors thrown by `body` end the read and are rethrown.
    public func read(_ url: String, body: (UnsafeRawBufferPointer) throws -> Void) throws -> ObjectRead {
        guard let location = S3Location(url), !location.prefix.isEmpty else {
            throw S3Error(kind: .other, message: "not an s3://bucket/key URL")
        }
        let key = location.prefix
        var read = ObjectRead()
        var failures = 0
        var consumerError: (any Error)?
        var expectedTotal: Int64?
        while true {
            var headers: [String: String] = [:]
            let offset = read.size
            if offset > 0 {
                headers["range"] = "bytes=\(offset)-"
                if let etag = read.etag { headers["if-match"] = "\"\(etag)\"" }
            }
            var errorBody: [UInt8] = []
            var skip: Int64 = 0
            var started = false
            read.requests += 1
            let result = try perform(location: location, key: key, query: [], headers: headers, kind: "get") { response, bytes in
                if !started {
                    started = true
                    if response.status == 200 && offset > 0 {
                        // The store ignored Range and sent the object from its start.
                        skip = offset
                    }
                    if response.status == 200 || response.status == 206 {
                        if let etag = response.etag {
                            if let known = read.etag, known != etag { return false }
                            read.etag = etag
                        }
                        if let total = response.total { expectedTotal = total }
                    }
                }
                guard response.status == 200 || response.status == 206 else {
                    if errorBody.count < 64 << 10 { errorBody.append(contentsOf: bytes) }
                    return true
                }
                var chunk = bytes
                if skip > 0 {
                    let dropped = min(Int64(chunk.count), skip)
                    skip -= dropped
                    chunk = UnsafeRawBufferPointer(rebasing: chunk[Int(dropped)...])
                }
                guard !chunk.isEmpty else { return true }
                requests.withLock { $0["bytes", default: 0] += chunk.count }
                do {
                    try body(chunk)
                } catch {
                    consumerError = error
                    return false
                }
                read.size += Int64(chunk.count)
                return true
            }
            if let consumerError { throw consumerError }
            if result.status == 200 || result.status == 206, let etag = result.etag, let known = read.etag, etag != known {
                throw S3Error(kind: .other, message: "the object changed while it was read (its ETag went from \(known) to \(etag)); it is read again next run")
            }
            if result.curlCode == CURLE_OK && (result.status == 200 || result.status == 206) {
                if let expectedTotal, read.size < expectedTotal {
                    // The answer ended early without an error from the connection: resume.
                    failures += 1
                    guard failures < retry.attempts else {
                        throw S3Error(kind: .unavailable, message: "the store kept ending the object early (\(read.size) of \(expectedTotal) bytes after \(failures) tries)")
                    }
                    continue
                }
                return read
            }
            if result.status == 412 {
                throw S3Error(kind: .other, message: "the object changed while it was read (If-Match on its ETag failed); it is read again next run")
            }
            if result.status == 416 && offset > 0 && expectedTotal == offset { return read }
            if adoptRegion(of: result, bucket: location.bucket) { continue }
            let error = classify(result, body: errorBody, location: location, what: "read the object", object: true)
            // Bytes that arrived before a fault are kept: the next try asks for the rest.
            if read.size > offset { failures = 0 }
            failures += 1
            guard error.retryable && failures < retry.attempts else { throw error.error }
            Thread.sleep(forTimeInterval: retry.delay(afterAttempt: failures - 1))
        }
    }

    /// Replaces the object at `url` with `bytes` (one PUT of the whole object), after checking
    /// that it is still the object read (its ETag, when given). Returns the new ETag.
    public func replace(_ url: String, with bytes: [UInt8], ifETag etag: String?) throws -> String? {
        guard let location = S3Location(url), !location.prefix.isEmpty else {
            throw S3Error(kind: .other, message: "not an s3://bucket/key URL")
        }
        var attempt = 0
        while true {
            if let etag {
                let head = try perform(location: location, key: location.prefix, query: [], headers: [:], kind: "head", method: "HEAD") { _, _ in true }
                if head.curlCode == CURLE_OK && head.status == 200 && head.etag != etag {
                    throw S3Error(kind: .other, message: "\(url) changed since it was read (its ETag is now \(head.etag ?? "none"), not \(etag)); it was not replaced")
                }
            }
            // Without a type curl says form data, which some stores (moto) parse away.
            var headers = ["content-length": String(bytes.count), "content-type": "application/octet-stream"]
            if let etag { headers["if-match"] = "\"\(etag)\"" }
            var errorBody: [UInt8] = []
            let result = try perform(location: location, key: location.prefix, query: [], headers: headers, kind: "put", method: "PUT", upload: bytes) { _, body in
                if errorBody.count < 64 << 10 { errorBody.append(contentsOf: body) }
                return true
            }
            if result.curlCode == CURLE_OK && result.status == 200 { return result.etag }
            if result.status == 412 {
                throw S3Error(kind: .other, message: "\(url) changed since it was read (If-Match on its ETag failed); it was not replaced")
            }
            if adoptRegion(of: result, bucket: location.bucket) { continue }
            let error = classify(result, body: errorBody, location: location, what: "replace the object", object: true)
            attempt += 1
            guard error.retryable && attempt < retry.attempts else { throw error.error }
            Thread.sleep(forTimeInterval: retry.delay(afterAttempt: attempt - 1))
        }
    }

    // MARK: Requests

    package struct Response {
        package var status = 0
        package var etag: String?
        /// The object's whole size: Content-Length of a 200, the total of a 206's Content-Range.
        package var total: Int64?
        package var region: String?
        package var curlCode = CURLE_OK
        package var curlMessage = ""
        /// The system's errno of a failed connection (ECONNREFUSED, ENETUNREACH, ...), else 0.
        package var osErrno = 0
    }

    /// One signed request through a pooled handle. `onBody` gets the response so far and each
    /// block of its body; returning false aborts the transfer.
    private func perform(location: S3Location, key: String, query: [(name: String, value: String)], headers: [String: String],
                         kind: String, method: String = "GET", upload: [UInt8]? = nil,
                         onBody: (Response, UnsafeRawBufferPointer) -> Bool) throws -> Response {
        requests.withLock { $0[kind, default: 0] += 1 }
        let region = region(of: location.bucket)
        let target = location.request(key: key, query: query, region: region, endpoint: settings.endpoint)
        var toSign = headers
        toSign["host"] = target.host
        let signed = SigV4(credentials: settings.credentials, region: region)
            .sign(method: method, path: target.path, query: query, headers: toSign,
                  payloadHash: upload.map { hexString(SHA256Hasher.hash($0)) } ?? SigV4.emptyPayloadHash, date: Date())
        var lines = headers.map { "\($0.key): \($0.value)" }
        lines += signed.map { "\($0.key): \($0.value)" }
        // curl adds Accept: */* and would never decode a body it was not asked to.
        lines.append("Accept:")

        let handle = try takeHandle()
        defer { giveBack(handle) }
        let curl = handle.curl
        let h = handle.pointer
        curl.reset(h)
        curl.set(h, CURLOPT_URL, target.url)
        switch method {
        case "HEAD": curl.set(h, CURLOPT_NOBODY, 1)
        case "PUT": curl.set(h, CURLOPT_CUSTOMREQUEST, "PUT")
        default: curl.set(h, CURLOPT_HTTPGET, 1)
        }
        curl.set(h, CURLOPT_NOSIGNAL, 1)
        curl.set(h, CURLOPT_CONNECTTIMEOUT, 20)
        // A transfer that moves less than a byte a second for 60 s is given up and resumed.
        curl.set(h, CURLOPT_LOW_SPEED_LIMIT, 1)
        curl.set(h, CURLOPT_LOW_SPEED_TIME, 60)
        curl.set(h, CURLOPT_BUFFERSIZE, 256 << 10)
        curl.set(h, CURLOPT_PROTOCOLS_STR, "http,https")
        var list: UnsafeMutablePointer<curl_slist>?
        for line in lines { list = curl.append(list, line) }
        defer { curl.free(list) }
        curl.set(h, CURLOPT_HTTPHEADER, UnsafeMutableRawPointer(list))
        var errorBuffer = [CChar](repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)

        let (code, answered): (CURLcode, Response) = withoutActuallyEscaping(onBody) { onBody in
          let context = TransferContext(onBody: onBody)
          let code: CURLcode = withExtendedLifetime(context) {
            errorBuffer.withUnsafeMutableBufferPointer { buffer in
                let pointer = Unmanaged.passUnretained(context).toOpaque()
                curl.set(h, CURLOPT_ERRORBUFFER, UnsafeMutableRawPointer(buffer.baseAddress))
                curl.set(h, CURLOPT_HEADERFUNCTION, { data, size, count, context in
                    let transfer = Unmanaged<TransferContext>.fromOpaque(context!).takeUnretainedValue()
                    transfer.header(UnsafeRawBufferPointer(start: data, count: size * count))
                    return size * count
                })
                curl.set(h, CURLOPT_HEADERDATA, pointer)
                curl.set(h, CURLOPT_WRITEFUNCTION, { data, size, count, context in
                    let transfer = Unmanaged<TransferContext>.fromOpaque(context!).takeUnretainedValue()
                    return transfer.body(UnsafeRawBufferPointer(start: data, count: size * count)) ? size * count : 0
                })
                curl.set(h, CURLOPT_WRITEDATA, pointer)
                var payload = upload ?? []
                let code: CURLcode = payload.withUnsafeMutableBytes { raw in
                    if upload != nil {
                        curl.set(h, CURLOPT_POSTFIELDSIZE, raw.count)
                        curl.set(h, CURLOPT_POSTFIELDS, raw.baseAddress)
                    }
                    return curl.perform(h)
                }
                curl.set(h, CURLOPT_ERRORBUFFER, nil as UnsafeMutableRawPointer?)
                return code
            }
          }
          return (code, context.response)
        }
        var response = answered
        let status = curl.info(h, CURLINFO_RESPONSE_CODE)
        if status != 0 { response.status = status }
        response.curlCode = code
        if code != CURLE_OK {
            let detail = String(decoding: errorBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            response.curlMessage = detail.isEmpty ? curl.describe(code) : detail
            response.osErrno = curl.info(h, CURLINFO_OS_ERRNO)
        }
        return response
    }

    /// What a failed request means: its error for people, and whether trying again may help.
    private func classify(_ response: Response, body: [UInt8], location: S3Location, what: String, object: Bool) -> (error: S3Error, retryable: Bool) {
        let bucket = location.bucket
        if response.curlCode != CURLE_OK && response.curlCode != CURLE_WRITE_ERROR {
            let transient: Set<UInt32> = [
                CURLE_COULDNT_CONNECT.rawValue, CURLE_COULDNT_RESOLVE_HOST.rawValue, CURLE_OPERATION_TIMEDOUT.rawValue,
                CURLE_PARTIAL_FILE.rawValue, CURLE_RECV_ERROR.rawValue, CURLE_SEND_ERROR.rawValue, CURLE_GOT_NOTHING.rawValue,
                CURLE_SSL_CONNECT_ERROR.rawValue, CURLE_HTTP2.rawValue, CURLE_HTTP2_STREAM.rawValue,
            ]
            let retryable = transient.contains(response.curlCode.rawValue)
            let tries = retryable ? " after \(retry.attempts) tries" : ""
            let place = settings.endpoint.map { "the endpoint \($0)" } ?? "S3 (region \(region(of: bucket)))"
            let fix = settings.endpoint == nil ? "" : "; is the endpoint (AWS_ENDPOINT_URL or the pipeline's endpoint:) right, and the store running?"
            let said: String
            switch response.curlCode {
            case CURLE_COULDNT_CONNECT where response.osErrno == Int(ECONNREFUSED):
                said = "\(place) refused the connection\(tries): nothing listens there (\(response.curlMessage))\(fix)"
            case CURLE_COULDNT_CONNECT:
                said = "\(place) could not be reached\(tries) (\(response.curlMessage))\(fix)"
            case CURLE_COULDNT_RESOLVE_HOST:
                said = "the host name of \(place) is not known\(tries) (\(response.curlMessage))\(fix)"
            case CURLE_OPERATION_TIMEDOUT:
                said = "\(place) did not answer in time\(tries) (\(response.curlMessage))"
            default:
                said = "\(place) did not answer whole\(tries) (\(response.curlMessage))"
            }
            return (S3Error(kind: .unavailable, message: "cannot \(what): \(said)"), retryable)
        }
        let text = String(decoding: body, as: UTF8.self)
        let code = S3ListPage.element("Code", in: Substring(text)) ?? ""
        let detail = S3ListPage.element("Message", in: Substring(text)).map { ": \($0)" } ?? ""
        let said = "\(response.status)\(code.isEmpty ? "" : " \(code)")\(detail)"
        if let region = response.region, [301, 307, 400].contains(response.status) {
            return (S3Error(kind: .other, message: "cannot \(what): bucket \(bucket) is in region \(region) and still answered \(response.status) there"), false)
        }
        switch response.status {
        case 500, 502, 503, 504:
            return (S3Error(kind: .unavailable, message: "cannot \(what): the store answered \(said) after \(retry.attempts) tries"), true)
        case 403:
            let hint: String
            switch code {
            case "SignatureDoesNotMatch": hint = "the secret access key from \(settings.source) is not the one of its access key id"
            case "InvalidAccessKeyId": hint = "the access key id from \(settings.source) is not known to the store"
            case "ExpiredToken", "InvalidToken": hint = "the session token from \(settings.source) has expired or is not valid"
            case "RequestTimeTooSkewed": hint = "this machine's clock is too far from the store's"
            default: hint = "the credentials from \(settings.source) lack s3:ListBucket or s3:GetObject on bucket \(bucket)"
            }
            return (S3Error(kind: .permission, message: "cannot \(what): access to bucket \(bucket) was refused (\(said)): \(hint)"), false)
        case 404:
            if code == "NoSuchBucket" || !object {
                return (S3Error(kind: .missing, message: "cannot \(what): there is no bucket \(bucket) (\(said))"), false)
            }
            return (S3Error(kind: .missing, message: "cannot \(what): no such object in bucket \(bucket) (\(said)); it was deleted after the listing"), false)
        default:
            return (S3Error(kind: .other, message: "cannot \(what): the store answered \(said)"), false)
        }
    }

    /// The region requests for `bucket` are signed for and sent to.
    private func region(of bucket: String) -> String {
        bucketRegions.withLock { $0[bucket] } ?? settings.region
    }

    /// A bucket in another region than the settings' is answered with a redirect (301, 307,
    /// or 400 AuthorizationHeaderMalformed) that names its region: as the AWS CLI does, the
    /// client goes on there, once per bucket. True when the request should be made again.
    private func adoptRegion(of response: Response, bucket: String) -> Bool {
        guard [301, 307, 400].contains(response.status), let region = response.region, !region.isEmpty else { return false }
        return bucketRegions.withLock { regions in
            guard (regions[bucket] ?? settings.region) != region else { return false }
            regions[bucket] = region
            return true
        }
    }

    private func takeHandle() throws -> CurlHandle {
        if let handle = handles.withLock({ $0.popLast() }) { return handle }
        let curl = try Curl.library()
        guard let pointer = curl.easyInit() else { fatalError("libcurl could not make a handle (out of memory)") }
        return CurlHandle(curl: curl, pointer: pointer)
    }

    private func giveBack(_ handle: CurlHandle) {
        handles.withLock { $0.append(handle) }
    }
}
