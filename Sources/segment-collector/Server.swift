import Collector
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import SegmentCore

/// A request's context: Hummingbird's core storage and the address of the peer.
struct CollectorContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let peer: String?

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        peer = source.channel.remoteAddress?.ipAddress
    }
}

/// Appends the test seam's trace (`--test-trace`): the committer's write/fsync/ack and each
/// answer the server sends, in the order they happened.
final class Trace: Sendable {
    private let handle: FileHandle
    private let lock = NSLock()

    init?(path: String) {
        guard FileManager.default.createFile(atPath: path, contents: nil), let handle = FileHandle(forWritingAtPath: path) else { return nil }
        self.handle = handle
    }

    func record(_ line: String) {
        lock.lock()
        defer { lock.unlock() }
        handle.write(Data((line + "\n").utf8))
    }
}

/// Every HTTP request of the collector: Segment's tracking routes, CORS preflights, /health
/// and /metrics.
struct CollectorResponder: HTTPResponder {
    typealias Context = CollectorContext

    let intake: Intake
    let committer: GroupCommitter
    let bodies: BodySlots
    let metrics: CollectorMetrics
    let trace: Trace?
    let logger: Logger

    static let forwardedFor = HTTPField.Name("X-Forwarded-For")!

    func respond(to request: Request, context: Context) async throws -> Response {
        let path = request.uri.path
        switch path {
        case "/health":
            guard request.method == .get || request.method == .head else { return plain(.methodNotAllowed, "use GET\n", allow: "GET") }
            return plain(.ok, "ok\n")
        case "/metrics":
            guard request.method == .get else { return plain(.methodNotAllowed, "use GET\n", allow: "GET") }
            var response = Response(status: .ok, body: .init(byteBuffer: ByteBuffer(bytes: metrics.render(queuedBytes: committer.queuedBytes))))
            response.headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return response
        default:
            break
        }
        guard path.hasPrefix("/v1/"), let route = Route(rawValue: String(path.dropFirst(4))) else {
            metrics.request(route: "other", status: 404)
            return json(.notFound, Intake.answer(Refusal(status: 404, reason: "not_found",
                message: "no such route: the tracking routes are /v1/track, identify, page, screen, group, alias, batch and import")), origin: nil)
        }
        let origin = intake.corsOrigin(request.headers[.origin])
        if request.method == .options {
            return preflight(request, route: route, origin: origin)
        }
        guard request.method == .post else {
            metrics.request(route: route.rawValue, status: 405)
            var response = json(.methodNotAllowed, Intake.answer(Refusal(status: 405, reason: "method", message: "use POST")), origin: origin)
            response.headers[.allow] = "POST, OPTIONS"
            return response
        }
        let outcome = await accept(request, route: route, peer: context.peer)
        metrics.request(route: route.rawValue, status: outcome.status)
        if let refusal = outcome.refusal {
            metrics.rejected(reason: refusal.reason, source: refusal.source)
            if refusal.status >= 500 || refusal.status == 401 {
                logger.debug("refused", metadata: ["route": "\(route.rawValue)", "status": "\(refusal.status)", "reason": "\(refusal.reason)"])
            }
        }
        var response = json(HTTPResponse.Status(code: outcome.status), Intake.answer(outcome.refusal), origin: origin)
        if outcome.status == 503 { response.headers[.retryAfter] = String(intake.config.retryAfterSeconds) }
        if outcome.closeConnection { response.headers[.connection] = "close" }
        trace?.record("respond \(outcome.status)")
        return response
    }

    struct Outcome {
        var status: Int
        var refusal: Refusal?
        var closeConnection = false
    }

