import SegmentCore

/// A shell-style pattern: `*` (any run of characters; within one path segment when the
/// pattern is a path), `**` (any run, `/` included), `?` (one character), `[abc]`, `[a-z]`,
/// `[!abc]`, and `\x` for a literal `x`. Matching is on Unicode scalars, case-sensitive.
public struct Glob: Sendable, Hashable, CustomStringConvertible {
    package enum Token: Sendable, Hashable {
        case literal(Unicode.Scalar)
        case any            // ?
        case star           // *
        case globstar       // **
        case set(negated: Bool, ranges: [ClosedRange<Unicode.Scalar>])
    }

    public let pattern: String
    /// Whether `*` and `?` stop at `/` (path patterns) or match it (event names).
    public let pathAware: Bool
    package let tokens: [Token]

    public var description: String { pattern }

    /// Why a pattern is not a glob, and the 1-based character where it goes wrong.
    public struct SyntaxError: Error, Sendable, CustomStringConvertible {
        public var message: String
        public var offset: Int
        public var description: String { message }
    }

    public init(_ pattern: String, pathAware: Bool = true) throws(SyntaxError) {
        self.pattern = pattern
        self.pathAware = pathAware
        var tokens: [Token] = []
        let scalars = Array(pattern.unicodeScalars)
        var i = 0
        while i < scalars.count {
            let c = scalars[i]
            switch c {
            case "*":
                if i + 1 < scalars.count && scalars[i + 1] == "*" {
                    tokens.append(.globstar)
                    i += 2
                    while i < scalars.count && scalars[i] == "*" { i += 1 }
                    continue
                }
                tokens.append(.star)
            case "?":
                tokens.append(.any)
            case "\\":
                guard i + 1 < scalars.count else {
                    throw SyntaxError(message: "a trailing backslash escapes nothing", offset: i + 1)
                }
                i += 1
                tokens.append(.literal(scalars[i]))
            case "[":
                let start = i
                i += 1
                var negated = false
                if i < scalars.count && (scalars[i] == "!" || scalars[i] == "^") {
                    negated = true
                    i += 1
                }
                var ranges: [ClosedRange<Unicode.Scalar>] = []
                var first = true
                while i < scalars.count && (scalars[i] != "]" || first) {
                    first = false
                    var low = scalars[i]
                    if low == "\\" && i + 1 < scalars.count { i += 1; low = scalars[i] }
                    if i + 2 < scalars.count && scalars[i + 1] == "-" && scalars[i + 2] != "]" {
                        let high = scalars[i + 2]
                        guard low <= high else {
                            throw SyntaxError(message: "the range \(low)-\(high) in [...] runs backwards", offset: i + 1)
                        }
                        ranges.append(low...high)
                        i += 3
                    } else {
                        ranges.append(low...low)
                        i += 1
                    }
                }
                guard i < scalars.count else {
                    throw SyntaxError(message: "'[' at character \(start + 1) is never closed by ']'", offset: start + 1)
                }
                tokens.append(.set(negated: negated, ranges: ranges))
            default:
                tokens.append(.literal(c))
            }
            i += 1
        }
        self.tokens = tokens
    }

    /// Whether the pattern has any wildcard (a plain path is looked up, not searched for).
    public var hasWildcards: Bool {
        tokens.contains { if case .literal = $0 { return false } else { return true } }
    }

    /// The leading part of a path pattern made of whole literal segments: where to search.
    public var literalPrefix: String {
        var prefix = String.UnicodeScalarView()
        var segment = String.UnicodeScalarView()
        for token in tokens {
            guard case .literal(let c) = token else { break }
            segment.append(c)
            if c == "/" {
                prefix.append(contentsOf: segment)
                segment = String.UnicodeScalarView()
            }
        }
        if !hasWildcards { return pattern }
        return String(prefix)
    }

    public func matches(_ text: String) -> Bool {
        let scalars = Array(text.unicodeScalars)
        var memo = [Int8](repeating: -1, count: (tokens.count + 1) * (scalars.count + 1))
        return match(0, 0, scalars, &memo)
    }

    private func match(_ t: Int, _ s: Int, _ text: [Unicode.Scalar], _ memo: inout [Int8]) -> Bool {
        let key = t * (text.count + 1) + s
        if memo[key] >= 0 { return memo[key] == 1 }
        let result: Bool
        if t == tokens.count {
            result = s == text.count
        } else {
            switch tokens[t] {
            case .literal(let c):
                result = s < text.count && text[s] == c && match(t + 1, s + 1, text, &memo)
            case .any:
                result = s < text.count && !(pathAware && text[s] == "/") && match(t + 1, s + 1, text, &memo)
            case .set(let negated, let ranges):
                result = s < text.count && !(pathAware && text[s] == "/")
                    && ranges.contains { $0.contains(text[s]) } != negated && match(t + 1, s + 1, text, &memo)
            case .star, .globstar:
                let crossesSlash: Bool
                if case .globstar = tokens[t] { crossesSlash = true } else { crossesSlash = !pathAware }
                // `**/` also matches no directory at all.
                if case .globstar = tokens[t], t + 1 < tokens.count, case .literal("/") = tokens[t + 1],
                   match(t + 2, s, text, &memo) {
                    result = true
                    break
                }
                var i = s
                var found = false
                while true {
                    if match(t + 1, i, text, &memo) { found = true; break }
                    if i == text.count || (!crossesSlash && text[i] == "/") { break }
                    i += 1
                }
                result = found
            }
        }
        memo[key] = result ? 1 : 0
        return result
    }
}
