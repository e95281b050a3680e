import Dispatch
import Foundation
import Synchronization

/// Group commit: accepted messages wait in a bounded queue; a flush, every
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
        /// zlib's level for each member (1 fastest ... 9 smallest).
        public var gzipLevel: Int32 = 6
        public init() {}
    }

    public enum Admission: Equatable, Sendable { case queued, full }

    /// What the flushing thread reports, for metrics and logs.
    public enum Event: Sendable {
        /// A source's member written and fsynced: its messages, bytes before compression, and
        /// the time from the start of the write to the end of the fsync.
        case flushed(source: String, messages: Int, bytes: Int, seconds: Double)
        /// A source's flush failed: its requests were told so (503).
        case failed(source: String, error: String)
        /// An archive moved into `segment-logs/`.
        case closed(source: String, path: String)
    }

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
    /// Whether `stop` has run (held for the whole of it).
    private let stopping = Mutex(false)
    /// Owned by the flushing thread only.
    private var sinks: [String: ArchiveSink] = [:]
    /// The test seam: each sink's "write"/"fsync" and each request's "ack" or "fail", in order.
    public var observe: (@Sendable (String) -> Void)?
    /// Flushes, failures and closed archives, as they happen (on the flushing thread).
    public var events: (@Sendable (Event) -> Void)?
    /// A test seam for a full disk: while it answers true, every write stops half way and
    /// fails as ENOSPC would.
    public var failWrites: (@Sendable () -> Bool)?

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
    /// Returns the archives a crashed process left open, now finished and in place.
    @discardableResult
    public func start() throws -> [String] {
        let recovered = try ArchiveSink.recover(out: out)
        state.withLock { $0.started = true }
        let thread = Thread { [self] in
            // Flushes start every interval (not an interval after the previous one ended), so a
            // request waits at most one interval plus one flush.
            var next = DispatchTime.now() + .milliseconds(settings.intervalMilliseconds)
            while state.withLock({ $0.running }) {
                _ = wake.wait(timeout: next)
                let started = DispatchTime.now()
                flush()
                next = max(started + .milliseconds(settings.intervalMilliseconds), DispatchTime.now())
            }
            flush()
            closeAll()
            stopped.signal()
        }
        thread.name = "segment-collector flush"
        thread.start()
        return recovered
    }

    /// Refuses new requests, writes every waiting one, closes every archive, then returns.
    /// Safe to call more than once and from several threads: later calls return once the
    /// first has finished.
    public func stop() {
        stopping.withLock { finished in
            guard !finished else { return }
            finished = true
            let started = state.withLock { state -> Bool in
                state.running = false
                return state.started
            }
            guard started else {
                flush()
                closeAll()
                return
            }
            wake.signal()
            stopped.wait()
        }
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
            let sink = sink(for: source)
            if sink.isOpen && ArchiveSink.dayStart(now) != sink.day { close(sink, source: source) }
            let lines = requests.flatMap(\.lines)
            let started = DispatchTime.now().uptimeNanoseconds
            let result: Result<Void, any Error>
            do {
                try sink.append(lines, nowMilliseconds: now)
                let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
                events?(.flushed(source: source, messages: lines.count, bytes: requests.reduce(0) { $0 + $1.bytes }, seconds: seconds))
                result = .success(())
            } catch {
                events?(.failed(source: source, error: "\(error)"))
                result = .failure(error)
            }
            for request in requests {
                observe?(result.isSuccess ? "ack" : "fail")
                request.done(result)
            }
        }
        // Archives close past their size or age, also when their source has gone quiet.
        for (source, sink) in sinks.sorted(by: { $0.key < $1.key }) where sink.isOpen {
            if sink.bytes >= settings.archiveMaxBytes || now - sink.openedAt >= settings.archiveMaxAgeSeconds * 1000 {
                close(sink, source: source)
            }
        }
    }

    private func sink(for source: String) -> ArchiveSink {
        if let sink = sinks[source] { return sink }
        let sink = ArchiveSink(out: out, source: source, gzipLevel: settings.gzipLevel)
        sink.observe = observe.map { observe in { observe("\(source) \($0)") } }
        sink.failWrites = failWrites
        sinks[source] = sink
        return sink
    }

    private func close(_ sink: ArchiveSink, source: String) {
        do {
            if let path = try sink.close() { events?(.closed(source: source, path: path)) }
        } catch {
            // The archive stays open in .incoming/: the next close (or a restart) places it.
            events?(.failed(source: source, error: "\(error)"))
        }
    }

    private func closeAll() {
        for (source, sink) in sinks.sorted(by: { $0.key < $1.key }) { close(sink, source: source) }
        sinks.removeAll()
    }
}

extension Result {
    var isSuccess: Bool { if case .success = self { return true } else { return false } }
}
