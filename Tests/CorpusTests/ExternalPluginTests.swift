import Foundation
import Testing

/// The external example package (Examples/ExternalPlugin) must keep passing its own suite —
/// goldens, every mutation mode and the tshark cross-check — against this checkout of
/// Wirebeat, as a plugin author outside the repository would run it. It builds a second
/// package, so it takes a minute; `WIREBEAT_SKIP_EXAMPLES=1` skips it.
struct ExternalPluginTests {
    static let package = CorpusTests.root + "/Examples/ExternalPlugin"
    static let enabled = ProcessInfo.processInfo.environment["WIREBEAT_SKIP_EXAMPLES"] != "1"
        && FileManager.default.fileExists(atPath: package + "/Package.swift")

    @Test(.enabled(if: enabled, "skipped by WIREBEAT_SKIP_EXAMPLES=1"), .timeLimit(.minutes(10)))
    func examplePackagePassesItsSuite() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["swift", "test", "--package-path", Self.package]
        var environment = ProcessInfo.processInfo.environment
        environment.removeValue(forKey: "WIREBEAT_RECORD")  // the example must verify, never record
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let tail = text.split(separator: "\n").suffix(30).joined(separator: "\n")
        #expect(process.terminationStatus == 0, "swift test in Examples/ExternalPlugin failed:\n\(tail)")
        #expect(text.contains("passed"), "\(tail)")
    }
}
