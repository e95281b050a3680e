import Dispatch
import Synchronization

/// Runs `body(i)` for `0..<count` on `jobs` Dispatch queues, handing out indices in order
/// (file i always starts before file i + 1, which the ordered writer relies on).
/// Returns a group to wait on.
package func startWorkers(jobs: Int, count: Int, label: String, body: @escaping @Sendable (Int) -> Void) -> DispatchGroup {
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
package final class Channel<Element: Sendable>: Sendable {
    private let items = Mutex<[Element]>([])
    private let free: DispatchSemaphore
    private let ready = DispatchSemaphore(value: 0)
    private let closed = Atomic<Bool>(false)

    package init(capacity: Int) {
        // Created at 0 and raised: libdispatch traps when a semaphore is freed below the value
        // it was created with, which a channel abandoned mid-file (a stopped run) would be.
        free = DispatchSemaphore(value: 0)
        for _ in 0..<capacity { free.signal() }
    }

    /// Returns false (dropping the element) once the channel is closed.
    @discardableResult
    package func send(_ element: Element) -> Bool {
        while free.wait(timeout: .now() + .milliseconds(200)) == .timedOut {
            if closed.load(ordering: .relaxed) { return false }
        }
        if closed.load(ordering: .relaxed) { return false }
        items.withLock { $0.append(element) }
        ready.signal()
        return true
    }

    package func receive() -> Element {
        ready.wait()
        return take()
    }

    /// The next element if one is waiting, without blocking.
    package func tryReceive() -> Element? {
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
    package func finish() {
        done.signal()
    }

    /// Waits until the consumer calls `finish` (or the channel is closed), so that a producer
    /// whose whole file fit in the channel does not run ahead to the next file: in flight are
    /// at most the files the producers are on, `capacity` elements each.
    package func waitUntilFinished() {
        while done.wait(timeout: .now() + .milliseconds(200)) == .timedOut {
            if closed.load(ordering: .relaxed) { return }
        }
    }

    /// Stops senders: they return at once from now on.
    package func close() {
        closed.store(true, ordering: .relaxed)
    }
}

/// Set once when the run must stop; workers check it between lines.
package final class StopFlag: Sendable {
    private let value = Atomic<Bool>(false)
    package init() {}
    package var isSet: Bool { value.load(ordering: .relaxed) }
    package func set() { value.store(true, ordering: .relaxed) }
}

/// A value shared between threads behind a lock.
package final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    package init(_ value: Value) { mutex = Mutex(value) }
    package func withLock<R>(_ body: (inout Value) -> R) -> R { mutex.withLock { body(&$0) } }
}

/// Nanoseconds on the monotonic clock.
@inline(__always) package func monotonicNanoseconds() -> UInt64 {
    DispatchTime.now().uptimeNanoseconds
}

