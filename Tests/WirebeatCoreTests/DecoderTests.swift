import Testing
@testable import WirebeatCore

/// What the decoder handed on, copied out of the handler (payload pointers die with the call).
struct Seen: Equatable, CustomStringConvertible {
    var transport: Transport
    var source: Endpoint
    var destination: Endpoint
    var vlans: [UInt16]
    var sequence: UInt32
    var acknowledgment: UInt32
    var flags: UInt8
    var payload: [UInt8]
    var wirePayloadLength: Int

    init(_ p: DecodedPacket) {
        transport = p.transport
        source = p.source
        destination = p.destination
        vlans = Array(p.vlans)
        sequence = p.sequence
        acknowledgment = p.acknowledgment
        flags = p.flags.rawValue
        payload = Array(p.payload)
        wirePayloadLength = p.wirePayloadLength
    }

    var description: String {
        "\(transport) \(source) > \(destination) vlans=\(vlans) seq=\(sequence) payload=\(String(decoding: payload, as: UTF8.self))"
    }
}

/// Decodes `frames` with one decoder (so fragments can meet) and returns what came out.
func decodeFrames(_ linkType: Int32, _ frames: [[UInt8]], times: [Int64]? = nil) -> (seen: [Seen], skipped: [SkipReason: Int]) {
    var decoder = PacketDecoder()
    var seen: [Seen] = []
    for (i, frame) in frames.enumerated() {
        let ts = Timestamp(seconds: 1_700_000_000 + (times?[i] ?? Int64(i)))
        frame.withUnsafeBytes { decoder.decode(linkType: linkType, timestamp: ts, frame: $0) { seen.append(Seen($0)) } }
    }
    return (seen, decoder.skipped)
}

enum Frames {
    static let client4 = Endpoint(ip: IPAddress("192.0.2.10")!, port: 40001)
    static let server4 = Endpoint(ip: IPAddress("198.51.100.20")!, port: 7000)
    static let client6 = Endpoint(ip: IPAddress("2001:db8::10")!, port: 40002)
    static let server6 = Endpoint(ip: IPAddress("2001:db8:0:1::20")!, port: 7000)
    static let payload = Array("HELLO wirebeat".utf8)
    static let seq: UInt32 = 0xDEAD_BEEF
    static let ack: UInt32 = 0x0102_0304

    static var v4TCP: [UInt8] {
        PacketBuilder.ipv4TCP(src: client4, dst: server4, seq: seq, ack: ack, flags: [.ack, .psh], payload: payload)
    }
    static var v6TCP: [UInt8] {
        PacketBuilder.ipv6(src: client6.ip, dst: server6.ip, next: 6,
                           body: PacketBuilder.tcp(src: client6.port, dst: server6.port, seq: seq, ack: ack, payload: payload))
    }
    static var v4UDP: [UInt8] { PacketBuilder.ipv4UDP(src: client4, dst: server4, payload: payload) }
    static var v6UDP: [UInt8] { PacketBuilder.ipv6UDP(src: client6, dst: server6, payload: payload) }
}

struct DecoderTests {
    // MARK: link types

    struct LinkCase: CustomTestStringConvertible, Sendable {
        let name: String
        let linkType: Int32
        let frame: [UInt8]
        let v6: Bool
        var vlans: [UInt16] = []
        var testDescription: String { name }
    }

