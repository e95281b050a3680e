
/// A transaction that failed and could not be rolled back: the connection may still hold it.
/// Both errors are named; `cause` decides how the run ends (a full disk is still a full disk).
public struct RollbackFailure: Error, CustomStringConvertible {
    public var cause: any Error
    public var rollback: any Error
    public var description: String { "\(cause); then the rollback failed too: \(rollback)" }

    package init(cause: any Error, rollback: any Error) {
        self.cause = cause
        self.rollback = rollback
    }
}