    /// Reads the body within its limit and deadline, decides, queues and waits until the
    /// messages are on disk.
    func accept(_ request: Request, route: Route, peer: String?) async -> Outcome {
        let limit = intake.bodyLimit(route)
        // The source, when the key is in the header, labels refusals made before the body is
        // read; worked out only for them (`decide` authenticates the others).
        let known = { request.headers[.authorization].flatMap(Intake.basicKey).flatMap(intake.source(forKey:)) }
        let tooLarge = { Refusal(status: 400, reason: "too_large", message: intake.tooLargeMessage(route), source: known()) }
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > limit {
            return Outcome(status: 400, refusal: tooLarge(), closeConnection: true)
        }
        let encoding = request.headers[.contentEncoding]?.lowercased()
        if let encoding, encoding != "gzip", encoding != "identity" {
            return Outcome(status: 400, refusal: Refusal(status: 400, reason: "encoding",
                message: "Content-Encoding \(encoding) is not supported: send gzip or nothing", source: known()), closeConnection: true)
        }
        // At most limits.max_bodies bodies are read (and held) at once; an idle connection
        // holds none.
        await bodies.acquire()
        defer { Task { await bodies.release() } }
        var body = ByteBuffer()
        let deadline = ContinuousClock.now + .seconds(intake.config.readTimeoutSeconds)
        do {
            for try await var part in request.body {
                guard body.readableBytes + part.readableBytes <= limit else {
                    return Outcome(status: 400, refusal: tooLarge(), closeConnection: true)
                }
                body.writeBuffer(&part)
                if ContinuousClock.now > deadline {
                    return Outcome(status: 408, refusal: Refusal(status: 408, reason: "read_timeout",
                        message: "the body took longer than \(intake.config.readTimeoutSeconds) s to arrive", source: known()), closeConnection: true)
                }
            }
        } catch {
            return Outcome(status: 400, refusal: Refusal(status: 400, reason: "read_error", message: "the body could not be read: \(error)", source: known()), closeConnection: true)
        }
        let bytes = body.readBytes(length: body.readableBytes) ?? []
        let client = intake.clientAddress(peer: peer, forwardedFor: request.headers[Self.forwardedFor])
        let decision = intake.decide(route: route, body: bytes, gzip: encoding == "gzip",
                                     authorization: request.headers[.authorization], client: client, now: Instant(date: Date()))
        switch decision {
        case .refuse(let refusal):
            return Outcome(status: refusal.status, refusal: refusal)
        case .write(let source, let lines, let suppressed):
            if suppressed > 0 { metrics.suppressed(source: source, messages: suppressed) }
            if lines.isEmpty { return Outcome(status: 200) }
            let result: Result<Void, any Error>? = await withCheckedContinuation { continuation in
                let admission = committer.submit(source: source, lines: lines) { continuation.resume(returning: $0) }
                if admission == .full { continuation.resume(returning: nil) }
            }
            switch result {
            case .none:
                return Outcome(status: 503, refusal: Refusal(status: 503, reason: "queue_full",
                    message: "the collector is busy (its write queue is full); retry later", source: source))
            case .failure(let error):
                logger.error("could not write an archive: \(error)", metadata: ["source": "\(source)"])
                return Outcome(status: 503, refusal: Refusal(status: 503, reason: "disk",
                    message: "the collector could not write to disk; retry later", source: source))
            case .success:
                metrics.accepted(source: source, messages: lines.count, bytes: bytes.count)
                return Outcome(status: 200)
            }
        }
    }

    func preflight(_ request: Request, route: Route, origin: String?) -> Response {
        guard let origin else {
            metrics.request(route: route.rawValue, status: 403)
            return json(.forbidden, Intake.answer(Refusal(status: 403, reason: "origin", message: "this origin may not post here (cors.allowed_origins)")), origin: nil)
        }
        metrics.request(route: route.rawValue, status: 204)
        var response = Response(status: .noContent)
        response.headers[.accessControlAllowOrigin] = origin
        response.headers[.accessControlAllowMethods] = "POST, OPTIONS"
        response.headers[.accessControlAllowHeaders] = request.headers[.accessControlRequestHeaders] ?? "Content-Type, Authorization, Content-Encoding"
        response.headers[.accessControlMaxAge] = "86400"
        response.headers[.vary] = "Origin"
        return response
    }

    func json(_ status: HTTPResponse.Status, _ body: [UInt8], origin: String?) -> Response {
        var response = Response(status: status, body: .init(byteBuffer: ByteBuffer(bytes: body)))
        response.headers[.contentType] = "application/json"
        if let origin {
            response.headers[.accessControlAllowOrigin] = origin
            response.headers[.vary] = "Origin"
        }
        return response
    }

    func plain(_ status: HTTPResponse.Status, _ text: String, allow: String? = nil) -> Response {
        var response = Response(status: status, body: .init(byteBuffer: ByteBuffer(string: text)))
        response.headers[.contentType] = "text/plain; charset=utf-8"
        if let allow { response.headers[.allow] = allow }
        return response
    }
}

/// Stops the committer after the server has stopped taking requests (services shut down in
/// reverse order, the server first): every queued message is written and every archive
/// closed into `segment-logs/` before the process exits.
struct CommitterService: Service {
    let committer: GroupCommitter
    let logger: Logger

    func run() async throws {
        try? await gracefulShutdown()
        logger.info("draining: writing what is queued and closing every archive")
        committer.stop()
    }
}

/// A counting semaphore for the bodies being read: `acquire` waits (in arrival order) while
/// all slots are taken.
actor BodySlots {
    private var free: Int
    private var waiting: [CheckedContinuation<Void, Never>] = []

    init(_ count: Int) {
        free = count
    }

    func acquire() async {
        if free > 0 {
            free -= 1
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    func release() {
        if waiting.isEmpty {
            free += 1
        } else {
            waiting.removeFirst().resume()
        }
    }
}