    static let linkCases: [LinkCase] = {
        let v4 = Frames.v4TCP, v6 = Frames.v6TCP
        typealias B = PacketBuilder
        return [
            LinkCase(name: "Ethernet IPv4", linkType: LinkType.ethernet, frame: B.ethernet(v4), v6: false),
            LinkCase(name: "Ethernet IPv6", linkType: LinkType.ethernet, frame: B.ethernet(v6, etherType: 0x86DD), v6: true),
            LinkCase(name: "802.1Q IPv4", linkType: LinkType.ethernet, frame: B.ethernet(v4, vlans: [100]), v6: false,
                     vlans: [100]),
            LinkCase(name: "802.1Q IPv6, priority bits masked", linkType: LinkType.ethernet,
                     frame: B.ethernet(v6, etherType: 0x86DD, vlans: [0xA000 | 42]), v6: true, vlans: [42]),
            // Builder: the first of two tags is 0x88a8 (S-tag), the second 0x8100 (C-tag).
            LinkCase(name: "QinQ IPv4", linkType: LinkType.ethernet, frame: B.ethernet(v4, vlans: [10, 20]), v6: false,
                     vlans: [10, 20]),
            LinkCase(name: "QinQ IPv6, DEI and PCP masked", linkType: LinkType.ethernet,
                     frame: B.ethernet(v6, etherType: 0x86DD, vlans: [0xF000 | 4094, 0x1000 | 1]), v6: true,
                     vlans: [4094, 1]),
            LinkCase(name: "five stacked tags, the most VLANTags holds", linkType: LinkType.ethernet,
                     frame: B.ethernet(v4, vlans: [1, 2, 3, 4095, 5]), v6: false, vlans: [1, 2, 3, 4095, 5]),
            LinkCase(name: "old 0x9100 tag", linkType: LinkType.ethernet,
                     frame: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x91, 0x00, 0, 7, 0x08, 0x00] + v4, v6: false, vlans: [7]),
            LinkCase(name: "Linux SLL IPv4", linkType: LinkType.linuxSLL, frame: B.sll(v4), v6: false),
            LinkCase(name: "Linux SLL IPv6", linkType: LinkType.linuxSLL, frame: B.sll(v6, proto: 0x86DD), v6: true),
            LinkCase(name: "Linux SLL 802.1Q", linkType: LinkType.linuxSLL,
                     frame: B.sll([0, 5, 0x08, 0x00] + v4, proto: 0x8100), v6: false, vlans: [5]),
            LinkCase(name: "Linux SLL2 IPv4", linkType: LinkType.linuxSLL2, frame: B.sll2(v4), v6: false),
            LinkCase(name: "Linux SLL2 IPv6", linkType: LinkType.linuxSLL2, frame: B.sll2(v6, proto: 0x86DD), v6: true),
            LinkCase(name: "NULL AF_INET little-endian", linkType: LinkType.null,
                     frame: B.null(v4, family: 2, littleEndian: true), v6: false),
            LinkCase(name: "NULL AF_INET big-endian", linkType: LinkType.null,
                     frame: B.null(v4, family: 2, littleEndian: false), v6: false),
            LinkCase(name: "NULL AF_INET6=24 (NetBSD/OpenBSD) LE", linkType: LinkType.null,
                     frame: B.null(v6, family: 24, littleEndian: true), v6: true),
            LinkCase(name: "NULL AF_INET6=24 BE", linkType: LinkType.null,
                     frame: B.null(v6, family: 24, littleEndian: false), v6: true),
            LinkCase(name: "NULL AF_INET6=28 (FreeBSD) LE", linkType: LinkType.null,
                     frame: B.null(v6, family: 28, littleEndian: true), v6: true),
            LinkCase(name: "NULL AF_INET6=28 BE", linkType: LinkType.null,
                     frame: B.null(v6, family: 28, littleEndian: false), v6: true),
            LinkCase(name: "NULL AF_INET6=30 (macOS) LE", linkType: LinkType.null,
                     frame: B.null(v6, family: 30, littleEndian: true), v6: true),
            LinkCase(name: "NULL AF_INET6=30 BE", linkType: LinkType.null,
                     frame: B.null(v6, family: 30, littleEndian: false), v6: true),
            LinkCase(name: "NULL AF_INET6=10 (Linux) LE", linkType: LinkType.null,
                     frame: B.null(v6, family: 10, littleEndian: true), v6: true),
            LinkCase(name: "NULL AF_INET6=10 BE", linkType: LinkType.null,
                     frame: B.null(v6, family: 10, littleEndian: false), v6: true),
            LinkCase(name: "LOOP AF_INET", linkType: LinkType.loop, frame: B.loop(v4, family: 2), v6: false),
            LinkCase(name: "LOOP AF_INET6=24", linkType: LinkType.loop, frame: B.loop(v6, family: 24), v6: true),
            LinkCase(name: "RAW(12) IPv4", linkType: LinkType.raw, frame: v4, v6: false),
            LinkCase(name: "RAW(12) IPv6", linkType: LinkType.raw, frame: v6, v6: true),
            LinkCase(name: "RAW(14) IPv4", linkType: LinkType.rawOpenBSD, frame: v4, v6: false),
            LinkCase(name: "RAW(14) IPv6", linkType: LinkType.rawOpenBSD, frame: v6, v6: true),
            LinkCase(name: "RAW(101) IPv4", linkType: LinkType.rawLinktype, frame: v4, v6: false),
            LinkCase(name: "RAW(101) IPv6", linkType: LinkType.rawLinktype, frame: v6, v6: true),
            LinkCase(name: "IPV4(228)", linkType: LinkType.ipv4, frame: v4, v6: false),
            LinkCase(name: "IPV6(229)", linkType: LinkType.ipv6, frame: v6, v6: true),
        ]
    }()

    @Test(arguments: linkCases)
    func linkTypeDecodesTCP(_ c: LinkCase) {
        let (seen, skipped) = decodeFrames(c.linkType, [c.frame])
        #expect(skipped.isEmpty)
        #expect(seen.count == 1)
        guard let p = seen.first else { return }
        #expect(p.transport == .tcp)
        #expect(p.source == (c.v6 ? Frames.client6 : Frames.client4))
        #expect(p.destination == (c.v6 ? Frames.server6 : Frames.server4))
        #expect(p.sequence == Frames.seq)
        #expect(p.acknowledgment == Frames.ack)
        #expect(p.flags == TCPFlags([.ack, .psh]).rawValue)
        #expect(p.payload == Frames.payload)
        #expect(p.wirePayloadLength == Frames.payload.count)
        #expect(p.vlans == c.vlans)
    }

    @Test func linkTypeListIsComplete() {
        #expect(Set(LinkType.supported) == Set(Self.linkCases.map(\.linkType)))
    }

    // MARK: UDP and transport details

    @Test(arguments: [(LinkType.raw, false), (LinkType.raw, true), (LinkType.ipv4, false), (LinkType.ipv6, true)])
    func udp(_ linkType: Int32, _ v6: Bool) {
        let (seen, skipped) = decodeFrames(linkType, [v6 ? Frames.v6UDP : Frames.v4UDP])
        #expect(skipped.isEmpty)
        #expect(seen.count == 1)
        guard let p = seen.first else { return }
        #expect(p.transport == .udp)
        #expect(p.source == (v6 ? Frames.client6 : Frames.client4))
        #expect(p.destination == (v6 ? Frames.server6 : Frames.server4))
        #expect(p.payload == Frames.payload)
        #expect(p.wirePayloadLength == Frames.payload.count)
        #expect(p.sequence == 0 && p.flags == 0)
    }

    @Test func ethernetPaddingIsNotPayload() {
        // A 1-byte UDP datagram padded to the 60-byte Ethernet minimum, plus a 4-byte trailer.
        let ip = PacketBuilder.ipv4UDP(src: Frames.client4, dst: Frames.server4, payload: [0x41])
        var frame = PacketBuilder.ethernet(ip)
        frame += [UInt8](repeating: 0xEE, count: 64 - frame.count)
        let tcpFrame = PacketBuilder.ethernet(PacketBuilder.ipv4TCP(src: Frames.client4, dst: Frames.server4, seq: 9, ack: 0,
                                                                    flags: [.syn], payload: [])) + [0xEE, 0xEE, 0xEE, 0xEE, 0xEE, 0xEE]
        let (seen, skipped) = decodeFrames(LinkType.ethernet, [frame, tcpFrame])
        #expect(skipped.isEmpty)
        #expect(seen.map(\.payload) == [[0x41], []])
        #expect(seen.map(\.wirePayloadLength) == [1, 0])
    }

    @Test func udpPayloadEndsAtUDPLength() {
        // UDP length says 3 payload bytes; the IP datagram carries 2 more bytes after them.
        var body = PacketBuilder.udp(src: 1000, dst: 7001, payload: [1, 2, 3, 4, 5])
        body[5] = 8 + 3
        let (seen, _) = decodeFrames(LinkType.raw, [PacketBuilder.ipv4(src: Frames.client4.ip, dst: Frames.server4.ip, proto: 17, body: body)])
        #expect(seen.first?.payload == [1, 2, 3])
        #expect(seen.first?.wirePayloadLength == 3)
    }

    @Test func tcpOptionsAreSkipped() {
        var tcp = PacketBuilder.tcp(src: 40001, dst: 7000, seq: 77, payload: [])
        tcp[12] = 0x80  // data offset 8 words = 32 bytes
        tcp += [2, 4, 0x05, 0xB4, 1, 1, 4, 2, 1, 3, 3, 7] + Array("data".utf8)
        let (seen, skipped) = decodeFrames(LinkType.raw, [PacketBuilder.ipv4(src: Frames.client4.ip, dst: Frames.server4.ip, proto: 6, body: tcp)])
        #expect(skipped.isEmpty)
        #expect(seen.first?.payload == Array("data".utf8))
        #expect(seen.first?.sequence == 77)
    }

    @Test func ipv4OptionsAreSkipped() {
        var ip = Frames.v4TCP
        ip[0] = 0x46
        ip.insert(contentsOf: [0x94, 0x04, 0, 0], at: 20)  // router alert
        let total = ip.count
        ip[2] = UInt8(total >> 8); ip[3] = UInt8(total & 0xff)
        let (seen, skipped) = decodeFrames(LinkType.raw, [ip])
        #expect(skipped.isEmpty)
        #expect(seen.first?.payload == Frames.payload)
        #expect(seen.first?.destination == Frames.server4)
    }

    @Test func snapLengthCutPayloadKeepsWireLength() {
        let frame = Array(Frames.v4TCP.dropLast(4))
        let (seen, skipped) = decodeFrames(LinkType.raw, [frame])
        #expect(skipped.isEmpty)
        #expect(seen.first?.payload == Array(Frames.payload.dropLast(4)))
        #expect(seen.first?.wirePayloadLength == Frames.payload.count)
    }

    // MARK: IPv6 extension headers

    @Test func ipv6ExtensionHeaderChain() {
        typealias B = PacketBuilder
        let tcp = B.tcp(src: Frames.client6.port, dst: Frames.server6.port, seq: Frames.seq, ack: Frames.ack, payload: Frames.payload)
        // hop-by-hop (8) -> destination options (16) -> routing (24) -> destination options (8) -> TCP
        let chain = B.extensionHeader(next: 60, length8: 0) + B.extensionHeader(next: 43, length8: 1)
            + B.routingHeader(next: 60) + B.extensionHeader(next: 6, length8: 0)
        let frame = B.ipv6(src: Frames.client6.ip, dst: Frames.server6.ip, next: 0, body: chain + tcp)
        for linkType in [LinkType.ethernet, LinkType.raw, LinkType.ipv6] {
            let f = linkType == LinkType.ethernet ? B.ethernet(frame, etherType: 0x86DD) : frame
            let (seen, skipped) = decodeFrames(linkType, [f])
            #expect(skipped.isEmpty)
            #expect(seen.count == 1)
            #expect(seen.first?.payload == Frames.payload)
            #expect(seen.first?.sequence == Frames.seq)
            #expect(seen.first?.source == Frames.client6)
            #expect(seen.first?.destination == Frames.server6)
            #expect(seen.first?.wirePayloadLength == Frames.payload.count)
        }
    }

    @Test func ipv6AuthenticationHeaderIsSkipped() {
        typealias B = PacketBuilder
        // AH: length in 4-byte units minus 2; 3 -> 20 bytes (12 fixed + 8 ICV).
        let ah: [UInt8] = [17, 3, 0, 0] + [UInt8](repeating: 0xAB, count: 16)
        let frame = B.ipv6(src: Frames.client6.ip, dst: Frames.server6.ip, next: 51,
                           body: ah + B.udp(src: Frames.client6.port, dst: Frames.server6.port, payload: Frames.payload))
        let (seen, skipped) = decodeFrames(LinkType.raw, [frame])
        #expect(skipped.isEmpty)
        #expect(seen.first?.transport == .udp)
        #expect(seen.first?.payload == Frames.payload)
    }

    @Test func ipv6AtomicFragment() {
        typealias B = PacketBuilder
        let udp = B.udp(src: Frames.client6.port, dst: Frames.server6.port, payload: Frames.payload)
        let frame = B.ipv6(src: Frames.client6.ip, dst: Frames.server6.ip, next: 44,
                           body: B.fragmentHeader(next: 17, offset: 0, more: false, id: 0x1234) + udp)
        let (seen, skipped) = decodeFrames(LinkType.raw, [frame])
        #expect(skipped.isEmpty)
        #expect(seen.first?.payload == Frames.payload)
        #expect(seen.first?.source == Frames.client6)
    }

    static func ipv6Fragments(id: UInt32 = 0xCAFE) -> [[UInt8]] {
        typealias B = PacketBuilder
        let segment = B.tcp(src: Frames.client6.port, dst: Frames.server6.port, seq: Frames.seq, ack: Frames.ack,
                            payload: Array("0123456789abcdefghijKLMNOPQRST".utf8))  // 50 bytes
        return [(0, 32, true), (32, 50, false)].map { start, end, more in
            B.ipv6(src: Frames.client6.ip, dst: Frames.server6.ip, next: 0,
                   body: B.extensionHeader(next: 44) + B.fragmentHeader(next: 6, offset: start, more: more, id: id)
                   + Array(segment[start..<end]))
        }
    }

    @Test(arguments: [[0, 1], [1, 0]])
    func ipv6TwoFragmentDatagram(_ order: [Int]) {
        let fragments = Self.ipv6Fragments()
        let (seen, skipped) = decodeFrames(LinkType.raw, order.map { fragments[$0] })
        #expect(skipped == [.fragmentPending: 1])
        #expect(seen.count == 1)
        #expect(seen.first?.payload == Array("0123456789abcdefghijKLMNOPQRST".utf8))
        #expect(seen.first?.sequence == Frames.seq)
        #expect(seen.first?.source == Frames.client6 && seen.first?.destination == Frames.server6)
    }

    // MARK: IPv4 fragments

    static let fragmentedPayload = Array("0123456789abcdefghijKLMNOPQRST".utf8)

    /// One 50-byte TCP segment in three fragments: [0,24) [24,40) [40,50).
    static func ipv4Fragments(id: UInt16 = 0x4242, src: IPAddress = Frames.client4.ip) -> [[UInt8]] {
        let segment = PacketBuilder.tcp(src: Frames.client4.port, dst: Frames.server4.port, seq: Frames.seq,
                                        ack: Frames.ack, payload: fragmentedPayload)
        return [(0, 24, true), (24, 40, true), (40, 50, false)].map { start, end, more in
            PacketBuilder.ipv4(src: src, dst: Frames.server4.ip, proto: 6, body: Array(segment[start..<end]), id: id,
                               flagsOffset: (more ? 0x2000 : 0) | UInt16(start / 8))
        }
    }

    struct FragmentCase: CustomTestStringConvertible, Sendable {
        let name: String
        let order: [Int]
        let complete: Bool
        let pending: Int
        var testDescription: String { name }
    }

    static let fragmentCases: [FragmentCase] = [
        FragmentCase(name: "in order", order: [0, 1, 2], complete: true, pending: 2),
        FragmentCase(name: "out of order", order: [2, 0, 1], complete: true, pending: 2),
        FragmentCase(name: "reversed", order: [2, 1, 0], complete: true, pending: 2),
        FragmentCase(name: "duplicate first fragment", order: [0, 0, 1, 2], complete: true, pending: 3),
        FragmentCase(name: "duplicate middle fragment", order: [0, 1, 1, 2], complete: true, pending: 3),
        FragmentCase(name: "never completed", order: [0, 2], complete: false, pending: 2),
        FragmentCase(name: "only the last", order: [2], complete: false, pending: 1),
    ]

    @Test(arguments: fragmentCases)
    func ipv4Fragments(_ c: FragmentCase) {
        let fragments = Self.ipv4Fragments()
        let (seen, skipped) = decodeFrames(LinkType.raw, c.order.map { fragments[$0] })
        #expect(skipped == [.fragmentPending: c.pending])
        #expect(seen.count == (c.complete ? 1 : 0))
        if c.complete {
            #expect(seen.first?.payload == Self.fragmentedPayload)
            #expect(seen.first?.wirePayloadLength == Self.fragmentedPayload.count)
            #expect(seen.first?.sequence == Frames.seq)
            #expect(seen.first?.source == Frames.client4 && seen.first?.destination == Frames.server4)
        }
    }

    @Test func interleavedDatagramsAreKeptApart() {
        let a = Self.ipv4Fragments(id: 1), b = Self.ipv4Fragments(id: 2, src: IPAddress("192.0.2.99")!)
        let (seen, skipped) = decodeFrames(LinkType.raw, [a[0], b[0], b[2], a[2], a[1], b[1]])
        #expect(skipped == [.fragmentPending: 4])
        #expect(seen.map(\.source.ip) == [Frames.client4.ip, IPAddress("192.0.2.99")!])
        #expect(seen.allSatisfy { $0.payload == Self.fragmentedPayload })
    }

    @Test func fragmentsExpireAfterThirtySecondsOfPacketTime() {
        let f = Self.ipv4Fragments()
        // The first piece is 31 s old when the rest arrives: it is gone, so no datagram.
        let (seen, skipped) = decodeFrames(LinkType.raw, [f[0], f[1], f[2]], times: [0, 31, 31])
        #expect(seen.isEmpty)
        #expect(skipped == [.fragmentPending: 3])
        // Resent in time, it completes.
        let (again, _) = decodeFrames(LinkType.raw, [f[0], f[1], f[2], f[0]], times: [0, 31, 31, 32])
        #expect(again.count == 1)
    }

    @Test func oversizedFragmentIsDropped() {
        let frame = PacketBuilder.ipv4(src: Frames.client4.ip, dst: Frames.server4.ip, proto: 6,
                                       body: [UInt8](repeating: 0, count: 16), id: 9, flagsOffset: 0x1FFF)
        let (seen, skipped) = decodeFrames(LinkType.raw, [frame])
        #expect(seen.isEmpty)
        #expect(skipped == [.fragmentDropped: 1])
    }

    @Test func fragmentCutBySnapLengthIsDropped() {
        let frame = Array(Self.ipv4Fragments()[0].dropLast(3))
        let (seen, skipped) = decodeFrames(LinkType.raw, [frame])
        #expect(seen.isEmpty)
        #expect(skipped == [.fragmentDropped: 1])
    }

    // MARK: errors

    struct ErrorCase: CustomTestStringConvertible, Sendable {
        let name: String
        let linkType: Int32
        let frame: [UInt8]
        let reason: SkipReason
        var testDescription: String { "\(name) -> \(reason.rawValue)" }
    }

    static let errorCases: [ErrorCase] = {
        typealias B = PacketBuilder
        let v4 = Frames.v4TCP, v6 = Frames.v6TCP
        let eth = LinkType.ethernet, raw = LinkType.raw
        let padTo40 = v4 + [UInt8](repeating: 0, count: 40)
        var cases: [ErrorCase] = []
        func add(_ name: String, _ linkType: Int32, _ frame: [UInt8], _ reason: SkipReason) {
            cases.append(ErrorCase(name: name, linkType: linkType, frame: frame, reason: reason))
        }
        // Empty frames, for every link type.
        for lt in [LinkType.ethernet, LinkType.null, LinkType.loop, LinkType.raw, LinkType.rawOpenBSD,
                   LinkType.rawLinktype, LinkType.linuxSLL, LinkType.linuxSLL2] {
            add("empty frame, link type \(lt)", lt, [], .malformedLink)
        }
        add("empty frame, IPV4", LinkType.ipv4, [], .truncated)
        add("empty frame, IPV6", LinkType.ipv6, [], .truncated)
        // Shorter than the link header.
        add("Ethernet 13 bytes", eth, Array(B.ethernet(v4).prefix(13)), .malformedLink)
        add("Ethernet VLAN tag cut", eth, Array(B.ethernet(v4, vlans: [5]).prefix(16)), .malformedLink)
        add("Ethernet inner QinQ tag cut", eth, Array(B.ethernet(v4, vlans: [5, 6]).prefix(19)), .malformedLink)
        add("six stacked VLAN tags", eth, B.ethernet(v4, vlans: [1, 2, 3, 4, 5, 6]), .malformedLink)
        add("SLL 15 bytes", LinkType.linuxSLL, Array(B.sll(v4).prefix(15)), .malformedLink)
        add("SLL2 19 bytes", LinkType.linuxSLL2, Array(B.sll2(v4).prefix(19)), .malformedLink)
        add("NULL 3 bytes", LinkType.null, [2, 0, 0], .malformedLink)
        add("LOOP 3 bytes", LinkType.loop, [0, 0, 0], .malformedLink)
        // Shorter than the IP header.
        add("Ethernet + 19 bytes of IPv4", eth, Array(B.ethernet(v4).prefix(14 + 19)), .truncated)
        add("Ethernet + 1 byte of IPv4", eth, Array(B.ethernet(v4).prefix(15)), .truncated)
        add("Ethernet, nothing after the ethertype", eth, Array(B.ethernet(v4).prefix(14)), .truncated)
        add("IPv4 with options, options cut", raw, B.patch(Array(v4.prefix(22)), at: 0, [0x46]), .truncated)
        add("IPv6 39 bytes", raw, Array(v6.prefix(39)), .truncated)
        add("Ethernet + 39 bytes of IPv6", eth, Array(B.ethernet(v6, etherType: 0x86DD).prefix(14 + 39)), .truncated)
        // IPv4 header fields.
        add("IHL 4", raw, B.patch(v4, at: 0, [0x44]), .malformedIPv4)
        add("IHL 0", LinkType.ipv4, B.patch(v4, at: 0, [0x40]), .malformedIPv4)
        add("IPv6 packet on ethertype 0x0800", eth, B.ethernet(v6), .malformedIPv4)
        add("IPv6 packet on link type IPV4", LinkType.ipv4, v6, .malformedIPv4)
        add("IPv6 packet on NULL AF_INET", LinkType.null, B.null(v6, family: 2, littleEndian: true), .malformedIPv4)
        add("IPv4 packet on ethertype 0x86DD", eth, B.ethernet(padTo40, etherType: 0x86DD), .malformedIPv6)
        add("IPv4 packet on link type IPV6", LinkType.ipv6, padTo40, .malformedIPv6)
        add("IP version 5 on RAW", raw, B.patch(v4, at: 0, [0x55]), .notIP)
        add("IP version 0 on RAW", raw, [UInt8](repeating: 0, count: 60), .notIP)
        add("total length 10 < header", raw, B.patch(v4, at: 2, [0, 10]), .malformedIPv4)
        add("total length 19 < header", raw, B.patch(v4, at: 2, [0, 19]), .malformedIPv4)
        add("total length 23 < IHL 6 header", raw,
            B.patch(B.patch(v4, at: 0, [0x46]), at: 2, [0, 23]), .malformedIPv4)
        // IPv6 header fields.
        add("IPv6 payload length 0", raw, B.patch(v6, at: 4, [0, 0]), .malformedIPv6)
        add("IPv6 sixteen hop-by-hop headers", raw,
            B.ipv6(src: Frames.client6.ip, dst: Frames.server6.ip, next: 0,
                   body: (0..<16).flatMap { _ in B.extensionHeader(next: 0) } + B.tcp(src: 1, dst: 2)), .malformedIPv6)
        add("IPv6 extension header cut", raw,
            Array(B.ipv6(src: Frames.client6.ip, dst: Frames.server6.ip, next: 0,
                         body: B.extensionHeader(next: 6, length8: 10) + B.tcp(src: 1, dst: 2)).prefix(40 + 30)), .truncated)
        add("IPv6 extension header without its length byte", raw,
            Array(B.ipv6(src: Frames.client6.ip, dst: Frames.server6.ip, next: 0,
                         body: B.extensionHeader(next: 6) + B.tcp(src: 1, dst: 2)).prefix(41)), .truncated)
        add("IPv6 fragment header cut", raw,
            Array(B.ipv6(src: Frames.client6.ip, dst: Frames.server6.ip, next: 44,
                         body: B.fragmentHeader(next: 6, offset: 0, more: true, id: 1) + B.tcp(src: 1, dst: 2)).prefix(45)),
            .truncated)
        // TCP.
        add("TCP data offset 4", raw, B.patch(v4, at: 32, [0x40]), .malformedTCP)
        add("TCP data offset 0", raw, B.patch(v4, at: 32, [0x00]), .malformedTCP)
        add("TCP data offset 15 past the end of the segment", raw, B.patch(v4, at: 32, [0xF0]), .malformedTCP)
        add("IPv6 TCP data offset 4", raw, B.patch(v6, at: 40 + 12, [0x40]), .malformedTCP)
        add("TCP header cut by the snap length", raw, Array(v4.prefix(30)), .truncated)
        add("TCP options cut by the snap length", raw,
            Array(B.patch(v4, at: 32, [0x80]).prefix(20 + 28)), .truncated)
        add("TCP segment shorter than 20 bytes on the wire", raw,
            B.patch(Array(v4.prefix(30)), at: 2, [0, 30]), .malformedTCP)
        // UDP.
        let u4 = Frames.v4UDP
        add("UDP length 4", raw, B.patch(u4, at: 24, [0, 4]), .malformedUDP)
        add("UDP length 0", raw, B.patch(u4, at: 24, [0, 0]), .malformedUDP)
        add("UDP length beyond the IP datagram", raw, B.patch(u4, at: 24, [0, 200]), .malformedUDP)
        add("IPv6 UDP length beyond the payload", raw, B.patch(Frames.v6UDP, at: 44, [0xFF, 0xFF]), .malformedUDP)
        add("UDP header cut by the snap length", raw, Array(u4.prefix(25)), .truncated)
        add("UDP datagram shorter than 8 bytes on the wire", raw, B.patch(Array(u4.prefix(25)), at: 2, [0, 25]),
            .malformedUDP)
        // Traffic Wirebeat does not look at.
        add("ARP", eth, B.ethernet([UInt8](repeating: 0, count: 28), etherType: 0x0806), .notIP)
        add("ARP in a VLAN", eth, B.ethernet([UInt8](repeating: 0, count: 28), etherType: 0x0806, vlans: [3]), .notIP)
        add("SLL ARP", LinkType.linuxSLL, B.sll([UInt8](repeating: 0, count: 28), proto: 0x0806), .notIP)
        add("SLL2 LLDP", LinkType.linuxSLL2, B.sll2([UInt8](repeating: 0, count: 28), proto: 0x88CC), .notIP)
        add("NULL AF 7", LinkType.null, B.null(v4, family: 7, littleEndian: true), .notIP)
        add("LOOP with a host-order (little-endian) family", LinkType.loop, B.null(v4, family: 2, littleEndian: true), .notIP)
        add("ICMP", raw, B.ipv4(src: Frames.client4.ip, dst: Frames.server4.ip, proto: 1, body: [8, 0, 0, 0, 0, 1, 0, 1]),
            .otherIPProtocol)
        add("GRE", raw, B.ipv4(src: Frames.client4.ip, dst: Frames.server4.ip, proto: 47, body: [0, 0, 8, 0]), .otherIPProtocol)
        add("ICMPv6", raw, B.ipv6(src: Frames.client6.ip, dst: Frames.server6.ip, next: 58, body: [128, 0, 0, 0, 0, 1, 0, 1]),
            .otherIPProtocol)
        add("IPv6 no next header", raw, B.ipv6(src: Frames.client6.ip, dst: Frames.server6.ip, next: 59, body: [0, 0]),
            .otherIPProtocol)
        add("link type 105 (802.11)", 105, B.ethernet(v4), .unsupportedLinkType)
        add("link type -1", -1, v4, .unsupportedLinkType)
        add("link type 999, empty", 999, [], .unsupportedLinkType)
        add("IPv6 ESP", raw, B.ipv6(src: Frames.client6.ip, dst: Frames.server6.ip, next: 50, body: [0, 0, 1, 0, 0, 0, 0, 1] + Frames.payload),
            .ipsec)
        add("IPv6 ESP after hop-by-hop", raw,
            B.ipv6(src: Frames.client6.ip, dst: Frames.server6.ip, next: 0, body: B.extensionHeader(next: 50) + [0, 0, 1, 0, 0, 0, 0, 1]),
            .ipsec)
        add("IPv4 ESP", raw, B.ipv4(src: Frames.client4.ip, dst: Frames.server4.ip, proto: 50, body: [0, 0, 1, 0, 0, 0, 0, 1] + Frames.payload),
            .ipsec)
        add("IPv4 ESP over Ethernet", eth,
            B.ethernet(B.ipv4(src: Frames.client4.ip, dst: Frames.server4.ip, proto: 50, body: [0, 0, 1, 0, 0, 0, 0, 1])), .ipsec)
        return cases
    }()

    @Test(arguments: errorCases)
    func errorIsCountedByReason(_ c: ErrorCase) {
        let (seen, skipped) = decodeFrames(c.linkType, [c.frame])
        #expect(seen.isEmpty)
        #expect(skipped == [c.reason: 1])
    }

    @Test func countsAccumulateAcrossPackets() {
        var decoder = PacketDecoder()
        var handed = 0
        let frames: [[UInt8]] = [[], [], Frames.v4TCP, PacketBuilder.ethernet([], etherType: 0x0806)]
        for f in frames {
            f.withUnsafeBytes { decoder.decode(linkType: LinkType.ethernet, timestamp: .zero, frame: $0) { _ in handed += 1 } }
        }
        // The raw IPv4 frame read as Ethernet is garbage: its "ethertype" is bytes 12-13 (source address).
        #expect(handed == 0)
        #expect(decoder.skipped[.malformedLink] == 2)
        #expect(decoder.skipped[.notIP] == 2)
        #expect(decoder.skipped.values.reduce(0, +) == 4)
    }

    @Test func malformedClassification() {
        let malformed: Set<SkipReason> = [.malformedLink, .malformedIPv4, .malformedIPv6, .malformedTCP, .malformedUDP, .truncated]
        for reason in SkipReason.allCases {
            #expect(reason.isMalformed == malformed.contains(reason), "\(reason)")
        }
    }
}

