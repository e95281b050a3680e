/// The folders of Segment's S3 layout (`<source-id>/<day>/<name>`).
public enum DayFolder {
    /// `YYYY-MM-DD` when a folder's name is a day of Segment's layout: UTC midnight in epoch
    /// milliseconds.
    public static func day(of name: some StringProtocol) -> String? {
        guard name.count >= 10, name.count <= 14, name.allSatisfy(\.isASCII), name.allSatisfy(\.isNumber),
              let ms = Int64(name), ms % 86_400_000 == 0 else { return nil }
        return Timestamp.day(fromEpochMilliseconds: ms)
    }
}
