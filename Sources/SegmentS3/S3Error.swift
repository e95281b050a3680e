import CCurl
import Foundation
import SegmentCore

/// Why an S3 request did not give what was asked, with the exit status it stands for
/// (sysexits): 77 the credentials are refused or lack a permission, 66 no such bucket, prefix or
/// object, 69 the store does not answer (after the retries), 1 anything else. The message names
/// the bucket and the cause, never a key.
public struct S3Error: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        case permission
        case missing
        case unavailable
        case other
    }

    public var kind: Kind
    public var message: String
    public var description: String { message }

    package init(kind: Kind, message: String) {
        self.kind = kind
        self.message = message
    }

    public var exitStatus: Int32 {
        switch kind {
        case .permission: return ExitStatus.noPermission
        case .missing: return ExitStatus.noInput
        case .unavailable: return ExitStatus.unavailable
        case .other: return ExitStatus.failure
        }
    }
}

/// How often and how long a request that met a fault worth another try is tried again: a
/// connection dropped or timed out, 500, 502, 503 (SlowDown), 504. The waits grow
/// exponentially, each wait drawn between half and all of its ceiling ("equal jitter").
public struct S3Retry: Sendable {
    public var attempts: Int
    public var firstDelay: Double
    public var maxDelay: Double

    public init(attempts: Int = 6, firstDelay: Double = 0.25, maxDelay: Double = 10) {
        self.attempts = attempts
        self.firstDelay = firstDelay
        self.maxDelay = maxDelay
    }

    func delay(afterAttempt attempt: Int) -> Double {
        let ceiling = min(maxDelay, firstDelay * Double(1 << min(attempt, 20)))
        return Double.random(in: ceiling / 2...ceiling)
    }
}

/// Reads an S3 bucket (or an S3-compatible store) with libcurl: ListObjectsV2, page after
/// page, and GET of whole objects streamed to the caller in blocks, resumed with `Range` (and
/// `If-Match` on the ETag, so a resumed object is the same object) when a connection drops.
/// Every request is signed with Signature V4. Blocking, like the rest of the read stage: each
/// worker thread reads its own object, with a connection kept per thread.
