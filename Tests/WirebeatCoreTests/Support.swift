import WirebeatCore

/// A TCP plugin that records every call the TCP layer makes, to check the contract.
final class RecordingPlugin: TCPProtocolPlugin {
    static let name = "recorder"
    static let defaultPorts: [UInt16] = [7000]
    var log: [String] = []
    let connectionTimeout: TimeSpan

    init(config: PluginConfig) throws {
        connectionTimeout = try config.duration("transaction_timeout", default: .seconds(10))
    }

    func makeConnectionState(for connection: ConnectionInfo) -> Int { 0 }

    func parse(_ stream: inout StreamBuffer, direction: Direction, state: inout Int, context: PluginContext) {
        guard let bytes = stream.readBytes(stream.readableBytes), !bytes.isEmpty else { return }
        log.append("\(direction == .original ? "C" : "S"):\(String(decoding: bytes, as: UTF8.self))")
    }

    func gapInStream(direction: Direction, byteCount: Int, stream: inout StreamBuffer, state: inout Int,
                     context: PluginContext) -> GapDecision {
        log.append("gap \(direction == .original ? "C" : "S") \(byteCount)")
        return .keepState
    }

    func receivedFIN(direction: Direction, reason: StreamEnd, remaining stream: inout StreamBuffer, state: inout Int,
                     context: PluginContext) {
        log.append("\(reason.rawValue) \(direction == .original ? "C" : "S")")
    }

    func connectionClosed(reason: CloseReason, state: inout Int, context: PluginContext) {
        log.append("close \(reason.rawValue)")
    }
}

/// Builds TCP segments of one connection between a client and a server on port 7000.
struct Conversation {
    var client = Endpoint(ip: IPAddress("10.0.0.1")!, port: 40000)
    var server = Endpoint(ip: IPAddress("10.0.0.2")!, port: 7000)
    var clientISN: UInt32 = 1000
    var serverISN: UInt32 = 5000

    struct Segment {
        var fromClient: Bool
        var seq: UInt32
        var ack: UInt32 = 0
        var flags: TCPFlags = [.ack]
        var data: [UInt8] = []
        var time: Int64 = 0  // seconds
    }

    /// Segment from the client at byte `offset` of its stream (0 = first data byte).
    func c(_ offset: UInt32, _ text: String, flags: TCPFlags = [.ack, .psh], ack: UInt32? = nil, t: Int64 = 0) -> Segment {
        Segment(fromClient: true, seq: clientISN &+ 1 &+ offset, ack: ack.map { serverISN &+ 1 &+ $0 } ?? 0,
                flags: ack == nil ? flags.subtracting(.ack) : flags, data: Array(text.utf8), time: t)
    }
    func s(_ offset: UInt32, _ text: String, flags: TCPFlags = [.ack, .psh], ack: UInt32? = nil, t: Int64 = 0) -> Segment {
        Segment(fromClient: false, seq: serverISN &+ 1 &+ offset, ack: ack.map { clientISN &+ 1 &+ $0 } ?? 0,
                flags: ack == nil ? flags.subtracting(.ack) : flags, data: Array(text.utf8), time: t)
    }
    var handshake: [Segment] {
        [Segment(fromClient: true, seq: clientISN, flags: [.syn]),
         Segment(fromClient: false, seq: serverISN, ack: clientISN &+ 1, flags: [.syn, .ack]),
         Segment(fromClient: true, seq: clientISN &+ 1, ack: serverISN &+ 1, flags: [.ack])]
    }

    func packet(_ s: Segment) -> [UInt8] {
        PacketBuilder.ipv4TCP(src: s.fromClient ? client : server, dst: s.fromClient ? server : client,
                              seq: s.seq, ack: s.ack, flags: s.flags, payload: s.data)
    }
}

