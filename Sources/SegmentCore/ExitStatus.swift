/// Exit statuses (sysexits where one fits), as README and `--help` document them.
public enum ExitStatus {
    public static let ok: Int32 = 0
    public static let failure: Int32 = 1
    public static let usage: Int32 = 64
    /// A file partial or failed (or, with --strict, a rejected line).
    public static let dataProblem: Int32 = 65
    /// The warehouse, or the run's own files beside it, cannot be written.
    public static let storage: Int32 = 74
    /// Another program holds the warehouse's lock.
    public static let locked: Int32 = 75
    /// The warehouse's server or the archives' store does not exist: no such database, bucket
    /// or prefix (EX_NOINPUT).
    public static let noInput: Int32 = 66
    /// No server or store answers (EX_UNAVAILABLE).
    public static let unavailable: Int32 = 69
    /// A password, credentials or a permission was refused (EX_NOPERM).
    public static let noPermission: Int32 = 77
    /// 128 + the signal, as shells report a process stopped by it.
    public static func interrupted(by signal: Int32) -> Int32 { 128 + signal }
}
