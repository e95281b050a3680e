import Foundation
import XCTest
@testable import SegmentLoader
@testable import SegmentCore
@testable import SegmentS3

/// The test run's own S3 API: moto's server (`moto[server]` from PyPI, which `.ci/run`
/// installs into `.build-moto/`) through `scripts/s3-harness.py`, on 127.0.0.1 on a free port,
/// with signature checks on after the 3 unsigned requests that create an IAM user and its key.
/// Started by the first test that asks, stopped when the test process exits. A test never
/// skips for want of it: a server that cannot start fails the test.
final class TestS3: @unchecked Sendable {
    let endpoint: String
    let accessKeyId: String
    let secretAccessKey: String
    private let process: Process

    private static let lock = NSLock()
    nonisolated(unsafe) private static var started: Result<TestS3, any Error>?

    static func shared() throws -> TestS3 {
        lock.lock()
        defer { lock.unlock() }
        if started == nil {
            started = Result { try TestS3() }
            atexit { TestS3.stopShared() }
        }
        return try started!.get()
    }

    private static func stopShared() {
        guard case .success(let server)? = started else { return }
        server.process.terminate()
    }

    static var repository: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    /// `.build-moto/bin/python3` when `.ci/run` made it, else the machine's python3.
    static var python: String {
        let venv = repository.appendingPathComponent(".build-moto/bin/python3").path
        return FileManager.default.isExecutableFile(atPath: venv) ? venv : "/usr/bin/env"
    }

    static func pythonArguments(_ arguments: [String]) -> [String] {
        (python == "/usr/bin/env" ? ["python3"] : []) + [repository.appendingPathComponent("scripts/s3-harness.py").path] + arguments
    }

    private init() throws {
        process = Process()
        process.executableURL = URL(fileURLWithPath: Self.python)
        process.arguments = Self.pythonArguments(["serve", "--port", "0"])
        var environment = ProcessInfo.processInfo.environment
        environment["INITIAL_NO_AUTH_ACTION_COUNT"] = "3"
        process.environment = environment
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        // "listening PORT", once the socket accepts connections.
        var line = Data()
        let reader = out.fileHandleForReading
        while !line.contains(0x0a) {
            let byte = reader.readData(ofLength: 1)
            guard !byte.isEmpty else {
                throw TestPostgresError("moto's server did not start: is moto[server] installed (.ci/run installs it into .build-moto/)?")
            }
            line.append(byte)
        }
        let text = String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard text.hasPrefix("listening "), let port = Int(text.dropFirst(10)) else { throw TestPostgresError("moto's server said '\(text)'") }
        endpoint = "http://127.0.0.1:\(port)"
        let setup = try runBinary(URL(fileURLWithPath: Self.python), Self.pythonArguments(["setup", "--endpoint", endpoint]))
        let parts = setup.stdout.split(separator: " ").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        guard setup.status == 0, parts.count == 2 else { throw TestPostgresError("the IAM user was not made: \(setup.stderr)") }
        (accessKeyId, secretAccessKey) = (parts[0], parts[1])
    }

    /// The environment a user would set for this store (and no profile of the machine's).
    func environment(endpoint: String? = nil) -> [String: String] {
        ["AWS_ACCESS_KEY_ID": accessKeyId, "AWS_SECRET_ACCESS_KEY": secretAccessKey, "AWS_ENDPOINT_URL": endpoint ?? self.endpoint,
         "AWS_REGION": "us-east-1", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_CONFIG_FILE": "/nonexistent"]
    }

    func client(endpoint: String? = nil, retry: S3Retry = S3Retry(attempts: 4, firstDelay: 0.01, maxDelay: 0.05)) -> S3Client {
        S3Client(settings: AWSSettings(credentials: AWSCredentials(accessKeyId: accessKeyId, secretAccessKey: secretAccessKey),
                                       region: "us-east-1", endpoint: endpoint ?? self.endpoint, source: "the test"),
                 retry: retry)
    }

    /// Uploads every file under `folder` to `bucket` (made if missing) as `prefix` + its
    /// relative path, with boto3.
    func put(_ folder: URL, bucket: String, prefix: String = "", contentEncoding: String? = nil) throws {
        var arguments = ["put", "--endpoint", endpoint, "--bucket", bucket, "--from", folder.path, "--prefix", prefix]
        if let contentEncoding { arguments += ["--content-encoding", contentEncoding] }
        let result = try runBinary(URL(fileURLWithPath: Self.python), Self.pythonArguments(arguments),
                                   environment: ["AWS_ACCESS_KEY_ID": accessKeyId, "AWS_SECRET_ACCESS_KEY": secretAccessKey])
        guard result.status == 0 else { throw TestPostgresError("upload failed: \(result.stderr)") }
    }
}

/// A proxy in front of moto (a reverse proxy: the loader's endpoint) that counts the requests
/// it passes and can misbehave: cut the first answer to each object's GET in half (headers
/// saying the whole length, half the body, then the connection closed), or answer the first
/// GETs of objects with 503 SlowDown. One request per connection.
final class S3Proxy: @unchecked Sendable {
    struct Seen: Sendable {
        var method: String
        var path: String
        var range: String?
    }

    enum Mode: Sendable {
        case pass
        case cutFirstAnswer
        case cutAlways
        case slowDown(times: Int)
        /// The bucket is in this region: a request signed for another is answered as S3
        /// answers it, 301 PermanentRedirect with `x-amz-bucket-region`.
        case bucketIn(region: String)
        /// Listings are answered with 40 MB of blanks, as a broken or hostile store might.
        case hugeListing
    }

