/// TCP header flags Wirebeat acts on.
public struct TCPFlags: OptionSet, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let fin = TCPFlags(rawValue: 0x01)
    public static let syn = TCPFlags(rawValue: 0x02)
    public static let rst = TCPFlags(rawValue: 0x04)
    public static let psh = TCPFlags(rawValue: 0x08)
    public static let ack = TCPFlags(rawValue: 0x10)
}

/// A TCP segment or UDP datagram after link, IP and transport decoding.
/// `payload` points into the capture buffer (or a reassembly buffer) and is valid only
/// for the duration of the handler call: copy what you keep.
public struct DecodedPacket {
    public var timestamp: Timestamp
    public var transport: Transport
    public var source: Endpoint
    public var destination: Endpoint
    /// VLAN ids, outermost first (empty when untagged).
    public var vlans: VLANTags
    public var sequence: UInt32 = 0
    public var acknowledgment: UInt32 = 0
    public var flags: TCPFlags = []
    public var payload: UnsafeRawBufferPointer
    /// Payload bytes on the wire; larger than `payload.count` when the snap length cut it.
    public var wirePayloadLength: Int

    public init(timestamp: Timestamp, transport: Transport, source: Endpoint, destination: Endpoint,
                vlans: VLANTags = VLANTags(), sequence: UInt32 = 0, acknowledgment: UInt32 = 0, flags: TCPFlags = [],
                payload: UnsafeRawBufferPointer, wirePayloadLength: Int) {
        self.timestamp = timestamp
        self.transport = transport
        self.source = source
        self.destination = destination
        self.vlans = vlans
        self.sequence = sequence
        self.acknowledgment = acknowledgment
        self.flags = flags
        self.payload = payload
        self.wirePayloadLength = wirePayloadLength
    }
}

/// Why a packet was not handed on. `malformed*` reasons are damage; the others are
/// traffic Wirebeat does not look at.
public enum SkipReason: String, CaseIterable, Sendable {
    case unsupportedLinkType = "unsupported_link_type"
    case notIP = "not_ip"
    case otherIPProtocol = "other_ip_protocol"
    case malformedLink = "malformed_link"
    case malformedIPv4 = "malformed_ipv4"
    case malformedIPv6 = "malformed_ipv6"
    case malformedTCP = "malformed_tcp"
    case malformedUDP = "malformed_udp"
    case truncated = "truncated_headers"
    case fragmentPending = "ip_fragment_pending"
    case fragmentDropped = "ip_fragment_dropped"
    case ipsec = "ipsec_encrypted"

    public var isMalformed: Bool {
        switch self {
        case .malformedLink, .malformedIPv4, .malformedIPv6, .malformedTCP, .malformedUDP, .truncated: return true
        default: return false
        }
    }
}
