import WirebeatCore

/// A decoded TCP segment or UDP datagram that owns its payload, so mutations can cut,
/// move, copy and damage it, and replay it through the real TCP/UDP layer.
public struct CapturedPacket: Sendable {
    public var timestamp: Timestamp
    public var transport: Transport
    public var source: Endpoint
    public var destination: Endpoint
    public var vlans: VLANTags
    public var sequence: UInt32
    public var acknowledgment: UInt32
    public var flags: TCPFlags
    public var payload: [UInt8]
    /// Payload length on the wire (more than `payload.count` after a snap-length cut).
    public var wireLength: Int

    public init(timestamp: Timestamp, transport: Transport, source: Endpoint, destination: Endpoint,
                vlans: VLANTags = VLANTags(), sequence: UInt32 = 0, acknowledgment: UInt32 = 0, flags: TCPFlags = [],
                payload: [UInt8], wireLength: Int? = nil) {
        self.timestamp = timestamp
        self.transport = transport
        self.source = source
        self.destination = destination
        self.vlans = vlans
        self.sequence = sequence
        self.acknowledgment = acknowledgment
        self.flags = flags
        self.payload = payload
        self.wireLength = wireLength ?? payload.count
    }

    /// Canonical flow identity (both directions alike).
    public var flow: FlowID { FlowID(source, destination, vlans) }

    public var isData: Bool { !payload.isEmpty || wireLength > 0 }

    /// Hands the packet to a sniffer as if it had just been decoded.
    public func dispatch(to sniffer: Sniffer) {
        payload.withUnsafeBytes { bytes in
            sniffer.dispatch(DecodedPacket(timestamp: timestamp, transport: transport, source: source,
                                           destination: destination, vlans: vlans, sequence: sequence,
                                           acknowledgment: acknowledgment, flags: flags, payload: bytes,
                                           wirePayloadLength: wireLength))
        }
    }
}

public struct FlowID: Hashable, Sendable {
    let a: Endpoint, b: Endpoint
    let vlans: VLANTags
    public let transport: Transport?
    /// The two endpoints in canonical order, as events name them (`ip:port|ip:port`).
    public var key: String { "\(a)|\(b)" }
    init(_ x: Endpoint, _ y: Endpoint, _ vlans: VLANTags, transport: Transport? = nil) {
        (a, b) = x < y ? (x, y) : (y, x)
        self.vlans = vlans
        self.transport = transport
    }
}

/// A capture held in memory as decoded packets (corpus captures are small).
public struct PacketCapture: Sendable {
    public var packets: [CapturedPacket]
    /// Frames that did not decode to TCP/UDP (kept out of mutations, counted for reports).
    public var skippedFrames: Int

    public init(packets: [CapturedPacket], skippedFrames: Int = 0) {
        self.packets = packets
        self.skippedFrames = skippedFrames
    }

    public static func load(file: String) throws -> PacketCapture {
        let source = try PcapSource.open(file: file)
        var decoder = PacketDecoder()
        var packets: [CapturedPacket] = []
        var frames = 0
        let linkType = source.linkType
        while try source.next({ ts, frame, _ in
            frames += 1
            decoder.decode(linkType: linkType, timestamp: ts, frame: frame) { p in
                packets.append(CapturedPacket(timestamp: p.timestamp, transport: p.transport, source: p.source,
                                              destination: p.destination, vlans: p.vlans, sequence: p.sequence,
                                              acknowledgment: p.acknowledgment, flags: p.flags,
                                              payload: Array(p.payload), wireLength: p.wirePayloadLength))
            }
        }) == .packet {}
        return PacketCapture(packets: packets, skippedFrames: frames - packets.count)
    }

    /// Replays through the given plugins; returns events as JSON.
    public func replay(plugins: [LoadedPlugin], tcpOptions: TCPOptions = TCPOptions()) -> (events: [JSONValue], stats: SnifferStats) {
        let collector = CollectingPublisher()
        let sniffer = Sniffer(plugins: plugins, publisher: collector, tcpOptions: tcpOptions)
        for packet in packets { packet.dispatch(to: sniffer) }
        sniffer.finish()
        return (collector.events.map(\.json), sniffer.stats)
    }

    /// Writes the packets as Ethernet frames (VLAN tags kept) so `wirebeat -I` replays them.
    public func write(to path: String) throws {
        let writer = try PcapWriter(path: path, linkType: LinkType.ethernet)
        defer { writer.close() }
        for p in packets {
            let frame = FrameEncoder.ethernet(p)
            let wire = frame.count + (p.wireLength - p.payload.count)
            frame.withUnsafeBytes { writer.write(timestamp: p.timestamp, frame: $0, wireLength: wire) }
        }
    }
}

/// Encodes a `CapturedPacket` back into bytes (checksums left zero: Wirebeat ignores them).
enum FrameEncoder {
    static func ethernet(_ p: CapturedPacket) -> [UInt8] {
        var frame: [UInt8] = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1]
        for (i, vlan) in p.vlans.enumerated() {
            frame += (i == 0 && p.vlans.count > 1) ? [0x88, 0xA8] : [0x81, 0x00]
            frame += be16(vlan)
        }
        frame += p.source.ip.isV4 ? [0x08, 0x00] : [0x86, 0xDD]
        return frame + ip(p)
    }

    static func ip(_ p: CapturedPacket) -> [UInt8] {
        var transport: [UInt8]
        let wirePayload = max(p.wireLength, p.payload.count)
        switch p.transport {
        case .tcp:
            transport = be16(p.source.port) + be16(p.destination.port) + be32(p.sequence) + be32(p.acknowledgment)
            transport += [0x50, p.flags.rawValue, 0xFF, 0xFF, 0, 0, 0, 0]
        case .udp:
            transport = be16(p.source.port) + be16(p.destination.port) + be16(UInt16(truncatingIfNeeded: 8 + wirePayload)) + [0, 0]
        }
        let headerCount = transport.count
        transport += p.payload
        let proto: UInt8 = p.transport == .tcp ? 6 : 17
        let wireTransport = headerCount + wirePayload
        if p.source.ip.isV4 {
            let total = 20 + wireTransport
            return [0x45, 0] + be16(UInt16(truncatingIfNeeded: total)) + [0, 0, 0x40, 0, 64, proto, 0, 0]
                + p.source.ip.bytes + p.destination.ip.bytes + transport
        }
        return [0x60, 0, 0, 0] + be16(UInt16(truncatingIfNeeded: wireTransport)) + [proto, 64]
            + p.source.ip.bytes + p.destination.ip.bytes + transport
    }

    static func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xff)] }
    static func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xff), UInt8(v >> 8 & 0xff), UInt8(v & 0xff)] }
}
