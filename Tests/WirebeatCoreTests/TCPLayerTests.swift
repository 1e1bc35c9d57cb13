import Testing
@testable import WirebeatCore

/// Table tests for the TCP layer: each case lists segments as captured and the exact plugin
/// calls expected (C:/S: = bytes delivered to parse, gap, fin/reset, close).
struct TCPLayerTests {
    static let t = Conversation()
    let t = Conversation()

    struct Case: CustomTestStringConvertible, Sendable {
        let name: String
        let segments: [Conversation.Segment]
        let expected: [String]
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "in order",
             segments: t.handshake + [t.c(0, "HELLO\r\n", ack: 0), t.s(0, "OK\r\n", ack: 7),
                                      t.c(7, "", flags: [.fin, .ack], ack: 4), t.s(4, "", flags: [.fin, .ack], ack: 8)],
             expected: ["C:HELLO\r\n", "S:OK\r\n", "fin C", "fin S", "close closed"]),
        Case(name: "reordered segments are buffered and delivered in order, not as loss",
             segments: t.handshake + [t.c(3, "DEF"), t.c(0, "ABC"), t.c(6, "GHI")],
             expected: ["C:ABC", "C:DEF", "C:GHI", "close endOfInput"]),
        Case(name: "retransmission is dropped",
             segments: t.handshake + [t.c(0, "ABC"), t.c(0, "ABC"), t.c(3, "DEF")],
             expected: ["C:ABC", "C:DEF", "close endOfInput"]),
        Case(name: "overlapping segment is trimmed",
             segments: t.handshake + [t.c(0, "ABCD"), t.c(2, "CDEF"), t.c(6, "G")],
             expected: ["C:ABCD", "C:EF", "C:G", "close endOfInput"]),
        Case(name: "hole never filled is a gap with exact byte count at end of input",
             segments: t.handshake + [t.c(0, "ABC"), t.c(10, "KLM")],
             expected: ["C:ABC", "gap C 7", "C:KLM", "close endOfInput"]),
        Case(name: "hole acknowledged by the peer is a gap at once",
             segments: t.handshake + [t.c(0, "ABC"), t.c(10, "KLM"), t.s(0, "ok", ack: 13), t.c(13, "NOP")],
             expected: ["C:ABC", "gap C 7", "C:KLM", "S:ok", "C:NOP", "close endOfInput"]),
        Case(name: "bytes acknowledged but never captured are a gap when the ACK is seen",
             segments: t.handshake + [t.c(0, "ABC"), t.s(0, "ok", ack: 10), t.c(10, "KLM")],
             expected: ["C:ABC", "gap C 7", "S:ok", "C:KLM", "close endOfInput"]),
        Case(name: "FIN out of order waits for the data before it",
             segments: t.handshake + [t.c(3, "", flags: [.fin, .ack], ack: 0), t.c(0, "ABC")],
             expected: ["C:ABC", "fin C", "close endOfInput"]),
        Case(name: "RST ends both directions",
             segments: t.handshake + [t.c(0, "ABC"), t.s(0, "", flags: [.rst])],
             expected: ["C:ABC", "reset C", "reset S", "close closed"]),
        Case(name: "no SYN seen: picked up mid-stream",
             segments: [t.c(100, "MID"), t.s(50, "REPLY"), t.c(103, "MORE")],
             expected: ["C:MID", "S:REPLY", "C:MORE", "close endOfInput"]),
        Case(name: "idle longer than the timeout expires the connection, later bytes start clean",
             segments: t.handshake + [t.c(0, "ABC", t: 0), t.c(3, "DEF", t: 60)],
             expected: ["C:ABC", "close timeout", "C:DEF", "close endOfInput"]),
        Case(name: "packets after close are ignored",
             segments: t.handshake + [t.c(0, "A", flags: [.fin, .ack], ack: 0), t.s(0, "", flags: [.fin, .ack], ack: 2),
                                      t.c(0, "A", flags: [.fin, .ack], ack: 1)],
             expected: ["C:A", "fin C", "fin S", "close closed"]),
    ]

    @Test(arguments: cases)
    func deliveries(_ c: Case) throws {
        let (log, _) = try record(c.segments)
        #expect(log == c.expected)
    }

    @Test func sequenceWraparound() throws {
        var conv = Conversation()
        conv.clientISN = UInt32.max - 2  // the first data byte is at max-1; the stream wraps after 2 bytes
        let segments = conv.handshake + [conv.c(0, "AB"), conv.c(4, "EF"), conv.c(2, "CD")]
        let (log, stats) = try record(segments, conversation: conv)
        #expect(log == ["C:AB", "C:CD", "C:EF", "close endOfInput"])
        #expect(stats.tcp.gaps == 0)
    }

    @Test func outOfOrderWindowDeclaresTheHole() throws {
        var options = TCPOptions()
        options.maxOutOfOrderSegments = 2
        let segments = t.handshake + [t.c(0, "A"), t.c(2, "C"), t.c(3, "D"), t.c(4, "E")]
        let (log, stats) = try record(segments, options: options)
        #expect(log == ["C:A", "gap C 1", "C:CDE", "close endOfInput"] || log == ["C:A", "gap C 1", "C:C", "C:D", "C:E", "close endOfInput"])
        #expect(stats.tcp.gaps == 1 && stats.tcp.gapBytes == 1)
    }

    @Test func streamCapDropsAndCounts() throws {
        // A plugin that never consumes: the cap must bound the buffer.
        final class Hoarder: TCPProtocolPlugin {
            static let name = "hoarder"
            static let defaultPorts: [UInt16] = [7000]
            var gaps: [Int] = []
            init(config: PluginConfig) throws {}
            var connectionTimeout: TimeSpan { .seconds(10) }
            func makeConnectionState(for connection: ConnectionInfo) -> Int { 0 }
            func parse(_ stream: inout StreamBuffer, direction: Direction, state: inout Int, context: PluginContext) {}
            func gapInStream(direction: Direction, byteCount: Int, stream: inout StreamBuffer, state: inout Int,
                             context: PluginContext) -> GapDecision { gaps.append(byteCount); return .dropState }
        }
        var registry = PluginRegistry()
        registry.register(Hoarder.self)
        let plugins = try registry.load(nil)
        var options = TCPOptions()
        options.maxStreamBytes = 100
        let sniffer = Sniffer(plugins: plugins, publisher: CollectingPublisher(), tcpOptions: options)
        let chunk = String(repeating: "x", count: 60)
        for (i, s) in (t.handshake + (0..<5).map { t.c(UInt32($0 * 60), chunk) }).enumerated() {
            t.packet(s).withUnsafeBytes { sniffer.handle(linkType: LinkType.raw, timestamp: Timestamp(seconds: Int64(i)), frame: $0) }
        }
        sniffer.finish()
        #expect(sniffer.stats.tcp.streamOverflows == 2)
        #expect((plugins[0].instance as! Hoarder).gaps == [120, 120])
    }
}

/// A snap-length cut (captured bytes fewer than on the wire) is a gap of exactly the
/// missing bytes, reported as soon as the segment is delivered.
struct SnapLengthTests {
    @Test func cutSegmentIsAGapAtOnce() throws {
        let t = Conversation()
        var registry = PluginRegistry()
        registry.register(RecordingPlugin.self)
        let plugins = try registry.load([("recorder", [:])])
        let sniffer = Sniffer(plugins: plugins, publisher: CollectingPublisher())
        var frames = (t.handshake + [t.c(0, "ABCDEFGHIJ")]).map(t.packet)
        frames[frames.count - 1].removeLast(6)  // captured "ABCD", 10 bytes on the wire
        for (i, frame) in frames.enumerated() {
            frame.withUnsafeBytes { sniffer.handle(linkType: LinkType.raw, timestamp: Timestamp(seconds: Int64(i)), frame: $0) }
        }
        let recorder = plugins[0].instance as! RecordingPlugin
        #expect(recorder.log == ["C:ABCD", "gap C 6"])
        sniffer.finish()
        #expect(sniffer.stats.tcp.gapBytes == 6)
    }
}
