import Foundation
import Testing
import WirebeatConformance
import WirebeatCore
import WirebeatPlugins

/// Parallel replay must print exactly what one sniffer prints, byte for byte, with the same
/// stats: on every capture of the corpus, and on captures made to stress what the workers
/// must agree on (many flows at once, idle timeouts, flows coming back after being forgotten).
struct ParallelReplayTests {
    static func formatLine(_ event: Event, _ out: OutputBuffer) {
        event.writeCompactJSON(into: out)
        out.append(0x0A)
    }

    static func sequential(_ file: String, _ plugins: [LoadedPlugin]) throws -> (bytes: [UInt8], stats: String) {
        let (events, stats) = try Replay.collect(file: file, plugins: plugins)
        let out = OutputBuffer()
        for event in events { formatLine(event, out) }
        return (Array(out.bytes), JSONWriter.compact(stats.json))
    }

    static func parallel(_ file: String, workers: Int, _ makePlugins: () throws -> [LoadedPlugin]) throws
        -> (bytes: [UInt8], stats: String, perWorker: [Int]) {
        var bytes: [UInt8] = []
        let result = try ParallelReplay.run(file: file, workers: workers, makePlugins: makePlugins,
                                            formatLine: formatLine, write: { bytes.append(contentsOf: $0) })
        if let failure = result.failure { throw failure }
        return (bytes, JSONWriter.compact(result.stats.json), result.eventsPerWorker)
    }

    /// Compares 1 worker with 2 and 3; returns the events per worker of the 2-worker run.
    @discardableResult
    static func expectSameOutput(_ file: String, _ makePlugins: () throws -> [LoadedPlugin],
                                 sourceLocation: SourceLocation = #_sourceLocation) throws -> [Int] {
        let one = try sequential(file, makePlugins())
        var shares: [Int] = []
        for workers in [2, 3] {
            let many = try parallel(file, workers: workers, makePlugins)
            if many.bytes != one.bytes {
                Issue.record("\(workers) workers: output differs from one sniffer's: \(firstDifference(one.bytes, many.bytes))",
                             sourceLocation: sourceLocation)
            }
            #expect(many.stats == one.stats, "\(workers) workers: stats differ", sourceLocation: sourceLocation)
            if workers == 2 { shares = many.perWorker }
        }
        return shares
    }

    /// The first line that differs, not megabytes of bytes.
    static func firstDifference(_ expected: [UInt8], _ actual: [UInt8]) -> String {
        let e = expected.split(separator: 0x0A, omittingEmptySubsequences: false)
        let a = actual.split(separator: 0x0A, omittingEmptySubsequences: false)
        for i in 0..<max(e.count, a.count) {
            let x = i < e.count ? String(decoding: e[i], as: UTF8.self) : "(none)"
            let y = i < a.count ? String(decoding: a[i], as: UTF8.self) : "(none)"
            if x != y { return "line \(i + 1) of \(e.count)\n  one sniffer: \(x.prefix(300))\n  workers:     \(y.prefix(300))" }
        }
        return "same lines"
    }

    @Test(arguments: CorpusTests.entries)
    func sameBytesAsOneSniffer(_ entry: CorpusEntry) throws {
        try Self.expectSameOutput(entry.capturePath) { try entry.loadPlugins(registry: BuiltinPlugins.registry) }
    }

    /// Every capture of the corpus on one timeline, overlapping, each also in its idle-timeout
    /// variant, and the whole again a minute later (the same flows return after the workers
    /// forgot them): dozens of flows of three protocols, sweeps that expire connections of
    /// several workers at the same packet, UDP queries left unanswered.
    @Test func interleavedCorpusWithTimeoutsAndReturningFlows() throws {
        var packets: [CapturedPacket] = []
        for (i, entry) in CorpusTests.entries.enumerated() {
            let capture = try PacketCapture.load(file: entry.capturePath)
            let planner = MutationPlanner(capture: capture, budget: .quick, seed: 7, connectionTimeout: .seconds(10))
            let timeouts = planner.mutations(.timeout).prefix(1).map(\.packets)
            for (j, variant) in ([capture.packets] + timeouts).enumerated() {
                guard let first = variant.first?.timestamp else { continue }
                // Start each capture 0.4 s after the previous one, whatever its own clock.
                let shift = Timestamp(nanoseconds: 1_800_000_000_000_000_000 + Int64(i) * 400_000_000
                                      + Int64(j) * 30_000_000_000) - first
                for var p in variant {
                    p.timestamp = p.timestamp + shift
                    packets.append(p)
                }
            }
        }
        let later = packets.map { p -> CapturedPacket in
            var q = p
            q.timestamp = q.timestamp + .seconds(600)
            return q
        }
        packets += later
        packets = packets.enumerated().sorted { ($0.element.timestamp, $0.offset) < ($1.element.timestamp, $1.offset) }.map(\.element)
        let path = NSTemporaryDirectory() + "wirebeat-parallel-\(getpid()).pcap"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try PacketCapture(packets: packets).write(to: path)

        let registry = BuiltinPlugins.registry
        let config = try ConfigFile.parse("""
            protocols:
              smtp: {ports: [25, 587, 2525]}
              http: {ports: [80, 8080, 8000, 3128]}
              dns: {ports: [53, 5353]}
            """)
        let shares = try Self.expectSameOutput(path) { try registry.load(config.protocols) }
        #expect(shares.count == 2 && shares.allSatisfy { $0 > 100 }, "work not shared: \(shares)")
    }

