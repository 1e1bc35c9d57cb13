import Foundation
import WirebeatCore

/// Compares what a plugin extracts with tshark's dissection of the same capture, using the
/// plugin's `DissectorCrossCheck` (records compared as multisets).
public enum TsharkCrossCheck {
    public struct Outcome: Sendable, CustomStringConvertible {
        public let capture: String
        public var agreed = 0
        /// Records the plugin produced that tshark did not.
        public var onlyInPlugin: [String] = []
        /// Records tshark produced that the plugin did not.
        public var onlyInTshark: [String] = []
        public var agrees: Bool { onlyInPlugin.isEmpty && onlyInTshark.isEmpty }
        public var description: String {
            var lines = ["\(capture): \(agreed) records agree" + (agrees ? "" : ", disagreements:")]
            lines += onlyInPlugin.map { "  wirebeat only: \($0)" }
            lines += onlyInTshark.map { "  tshark only:   \($0)" }
            return lines.joined(separator: "\n")
        }
    }

    /// Path of tshark, or nil when it is not installed.
    public static let tsharkPath: String? = {
        let paths = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
        for dir in paths + ["/usr/bin", "/usr/local/bin"] {
            let path = "\(dir)/tshark"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }()

    /// The cross-check of the plugin replaying `entry`, or nil when the plugin declares none.
    public static func spec(for entry: CorpusEntry, registry: PluginRegistry) throws -> (DissectorCrossCheck, LoadedPlugin)? {
        guard let plugin = try entry.loadPlugins(registry: registry).first,
              let comparable = type(of: plugin.instance) as? any DissectorComparable.Type else { return nil }
        return (comparable.crossCheck, plugin)
    }

    /// Runs tshark and the plugin on `entry`; nil when tshark is missing or the plugin declares no cross-check.
    public static func run(_ entry: CorpusEntry, registry: PluginRegistry) throws -> Outcome? {
        guard let tshark = tsharkPath, let (spec, plugin) = try spec(for: entry, registry: registry) else { return nil }
        var arguments = ["-r", entry.capturePath, "-n", "-Y", spec.displayFilter, "-T", "fields",
                         "-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=\(DissectorCrossCheck.aggregator)"]
        for transport in plugin.transports {
            for port in plugin.ports { arguments += ["-d", "\(transport.rawValue).port==\(port),\(spec.decodeAs)"] }
        }
        for field in spec.fields { arguments += ["-e", field] }
        let output = try runProcess(tshark, arguments)
        let rows = output.split(separator: "\n").map { $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init) }
        let theirs = spec.recordsFromRows(rows)
        let ours = spec.recordsFromEvents(try entry.replay(registry: registry))
        var outcome = Outcome(capture: entry.name)
        var remaining: [String: Int] = [:]
        for r in theirs { remaining[r, default: 0] += 1 }
        for r in ours {
            if let n = remaining[r], n > 0 { remaining[r] = n - 1; outcome.agreed += 1 } else { outcome.onlyInPlugin.append(r) }
        }
        for (r, n) in remaining.sorted(by: { $0.key < $1.key }) where n > 0 {
            outcome.onlyInTshark += Array(repeating: r, count: n)
        }
        return outcome
    }

    private static func runProcess(_ path: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let errors = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let reason = String(decoding: errors, as: UTF8.self).split(separator: "\n").first.map(String.init) ?? ""
            throw CorpusError("tshark failed (\(process.terminationStatus)): \(reason)")
        }
        return String(decoding: data, as: UTF8.self)
    }
}