    let port: Int
    var endpoint: String { "http://127.0.0.1:\(port)" }
    private let upstreamPort: Int
    private let listener: Int32
    private let state = Locked<(mode: Mode, seen: [Seen], cut: Set<String>, slowed: Int)>((.pass, [], [], 0))
    private let sentBytes = Locked<Int>(0)
    /// Bytes written to the loader's connections so far (the kernel took them).
    var bytesSent: Int { sentBytes.withLock { $0 } }

    init(upstream: String) throws {
        upstreamPort = Int(upstream.split(separator: ":").last!)!
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.listener = listener
        var yes: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(listener, 64) == 0 else { throw TestPostgresError("the proxy cannot listen") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        self.port = Int(UInt16(bigEndian: address.sin_port))
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    deinit { close(listener) }

    func set(_ mode: Mode) { state.withLock { $0.mode = mode; $0.cut = []; $0.slowed = 0 } }
    func reset() { state.withLock { $0.seen = [] } }
    var seen: [Seen] { state.withLock { $0.seen } }
    /// GETs of objects (not listings: those have a query string).
    var objectGets: [Seen] { seen.filter { $0.method == "GET" && !$0.path.contains("?") } }

    private func acceptLoop() {
        while true {
            let client = accept(listener, nil, nil)
            if client < 0 { if errno == EINTR { continue } else { return } }
            Thread { [self] in handle(client) }.start()
        }
    }

    private func handle(_ client: Int32) {
        defer { close(client) }
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        guard let (head, body) = readRequest(client) else { return }
        let lines = head.components(separatedBy: "\r\n")
        let parts = lines[0].split(separator: " ")
        guard parts.count >= 2 else { return }
        let range = lines.first { $0.lowercased().hasPrefix("range:") }.map { String($0.dropFirst(6)).trimmingCharacters(in: .whitespaces) }
        let seen = Seen(method: String(parts[0]), path: String(parts[1]), range: range)
        let isObjectGet = seen.method == "GET" && !seen.path.contains("?")
        let scope = lines.first { $0.lowercased().hasPrefix("authorization:") }?.components(separatedBy: "Credential=").last?
            .split(separator: "/").dropFirst(2).first.map(String.init)
        let action = state.withLock { state -> String in
            state.seen.append(seen)
            if case .bucketIn(let region) = state.mode, scope != region { return "redirect:" + region }
            if case .hugeListing = state.mode, seen.path.contains("list-type") { return "huge" }
            guard isObjectGet else { return "pass" }
            switch state.mode {
            case .pass, .bucketIn, .hugeListing: return "pass"
            case .cutAlways: return "cut"
            case .cutFirstAnswer:
                return state.cut.insert(seen.path).inserted ? "cut" : "pass"
            case .slowDown(let times):
                guard state.slowed < times else { return "pass" }
                state.slowed += 1
                return "slow"
            }
        }
        if action.hasPrefix("redirect:") {
            let region = action.dropFirst(9)
            let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>PermanentRedirect</Code><Message>The bucket you are attempting to access must be addressed using the specified endpoint.</Message></Error>"
            send(client, Array("HTTP/1.1 301 Moved Permanently\r\nx-amz-bucket-region: \(region)\r\nContent-Type: application/xml\r\nContent-Length: \(xml.utf8.count)\r\nConnection: close\r\n\r\n\(xml)".utf8))
            return
        }
        if action == "huge" {
            let size = 40 << 20
            send(client, Array("HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nContent-Length: \(size)\r\nConnection: close\r\n\r\n".utf8)
                 + [UInt8](repeating: 0x20, count: size))
            return
        }
        if action == "slow" {
            let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
            send(client, Array("HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: \(xml.utf8.count)\r\nConnection: close\r\n\r\n\(xml)".utf8))
            return
        }
        // Upstream, asking it to close after its answer.
        let forwarded = lines.filter { !$0.lowercased().hasPrefix("connection:") && !$0.isEmpty }.joined(separator: "\r\n") + "\r\nConnection: close\r\n\r\n"
        guard let answer = exchange(Array(forwarded.utf8) + body) else { return }
        if action == "cut", let split = answer.firstRange(of: Array("\r\n\r\n".utf8)) {
            let bodyBytes = answer.count - split.upperBound
            send(client, Array(answer[..<(split.upperBound + bodyBytes / 2)]))
            return
        }
        send(client, answer)
    }

    private func readRequest(_ fd: Int32) -> (String, [UInt8])? {
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            if let end = data.firstRange(of: Array("\r\n\r\n".utf8)) {
                let head = String(decoding: data[..<end.lowerBound], as: UTF8.self)
                let length = head.components(separatedBy: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
                    .flatMap { Int($0.dropFirst(15).trimmingCharacters(in: .whitespaces)) } ?? 0
                while data.count - end.upperBound < length {
                    let n = recv(fd, &buffer, buffer.count, 0)
                    if n <= 0 { return nil }
                    data += buffer[0..<n]
                }
                return (head, Array(data[end.upperBound...]))
            }
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { return nil }
            data += buffer[0..<n]
        }
    }

    private func exchange(_ request: [UInt8]) -> [UInt8]? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = in_port_t(UInt16(upstreamPort).bigEndian)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { return nil }
        send(fd, request)
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { break }
            answer += buffer[0..<n]
        }
        return answer
    }

    private func send(_ fd: Int32, _ bytes: [UInt8]) {
        var sent = 0
        while sent < bytes.count {
            // In slices of 64 KiB, so that `bytesSent` follows what the loader's side took.
            let n = bytes[sent..<min(bytes.count, sent + 65536)].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            sent += n
            sentBytes.withLock { $0 += n }
        }
    }
}
