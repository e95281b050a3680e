import Dispatch
import Synchronization

/// Runs `body(i)` for `0..<count` on `jobs` Dispatch queues, handing out indices in order
/// (file i always starts before file i + 1, which the ordered writer relies on).
/// Returns a group to wait on.
func startWorkers(jobs: Int, count: Int, label: String, body: @escaping @Sendable (Int) -> Void) -> DispatchGroup {
    let group = DispatchGroup()
    let shared = NextIndex()
    for worker in 0..<max(1, min(jobs, count)) {
        // Serial queues are overcommitting: each worker gets its own thread even while
        // another worker is blocked on a full channel.
        let queue = DispatchQueue(label: "segment-loader.\(label).\(worker)")
        queue.async(group: group) {
            while true {
                let i = shared.take()
                if i >= count { return }
                body(i)
            }
        }
    }
    return group
}

/// A counter shared by the workers.
final class NextIndex: Sendable {
    private let value = Atomic<Int>(0)
    func take() -> Int { value.add(1, ordering: .relaxed).oldValue }
}

/// A bounded, single-consumer queue between one worker and the writer. `send` blocks while
/// the queue is full, so a file read ahead of the writer holds at most `capacity` chunks.
final class Channel<Element: Sendable>: Sendable {
    private let items = Mutex<[Element]>([])
    private let free: DispatchSemaphore
    private let ready = DispatchSemaphore(value: 0)
    private let closed = Atomic<Bool>(false)

    init(capacity: Int) {
        // Created at 0 and raised: libdispatch traps when a semaphore is freed below the value
        // it was created with, which a channel abandoned mid-file (a stopped run) would be.
        free = DispatchSemaphore(value: 0)
        for _ in 0..<capacity { free.signal() }
    }

    /// Returns false (dropping the element) once the channel is closed.
    @discardableResult
    func send(_ element: Element) -> Bool {
        while free.wait(timeout: .now() + .milliseconds(200)) == .timedOut {
            if closed.load(ordering: .relaxed) { return false }
        }
        if closed.load(ordering: .relaxed) { return false }
        items.withLock { $0.append(element) }
        ready.signal()
        return true
    }

    func receive() -> Element {
        ready.wait()
        return take()
    }

    /// The next element if one is waiting, without blocking.
    func tryReceive() -> Element? {
        guard ready.wait(timeout: .now()) == .success else { return nil }
        return take()
    }

    /// The first element, which `ready` said is there; its place is free again.
    private func take() -> Element {
        let element = items.withLock { $0.removeFirst() }
        free.signal()
        return element
    }

    private let done = DispatchSemaphore(value: 0)

    /// The consumer took the last element it wants from this channel.
    func finish() {
        done.signal()
    }

    /// Waits until the consumer calls `finish` (or the channel is closed), so that a producer
    /// whose whole file fit in the channel does not run ahead to the next file: in flight are
    /// at most the files the producers are on, `capacity` elements each.
    func waitUntilFinished() {
        while done.wait(timeout: .now() + .milliseconds(200)) == .timedOut {
            if closed.load(ordering: .relaxed) { return }
        }
    }

    /// Stops senders: they return at once from now on.
    func close() {
        closed.store(true, ordering: .relaxed)
    }
}

/// Set once when the run must stop; workers check it between lines.
final class StopFlag: Sendable {
    private let value = Atomic<Bool>(false)
    var isSet: Bool { value.load(ordering: .relaxed) }
    func set() { value.store(true, ordering: .relaxed) }
}

/// A value shared between threads behind a lock.
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }
    func withLock<R>(_ body: (inout Value) -> R) -> R { mutex.withLock { body(&$0) } }
}

/// Nanoseconds on the monotonic clock.
@inline(__always) func monotonicNanoseconds() -> UInt64 {
    DispatchTime.now().uptimeNanoseconds
}

/// CPU time per stage, summed over all threads (nanoseconds).
final class StageTimes: Sendable {
    private let inflate = Atomic<UInt64>(0)
    private let parse = Atomic<UInt64>(0)
    private let write = Atomic<UInt64>(0)

    func add(inflate nanos: UInt64) { inflate.add(nanos, ordering: .relaxed) }
    func add(parse nanos: UInt64) { parse.add(nanos, ordering: .relaxed) }
    func add(write nanos: UInt64) { write.add(nanos, ordering: .relaxed) }

    var seconds: (inflate: Double, parse: Double, write: Double) {
        (Double(inflate.load(ordering: .relaxed)) / 1e9, Double(parse.load(ordering: .relaxed)) / 1e9,
         Double(write.load(ordering: .relaxed)) / 1e9)
    }
}

/// Asks a run to stop: set from a signal handler, checked between lines while scanning and
/// between files while loading (the file being written still commits).
public final class StopRequest: Sendable {
    private let signal = Atomic<Int32>(0)
    public init() {}
    public var isSet: Bool { signal.load(ordering: .relaxed) != 0 }
    /// The signal that asked, or 0.
    public var signalNumber: Int32 { signal.load(ordering: .relaxed) }
    public func set(signal number: Int32) { signal.store(number, ordering: .relaxed) }
}

/// How far a run has got, for a progress display: read from another thread at any time.
public final class LoadProgress: Sendable {
    public enum Phase: Int, Sendable {
        case starting, scanning, loading
    }

    private let phaseValue = Atomic<Int>(0)
    private let filesTotalValue = Atomic<Int>(0)
    private let filesDoneValue = Atomic<Int>(0)
    private let bytesTotalValue = Atomic<Int64>(0)
    private let bytesDoneValue = Atomic<Int64>(0)
    private let messagesValue = Atomic<Int64>(0)
    private let phaseStartedValue = Atomic<UInt64>(0)

    public init() {}

    func begin(_ phase: Phase, files: Int, bytes: Int64) {
        filesTotalValue.store(files, ordering: .relaxed)
        filesDoneValue.store(0, ordering: .relaxed)
        bytesTotalValue.store(bytes, ordering: .relaxed)
        bytesDoneValue.store(0, ordering: .relaxed)
        phaseStartedValue.store(monotonicNanoseconds(), ordering: .relaxed)
        phaseValue.store(phase.rawValue, ordering: .relaxed)
    }

    func add(bytes: Int64, messages: Int64 = 0) {
        bytesDoneValue.add(bytes, ordering: .relaxed)
        messagesValue.add(messages, ordering: .relaxed)
    }
    func fileDone() { filesDoneValue.add(1, ordering: .relaxed) }

    public var phase: Phase { Phase(rawValue: phaseValue.load(ordering: .relaxed)) ?? .starting }
    public var filesTotal: Int { filesTotalValue.load(ordering: .relaxed) }
    public var filesDone: Int { filesDoneValue.load(ordering: .relaxed) }
    /// Archive (compressed) bytes of this phase, and how many have been read.
    public var bytesTotal: Int64 { bytesTotalValue.load(ordering: .relaxed) }
    public var bytesDone: Int64 { min(bytesDoneValue.load(ordering: .relaxed), bytesTotal) }
    /// Messages the writer has handled.
    public var messages: Int64 { messagesValue.load(ordering: .relaxed) }
    public var phaseSeconds: Double { Double(monotonicNanoseconds() &- phaseStartedValue.load(ordering: .relaxed)) / 1e9 }
}
