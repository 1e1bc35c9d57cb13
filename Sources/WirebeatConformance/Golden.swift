import Foundation
import WirebeatCore

/// A golden file: the events a capture must give, with the sha256 of that capture.
/// Canonical form: sorted keys, two-space indentation, trailing newline — so a diff of two
/// goldens is a diff of behaviour, never of formatting.
public struct Golden: Equatable {
    public var capture: String
    public var sha256: String
    public var plugin: String
    public var events: [JSONValue]

    public init(capture: String, sha256: String, plugin: String, events: [JSONValue]) {
        self.capture = capture
        self.sha256 = sha256
        self.plugin = plugin
        self.events = events
    }

    public var canonicalText: String {
        let doc = JSONValue.object([
            ("capture", .string(capture)),
            ("events", .array(events)),
            ("plugin", .string(plugin)),
            ("sha256", .string(sha256)),
        ])
        return JSONWriter.pretty(doc) + "\n"
    }

    public static func parse(_ text: String, path: String) throws -> Golden {
        let value: JSONValue
        do { value = try JSONParser.parse(text) } catch { throw CorpusError("\(path): \(error)") }
        guard case .string(let capture)? = value["capture"], case .string(let sha)? = value["sha256"],
              case .string(let plugin)? = value["plugin"], case .array(let events)? = value["events"] else {
            throw CorpusError("\(path): not a golden file (needs capture, sha256, plugin, events)")
        }
        return Golden(capture: capture, sha256: sha, plugin: plugin, events: events)
    }

    public static func load(path: String) throws -> Golden? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        guard let data = FileManager.default.contents(atPath: path) else { throw CorpusError("\(path): cannot read") }
        return try parse(String(decoding: data, as: UTF8.self), path: path)
    }

    public func write(to path: String) throws {
        let dir = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try canonicalText.write(toFile: path, atomically: true, encoding: .utf8)
    }
}

/// The outcome of checking one capture against its golden.
public enum GoldenCheck {
    case match
    case missing(hint: String)
    case captureChanged(expected: String, actual: String)
    case mismatch(diff: String)
    case notCanonical

    public var passed: Bool { if case .match = self { return true }; return false }

    public var message: String {
        switch self {
        case .match: return "ok"
        case .missing(let hint): return "no golden file; create it with: \(hint)"
        case .captureChanged(let expected, let actual):
            return "the golden was made from a capture with sha256 \(expected), this one is \(actual): re-record the golden on purpose (wirebeat golden update) or restore the capture"
        case .mismatch(let diff): return "output differs from the golden:\n\(diff)"
        case .notCanonical: return "golden file is not in canonical form (run wirebeat golden update to rewrite it)"
        }
    }
}

public enum GoldenWorkflow {
    /// Compares a replay of `entry` with its golden.
    public static func verify(_ entry: CorpusEntry, registry: PluginRegistry) throws -> GoldenCheck {
        let sha = try entry.captureSHA256()
        if let expected = entry.expectedSHA256, expected != sha {
            throw CorpusError("\(entry.capturePath): sha256 \(sha) does not match the manifest's \(expected)")
        }
        guard let golden = try Golden.load(path: entry.goldenPath) else {
            return .missing(hint: "wirebeat golden update \(entry.name)  (or WIREBEAT_RECORD=missing swift test)")
        }
        if golden.sha256 != sha { return .captureChanged(expected: golden.sha256, actual: sha) }
        let events = try entry.replay(registry: registry)
        if events != golden.events {
            return .mismatch(diff: EventDiff.describe(expected: golden.events, actual: events))
        }
        let onDisk = String(decoding: FileManager.default.contents(atPath: entry.goldenPath) ?? Data(), as: UTF8.self)
        if onDisk != golden.canonicalText { return .notCanonical }
        return .match
    }

    /// Writes the golden from a fresh replay. Returns the diff against the previous golden
    /// ("" when unchanged, or a note when new) so the maintainer reads what changed.
    @discardableResult
    public static func update(_ entry: CorpusEntry, registry: PluginRegistry) throws -> String {
        let sha = try entry.captureSHA256()
        if let expected = entry.expectedSHA256, expected != sha {
            throw CorpusError("\(entry.capturePath): sha256 \(sha) does not match the manifest's \(expected)")
        }
        let events = try entry.replay(registry: registry)
        let golden = Golden(capture: entry.captureReference, sha256: sha, plugin: entry.plugin, events: events)
        let previous = try? Golden.load(path: entry.goldenPath)
        try golden.write(to: entry.goldenPath)
        guard let previous else { return "new golden with \(events.count) events" }
        if previous == golden { return "" }
        return EventDiff.describe(expected: previous.events, actual: events)
    }
}

/// Readable differences between two event lists: counts, then a unified diff of the first
/// differing event's pretty JSON.
public enum EventDiff {
    public static func describe(expected: [JSONValue], actual: [JSONValue], context: Int = 3) -> String {
        var out: [String] = []
        if expected.count != actual.count {
            out.append("expected \(expected.count) events, got \(actual.count)")
        }
        let common = min(expected.count, actual.count)
        guard let index = (0..<common).first(where: { expected[$0] != actual[$0] })
                ?? (expected.count != actual.count ? common : nil) else {
            return out.joined(separator: "\n")
        }
        let a = index < expected.count ? JSONWriter.pretty(expected[index]).split(separator: "\n").map(String.init) : []
        let b = index < actual.count ? JSONWriter.pretty(actual[index]).split(separator: "\n").map(String.init) : []
        out.append("first difference at event #\(index) (--- golden, +++ actual):")
        out.append(contentsOf: unifiedDiff(a, b, context: context))
        return out.joined(separator: "\n")
    }

    /// A line diff (LCS) printed with `context` lines around each change.
    public static func unifiedDiff(_ a: [String], _ b: [String], context: Int) -> [String] {
        let n = a.count, m = b.count
        var lcs = [[Int]](repeating: [Int](repeating: 0, count: m + 1), count: n + 1)
        for i in stride(from: n - 1, through: 0, by: -1) {
            for j in stride(from: m - 1, through: 0, by: -1) {
                lcs[i][j] = a[i] == b[j] ? lcs[i + 1][j + 1] + 1 : max(lcs[i + 1][j], lcs[i][j + 1])
            }
        }
        var ops: [(Character, String)] = []
        var i = 0, j = 0
        while i < n || j < m {
            if i < n && j < m && a[i] == b[j] { ops.append((" ", a[i])); i += 1; j += 1 }
            else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) { ops.append(("+", b[j])); j += 1 }
            else { ops.append(("-", a[i])); i += 1 }
        }
        var keep = [Bool](repeating: false, count: ops.count)
        for (k, op) in ops.enumerated() where op.0 != " " {
            for x in max(0, k - context)...min(ops.count - 1, k + context) { keep[x] = true }
        }
        var lines: [String] = []
        var skipped = false
        for (k, op) in ops.enumerated() {
            if keep[k] { lines.append("\(op.0)\(op.1)"); skipped = false }
            else if !skipped { lines.append("@@"); skipped = true }
        }
        return lines
    }
}
