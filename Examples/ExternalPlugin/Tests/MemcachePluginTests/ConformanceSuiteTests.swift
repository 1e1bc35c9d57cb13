import Foundation
import MemcachePlugin
import Testing
import WirebeatConformance
import WirebeatCore

/// Wirebeat's whole harness over this package's corpus, in one call: every
/// `Captures/memcache/*.pcap` against `Golden/memcache/<name>.json`, under every mutation
/// mode, plus the tshark cross-check.
///
/// `WIREBEAT_RECORD=missing swift test` writes goldens that do not exist yet,
/// `WIREBEAT_RECORD=all swift test` rewrites them all: read them before committing.
struct ConformanceSuiteTests {
    /// The package root: the folder holding Package.swift and Captures/.
    static let root = Corpus.findRoot(from: #filePath)!

    static var registry: PluginRegistry {
        var registry = PluginRegistry()
        registry.register(MemcachePlugin.self)
        return registry
    }

    @Test func corpusPassesGoldensEveryModeAndTshark() throws {
        try recordGoldensIfAsked()
        let report = try CorpusCheck.run(root: Self.root, registry: Self.registry)
        print(report)
        #expect(report.passed, "\(report)")
        #expect(report.goldens.count >= 4 && !report.conformance.isEmpty)
    }

    @Test func corpusIsNotEmpty() throws {
        let entries = try Corpus(root: Self.root).entries
        #expect(entries.count >= 4, "captures: \(entries.map(\.name))")
        #expect(entries.allSatisfy { $0.plugin == MemcachePlugin.name })
    }

    private func recordGoldensIfAsked() throws {
        let mode = ProcessInfo.processInfo.environment["WIREBEAT_RECORD"] ?? "never"
        guard mode == "all" || mode == "missing" else { return }
        for entry in try Corpus(root: Self.root).entries
        where mode == "all" || !FileManager.default.fileExists(atPath: entry.goldenPath) {
            let change = try GoldenWorkflow.update(entry, registry: Self.registry)
            if !change.isEmpty { print("recorded \(entry.name): \(change)") }
        }
    }
}
