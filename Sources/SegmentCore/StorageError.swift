/// Why a database cannot be used as a warehouse.
public struct WarehouseError: Error, Sendable, CustomStringConvertible {
    public var message: String
    /// The warehouse or its lock file cannot be written (permissions, read-only file system,
    /// full disk), as opposed to a database that is refused.
    public var storage = false
    public var description: String { message }

    public init(message: String, storage: Bool = false) {
        self.message = message
        self.storage = storage
    }
}