enum PacketBuilder {
    static func ipv4Header(src: IPAddress, dst: IPAddress, proto: UInt8, payloadLength: Int,
                           id: UInt16 = 1, flagsOffset: UInt16 = 0) -> [UInt8] {
        let total = 20 + payloadLength
        var h: [UInt8] = [0x45, 0, UInt8(total >> 8), UInt8(total & 0xff), UInt8(id >> 8), UInt8(id & 0xff),
                          UInt8(flagsOffset >> 8), UInt8(flagsOffset & 0xff), 64, proto, 0, 0]
        h += src.bytes
        h += dst.bytes
        return h
    }

    static func tcpHeader(src: UInt16, dst: UInt16, seq: UInt32, ack: UInt32, flags: TCPFlags) -> [UInt8] {
        var h: [UInt8] = [UInt8(src >> 8), UInt8(src & 0xff), UInt8(dst >> 8), UInt8(dst & 0xff)]
        h += be32(seq) + be32(ack)
        h += [0x50, flags.rawValue, 0xff, 0xff, 0, 0, 0, 0]
        return h
    }

    static func udpHeader(src: UInt16, dst: UInt16, payloadLength: Int) -> [UInt8] {
        let len = 8 + payloadLength
        return [UInt8(src >> 8), UInt8(src & 0xff), UInt8(dst >> 8), UInt8(dst & 0xff), UInt8(len >> 8), UInt8(len & 0xff), 0, 0]
    }

    static func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xff), UInt8(v >> 8 & 0xff), UInt8(v & 0xff)] }

    /// A raw IPv4 packet (link type RAW) carrying one TCP segment.
    static func ipv4TCP(src: Endpoint, dst: Endpoint, seq: UInt32, ack: UInt32, flags: TCPFlags, payload: [UInt8]) -> [UInt8] {
        let tcp = tcpHeader(src: src.port, dst: dst.port, seq: seq, ack: ack, flags: flags) + payload
        return ipv4Header(src: src.ip, dst: dst.ip, proto: 6, payloadLength: tcp.count) + tcp
    }

    static func ipv6TCP(src: Endpoint, dst: Endpoint, seq: UInt32, flags: TCPFlags, payload: [UInt8],
                        extensionHeaders: [UInt8] = [], firstNextHeader: UInt8 = 6) -> [UInt8] {
        let tcp = tcpHeader(src: src.port, dst: dst.port, seq: seq, ack: 0, flags: flags) + payload
        let body = extensionHeaders + tcp
        var h: [UInt8] = [0x60, 0, 0, 0, UInt8(body.count >> 8), UInt8(body.count & 0xff), firstNextHeader, 64]
        h += src.ip.bytes + dst.ip.bytes
        return h + body
    }

    static func ethernet(_ payload: [UInt8], etherType: UInt16 = 0x0800, vlans: [UInt16] = []) -> [UInt8] {
        var f: [UInt8] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
        for (i, v) in vlans.enumerated() {
            f += i == 0 && vlans.count > 1 ? [0x88, 0xA8] : [0x81, 0x00]
            f += [UInt8(v >> 8), UInt8(v & 0xff)]
        }
        f += [UInt8(etherType >> 8), UInt8(etherType & 0xff)]
        return f + payload
    }
}

/// Runs segments through a sniffer with the recording plugin and returns its log.
func record(_ segments: [Conversation.Segment], conversation: Conversation = Conversation(),
            timeout: String = "10s", finish: Bool = true, options: TCPOptions = TCPOptions()) throws -> (log: [String], stats: SnifferStats) {
    var registry = PluginRegistry()
    registry.register(RecordingPlugin.self)
    let plugins = try registry.load([("recorder", ["transaction_timeout": .scalar(timeout)])])
    let sniffer = Sniffer(plugins: plugins, publisher: CollectingPublisher(), tcpOptions: options)
    for s in segments {
        let frame = conversation.packet(s)
        frame.withUnsafeBytes {
            sniffer.handle(linkType: LinkType.raw, timestamp: Timestamp(seconds: 1_600_000_000 + s.time), frame: $0)
        }
    }
    if finish { sniffer.finish() }
    return ((plugins[0].instance as! RecordingPlugin).log, sniffer.stats)
}