    /// A connection still open at the end of input, whose last packet came long before the
    /// other flows' last ones: closed at the end, it sees the packet clock of the whole
    /// capture, on a worker that saw none of those flows' packets too.
    @Test func connectionsClosedAtTheEndSeeTheLastClock() throws {
        var registry = PluginRegistry()
        registry.register(ClockWatch.self)
        func entry(_ name: String) throws -> CorpusEntry {
            try #require(CorpusTests.entries.first { $0.name == name })
        }
        // An HTTP exchange cut before its FIN, then another connection 30 s later.
        let open = Array(try PacketCapture.load(file: entry("http/keepalive").capturePath).packets.prefix(9))
        let later = try PacketCapture.load(file: entry("http/large-body").capturePath).packets
        let shift = open.last!.timestamp + .seconds(30) - later.first!.timestamp
        let packets = open + later.map { p -> CapturedPacket in
            var q = p
            q.timestamp = q.timestamp + shift
            return q
        }
        let path = NSTemporaryDirectory() + "wirebeat-parallel-end-\(getpid()).pcap"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try PacketCapture(packets: packets).write(to: path)
        let config = try ConfigFile.parse("protocols:\n  clockwatch: {ports: [8080]}\n")
        let shares = try Self.expectSameOutput(path) { try registry.load(config.protocols) }
        #expect(shares.count == 2 && shares.allSatisfy { $0 > 0 }, "both workers close a connection: \(shares)")
    }

    /// A capture cut in the middle of a record: the workers replay what comes before the
    /// damage, finish, and report the error, as one sniffer does.
    @Test func truncatedCaptureSameAsOneSniffer() throws {
        // The largest capture (an HTTP download of many segments), cut at two thirds.
        func size(_ e: CorpusEntry) -> Int { (try? FileManager.default.attributesOfItem(atPath: e.capturePath)[.size] as? Int) ?? 0 }
        let entry = try #require(CorpusTests.entries.max { size($0) < size($1) })
        let data = try #require(FileManager.default.contents(atPath: entry.capturePath))
        let path = NSTemporaryDirectory() + "wirebeat-parallel-cut-\(getpid()).pcap"
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(FileManager.default.createFile(atPath: path, contents: data.prefix(data.count * 2 / 3)))
        let plugins = { try entry.loadPlugins(registry: BuiltinPlugins.registry) }

        let collector = CollectingPublisher()
        let sniffer = Sniffer(plugins: try plugins(), publisher: collector)
        var sequentialError: Error?
        do { try Replay.run(file: path, into: sniffer) } catch { sequentialError = error }
        let expected = OutputBuffer()
        for event in collector.events { Self.formatLine(event, expected) }
        let error = try #require(sequentialError, "cutting \(entry.name) did not cut a record")

        var bytes: [UInt8] = []
        let result = try ParallelReplay.run(file: path, workers: 2, makePlugins: plugins,
                                            formatLine: Self.formatLine, write: { bytes.append(contentsOf: $0) })
        #expect(bytes == Array(expected.bytes))
        #expect(result.failure.map { "\($0)" } == "\(error)")
        #expect(result.stats.packets == sniffer.stats.packets)
    }
}

/// Publishes, when a connection closes, the packet time the close is told (the TCP layer's
/// clock: at the end of input, that of the whole capture).
final class ClockWatch: TCPProtocolPlugin {
    static let name = "clockwatch"
    static let defaultPorts: [UInt16] = [80]
    let connectionTimeout = TimeSpan.seconds(600)
    init(config: PluginConfig) throws {}
    func makeConnectionState(for connection: ConnectionInfo) -> Int { 0 }
    func parse(_ stream: inout StreamBuffer, direction: Direction, state: inout Int, context: PluginContext) {
        stream.skip(stream.readableBytes)
    }
    func connectionClosed(reason: CloseReason, state: inout Int, context: PluginContext) {
        var e = Event.transaction(type: "clock", connection: context.connection, start: context.timestamp, end: nil,
                                  status: .ok)
        e.set("reason", "\(reason)")
        context.publish(e)
    }
}