extension DecoderTests {
    /// RFC 8200: headers after the fragment header belong to the fragmentable part, so the
    /// chain must be walked after reassembly. The decoder walks it in each fragment instead:
    /// the first fragment's data is stored without its destination options (offsets shift by
    /// 8) and the second fragment's data is read as a destination options header.
    @Test func ipv6FragmentsWithDestinationOptionsAfterTheFragmentHeader() {
        typealias B = PacketBuilder
        let segment = B.tcp(src: Frames.client6.port, dst: Frames.server6.port, seq: Frames.seq, ack: Frames.ack,
                            payload: Array("0123456789abcdefghijKLMNOPQRST".utf8))
        let fragmentable = B.extensionHeader(next: 6) + segment  // 58 bytes
        let frames = [(0, 32, true), (32, 58, false)].map { start, end, more in
            B.ipv6(src: Frames.client6.ip, dst: Frames.server6.ip, next: 44,
                   body: B.fragmentHeader(next: 60, offset: start, more: more, id: 77) + Array(fragmentable[start..<end]))
        }
        let (seen, _) = decodeFrames(LinkType.raw, frames)
        // Extension headers after the fragment header are walked once the datagram is whole.
        #expect(seen.count == 1)
        #expect(seen.first?.payload == Array("0123456789abcdefghijKLMNOPQRST".utf8))
    }
}

@Suite struct VLANTagsTests {
    @Test func holdsTagsInOrderAndComparesByValue() {
        var tags = VLANTags()
        #expect(tags.isEmpty && tags.count == 0 && tags.first == nil)
        let addedFirst = tags.append(0xF123)  // PCP and DEI bits are cut off
        let addedSecond = tags.append(7)
        #expect(addedFirst && addedSecond)
        #expect(Array(tags) == [0x123, 7])
        #expect(tags == [0x123, 7])
        #expect(tags != [7, 0x123])
        #expect(tags != [0x123])
        #expect(tags.description == "[291, 7]")
        #expect(Set([tags, VLANTags([0x123, 7]), VLANTags()]).count == 2)
    }

    @Test func refusesMoreThanItsCapacity() {
        var tags = VLANTags()
        for i in 1...VLANTags.capacity {
            let added = tags.append(UInt16(i))
            #expect(added)
        }
        let addedBeyond = tags.append(99)
        #expect(!addedBeyond)
        #expect(Array(tags) == (1...VLANTags.capacity).map { UInt16($0) })
        #expect(VLANTags(1...9).count == VLANTags.capacity)
    }
}
