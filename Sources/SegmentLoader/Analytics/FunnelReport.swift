import Foundation
import SegmentCore
import SegmentWarehouse

/// `segment-loader funnel`: a funnel's people per step, read from an existing warehouse (no lock).
public enum FunnelReport {
    public static func people(database: String, schema: String?, funnel: Funnel) throws -> [Int64] {
        try funnel.run(try WarehouseLocation(database, schema: schema).reading())
    }

    /// `7d`, `36h`, `90m`, or a number of days.
    public static func window(_ text: String) -> Int? {
        let units: [Character: Int] = ["d": 86_400, "h": 3_600, "m": 60, "s": 1]
        if let unit = text.last, let seconds = units[unit], let n = Int(text.dropLast()), n > 0 { return n * seconds }
        if let n = Int(text), n > 0 { return n * 86_400 }
        return nil
    }

    /// A UTC day `YYYY-MM-DD`, or nil when the text is not one.
    public static func day(_ text: String) -> String? {
        guard text.utf8.count == 10, let instant = Timestamp.parse(text + "T00:00:00Z") else { return nil }
        return String(Timestamp.format(instant).prefix(10)) == text ? text : nil
    }

    public static func render(_ funnel: Funnel, people: [Int64], database: String) -> String {
        let seconds = funnel.windowSeconds
        let window = seconds % 86_400 == 0 ? "\(seconds / 86_400) day\(seconds == 86_400 ? "" : "s")"
            : seconds % 3_600 == 0 ? "\(seconds / 3_600) hours" : "\(seconds / 60) minutes"
        let range = switch (funnel.since, funnel.until) {
        case (nil, nil): "at any time"
        case (let a?, nil): "from \(a) (UTC)"
        case (nil, let b?): "until \(b) (UTC)"
        case (let a?, let b?): "from \(a) to \(b) (UTC)"
        }
        var out = ["funnel in \(database): people who did step 1 \(range), then each step at or after the one before, within \(window) of their first step 1"]
        let width = funnel.steps.map { $0.description.count }.max() ?? 0
        let numbers = people.map { String($0) }
        let numberWidth = numbers.map(\.count).max() ?? 0
        for (i, step) in funnel.steps.enumerated() {
            let name = step.description.padding(toLength: width, withPad: " ", startingAt: 0)
            var line = "  \(i + 1). \(name)  \(String(repeating: " ", count: numberWidth - numbers[i].count))\(numbers[i]) people"
            if i > 0 {
                func share(_ a: Int64, _ b: Int64) -> String { b == 0 ? "-" : String(format: "%.1f%%", Double(a) * 100 / Double(b)) }
                line += "  \(share(people[i], people[0])) of step 1" + (i > 1 ? ", \(share(people[i], people[i - 1])) of step \(i)" : "")
            }
            out.append(line)
        }
        return out.joined(separator: "\n")
    }
}
