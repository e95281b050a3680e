import Dispatch
import Synchronization
import SegmentCore

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
