import Foundation
import Testing
import WirebeatConformance
import WirebeatCore
import WirebeatPlugins

/// What the DNS plugin extracts from every DNS capture agrees with tshark's DNS dissector
/// (the records of `DNSPlugin.crossCheck`: query name and type, and the response code),
/// compared as multisets. Skipped when tshark is not installed.
struct DNSCrossCheckTests {
    static let tshark = ["/usr/bin/tshark", "/usr/local/bin/tshark"].first { FileManager.default.isExecutableFile(atPath: $0) }
    static let entries: [CorpusEntry] = CorpusTests.entries.filter { $0.plugin == "dns" }

    @Test(.enabled(if: tshark != nil), arguments: entries)
    func agreesWithTshark(_ entry: CorpusEntry) throws {
        let spec = DNSPlugin.crossCheck
        var arguments = ["-n", "-r", entry.capturePath]
        for port in DNSPlugin.defaultPorts {
            arguments += ["-d", "tcp.port==\(port),\(spec.decodeAs)", "-d", "udp.port==\(port),\(spec.decodeAs)"]
        }
        arguments += ["-Y", spec.displayFilter, "-T", "fields", "-E", "separator=/t"]
        for field in spec.fields { arguments += ["-e", field] }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.tshark!)
        process.arguments = arguments
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let rows = String(decoding: data, as: UTF8.self).split(separator: "\n")
            .map { $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init) }
        let fromTshark = spec.recordsFromRows(rows).sorted()
        let events = try entry.replay(registry: BuiltinPlugins.registry)
        let fromPlugin = spec.recordsFromEvents(events).sorted()
        #expect(!fromTshark.isEmpty, "\(entry.name): tshark found no DNS")
        #expect(fromPlugin == fromTshark, "\(entry.name): plugin \(fromPlugin) vs tshark \(fromTshark)")
    }
}
