import Foundation
import WirebeatCore

/// Everything the harness knows how to check about a plugin package's corpus, in one call:
/// goldens, every mutation mode, and the tshark cross-check. For an external package:
///
/// ```swift
/// var registry = PluginRegistry()
/// registry.register(MyPlugin.self)
/// let report = try CorpusCheck.run(root: packageRoot, registry: registry)
/// #expect(report.passed, "\(report)")
/// ```
public struct CorpusCheck: CustomStringConvertible {
    public var goldens: [(capture: String, check: GoldenCheck)] = []
    public var conformance: [ConformanceResult] = []
    public var crossChecks: [TsharkCrossCheck.Outcome] = []
    public var errors: [String] = []

    public var passed: Bool {
        errors.isEmpty && goldens.allSatisfy { $0.check.passed } && conformance.allSatisfy { $0.failedCount == 0 }
            && crossChecks.allSatisfy(\.agrees)
    }

    /// Checks every capture under `<root>/Captures` against `<root>/Golden`.
    public static func run(root: String, registry: PluginRegistry, options: ConformanceOptions = ConformanceOptions(),
                           publicDirectory: String? = nil) throws -> CorpusCheck {
        let corpus = try Corpus(root: root, publicDirectory: publicDirectory)
        var report = CorpusCheck()
        let suite = ConformanceSuite(registry: registry, options: options)
        for entry in corpus.entries {
            do {
                let check = try GoldenWorkflow.verify(entry, registry: registry)
                report.goldens.append((entry.name, check))
                guard check.passed else { continue }
                report.conformance += try suite.run(entry)
                if let outcome = try TsharkCrossCheck.run(entry, registry: registry) { report.crossChecks.append(outcome) }
            } catch {
                report.errors.append("\(entry.name): \(error)")
            }
        }
        if corpus.entries.isEmpty { report.errors.append("\(root)/Captures: no captures") }
        return report
    }

    public var description: String {
        var lines: [String] = []
        for (capture, check) in goldens where !check.passed { lines.append("golden \(capture): \(check.message)") }
        lines.append(ConformanceReport.table(conformance))
        for failure in conformance.flatMap(\.failures) { lines.append("FAIL \(failure)") }
        for outcome in crossChecks { lines.append("tshark \(outcome)") }
        if TsharkCrossCheck.tsharkPath == nil { lines.append("tshark cross-check skipped: tshark is not installed") }
        lines += errors.map { "ERROR \($0)" }
        return lines.joined(separator: "\n")
    }
}
