import Dispatch
import Foundation
import Synchronization

/// Group commit (issue 13): accepted messages wait in a bounded queue; a flush, every
/// `intervalMilliseconds` or as soon as `flushBytes` wait, appends each source's waiting lines to its
/// archive as one gzip member, fsyncs, and only then tells every request in that flush that
/// its messages are durable. A queue holding `queueLimitBytes` refuses more (the server answers
/// 503 with Retry-After) instead of growing.
public final class GroupCommitter: @unchecked Sendable {
    public struct Settings: Sendable {
        public var intervalMilliseconds = 20
        public var flushBytes = 1 << 20
        public var queueLimitBytes = 64 << 20
        /// An archive closes (moves into the S3 layout) past this size or age.
        public var archiveMaxBytes: Int64 = 64 << 20
        public var archiveMaxAgeSeconds: Int64 = 300
        public init() {}
    }

    public enum Admission: Equatable, Sendable { case queued, full }

    private struct Pending {
        var lines: [[UInt8]]
        var bytes: Int
        var done: @Sendable (Result<Void, any Error>) -> Void
    }

    private struct State {
        var pending: [String: [Pending]] = [:]
        var bytes = 0
        var running = true
        var started = false
    }

    public let out: String
    public let settings: Settings
    private let clock: @Sendable () -> Int64
    private let state = Mutex(State())
    private let wake = DispatchSemaphore(value: 0)
    private let stopped = DispatchSemaphore(value: 0)
    /// Owned by the flushing thread only.
    private var sinks: [String: ArchiveSink] = [:]
    /// The test seam: each sink's "write"/"fsync" and each request's "ack" or "fail", in order.
    public var observe: (@Sendable (String) -> Void)?

    public init(out: String, settings: Settings = Settings(), clock: @escaping @Sendable () -> Int64 = {
        Int64(Date().timeIntervalSince1970 * 1000)
    }) {
        self.out = out
        self.settings = settings
        self.clock = clock
    }

    /// Queues a request's lines for `source`; `done` is called once they are durable (or the
    /// flush failed). Returns `.full` (and never calls `done`) when the queue is full.
    public func submit(source: String, lines: [[UInt8]], done: @escaping @Sendable (Result<Void, any Error>) -> Void) -> Admission {
        let size = lines.reduce(0) { $0 + $1.count + 1 }
        let (admitted, flushNow) = state.withLock { state -> (Bool, Bool) in
            guard state.running, state.bytes + size <= settings.queueLimitBytes else { return (false, false) }
            state.pending[source, default: []].append(Pending(lines: lines, bytes: size, done: done))
            state.bytes += size
            return (true, state.bytes >= settings.flushBytes)
        }
        guard admitted else { return .full }
        if flushNow { wake.signal() }
        return .queued
    }

    /// Starts the flushing thread: it finishes what a crashed process left, then flushes every
    /// interval (or sooner, when enough waits) until `stop`.
    public func start() throws {
        try ArchiveSink.recover(out: out)
        state.withLock { $0.started = true }
        let thread = Thread { [self] in
            while state.withLock({ $0.running }) {
                _ = wake.wait(timeout: .now() + .milliseconds(settings.intervalMilliseconds))
                flush()
            }
            flush()
            for sink in sinks.values { try? sink.close() }
            sinks.removeAll()
            stopped.signal()
        }
        thread.name = "segment-collector flush"
        thread.start()
    }

    /// Refuses new requests, writes every waiting one, closes every archive, then returns.
    public func stop() {
        let started = state.withLock { state -> Bool in
            state.running = false
            return state.started
        }
        guard started else {
            flush()
            for sink in sinks.values { try? sink.close() }
            sinks.removeAll()
            return
        }
        wake.signal()
        stopped.wait()
    }

    /// Waiting bytes (the queue depth for metrics).
    public var queuedBytes: Int { state.withLock { $0.bytes } }

    /// One flush: every source's waiting lines as one member, fsynced, then the acks.
    func flush() {
        let batch = state.withLock { state -> [String: [Pending]] in
            let taken = state.pending
            state.pending.removeAll()
            state.bytes = 0
            return taken
        }
        let now = clock()
        for (source, requests) in batch.sorted(by: { $0.key < $1.key }) {
            let sink = sinks[source] ?? ArchiveSink(out: out, source: source)
            sink.observe = observe.map { observe in { observe("\(source) \($0)") } }
            sinks[source] = sink
            let result: Result<Void, any Error>
            do {
                try sink.append(requests.flatMap(\.lines), nowMilliseconds: now)
                if sink.bytes >= settings.archiveMaxBytes || now - sink.openedAt >= settings.archiveMaxAgeSeconds * 1000 {
                    try sink.close()
                }
                result = .success(())
            } catch {
                result = .failure(error)
            }
            for request in requests {
                observe?(result.isSuccess ? "ack" : "fail")
                request.done(result)
            }
        }
    }
}

extension Result {
    var isSuccess: Bool { if case .success = self { return true } else { return false } }
}
