/// Link-layer types Wirebeat decodes (pcap DLT values).
public enum LinkType {
    public static let null: Int32 = 0          // BSD loopback, host-order address family
    public static let ethernet: Int32 = 1
    public static let raw: Int32 = 12           // DLT_RAW on Linux
    public static let rawOpenBSD: Int32 = 14
    public static let rawLinktype: Int32 = 101  // LINKTYPE_RAW as written in files
    public static let loop: Int32 = 108         // OpenBSD loopback, network-order family
    public static let linuxSLL: Int32 = 113
    public static let ipv4: Int32 = 228
    public static let ipv6: Int32 = 229
    public static let linuxSLL2: Int32 = 276

    public static let supported: [Int32] = [null, ethernet, raw, rawOpenBSD, rawLinktype, loop, linuxSLL, ipv4, ipv6, linuxSLL2]
}

/// Decodes link, IP (with fragment reassembly) and TCP/UDP headers. Damaged or
/// unsupported packets are counted by reason in `skipped` and dropped; nothing here traps
/// on any input.
public struct PacketDecoder {
    public private(set) var skipped: [SkipReason: Int] = [:]
    var fragments = FragmentReassembler()

    public init() {}

    mutating func skip(_ reason: SkipReason) { skipped[reason, default: 0] += 1 }

    /// Decodes one captured frame; calls `handler` zero or one time.
    public mutating func decode(linkType: Int32, timestamp: Timestamp, frame: UnsafeRawBufferPointer,
                                handler: (DecodedPacket) -> Void) {
        var vlans = VLANTags()
        var reader = ByteCursor(frame)
        switch linkType {
        case LinkType.ethernet:
            guard reader.skip(12), let etherType = reader.readUInt16() else { return skip(.malformedLink) }
            decodeEtherType(etherType, &reader, &vlans, timestamp, handler)
        case LinkType.null, LinkType.loop:
            guard let raw = reader.readUInt32() else { return skip(.malformedLink) }
            // DLT_NULL is in the capturing host's byte order: accept either.
            let family = linkType == LinkType.loop ? raw : (raw > 0xFFFF ? raw.byteSwapped : raw)
            switch family {
            case 2: decodeIPv4(&reader, vlans, timestamp, handler)
            case 10, 24, 28, 30: decodeIPv6(&reader, vlans, timestamp, handler)
            default: skip(.notIP)
            }
        case LinkType.raw, LinkType.rawOpenBSD, LinkType.rawLinktype:
            decodeByVersion(&reader, vlans, timestamp, handler)
        case LinkType.ipv4: decodeIPv4(&reader, vlans, timestamp, handler)
        case LinkType.ipv6: decodeIPv6(&reader, vlans, timestamp, handler)
        case LinkType.linuxSLL:
            guard reader.skip(14), let proto = reader.readUInt16() else { return skip(.malformedLink) }
            decodeEtherType(proto, &reader, &vlans, timestamp, handler)
        case LinkType.linuxSLL2:
            guard let proto = reader.readUInt16(), reader.skip(18) else { return skip(.malformedLink) }
            decodeEtherType(proto, &reader, &vlans, timestamp, handler)
        default:
            skip(.unsupportedLinkType)
        }
    }

    private mutating func decodeEtherType(_ first: UInt16, _ reader: inout ByteCursor, _ vlans: inout VLANTags,
                                          _ ts: Timestamp, _ handler: (DecodedPacket) -> Void) {
        var etherType = first
        // 802.1Q, 802.1ad (QinQ) and the old 0x9100 tag, stacked up to `VLANTags.capacity` deep.
        while etherType == 0x8100 || etherType == 0x88A8 || etherType == 0x9100 {
            // More tags than `VLANTags` holds is no real frame: damage.
            guard let tci = reader.readUInt16(), let next = reader.readUInt16(), vlans.append(tci & 0x0FFF) else {
                return skip(.malformedLink)
            }
            etherType = next
        }
        switch etherType {
        case 0x0800: decodeIPv4(&reader, vlans, ts, handler)
        case 0x86DD: decodeIPv6(&reader, vlans, ts, handler)
        default: skip(.notIP)
        }
    }

    private mutating func decodeByVersion(_ reader: inout ByteCursor, _ vlans: VLANTags, _ ts: Timestamp,
                                          _ handler: (DecodedPacket) -> Void) {
        guard let first = reader.peekUInt8() else { return skip(.malformedLink) }
        switch first >> 4 {
        case 4: decodeIPv4(&reader, vlans, ts, handler)
        case 6: decodeIPv6(&reader, vlans, ts, handler)
        default: skip(.notIP)
        }
    }

    private mutating func decodeIPv4(_ reader: inout ByteCursor, _ vlans: VLANTags, _ ts: Timestamp,
                                     _ handler: (DecodedPacket) -> Void) {
        let start = reader.offset
        guard let verIHL = reader.peekUInt8() else { return skip(.truncated) }
        let headerLength = Int(verIHL & 0x0F) * 4
        guard verIHL >> 4 == 4, headerLength >= 20 else { return skip(.malformedIPv4) }
        guard reader.remaining >= headerLength else { return skip(.truncated) }
        // The fixed 20 bytes are there: read at their offsets, without a check per field.
        let totalLength = Int(reader.uncheckedUInt16(at: 2))
        let id = reader.uncheckedUInt16(at: 4)
        let flagsOffset = reader.uncheckedUInt16(at: 6)
        let proto = reader.uncheckedUInt8(at: 9)
        let src = IPAddress(v4: reader.uncheckedUInt32(at: 12))
        let dst = IPAddress(v4: reader.uncheckedUInt32(at: 16))
        guard totalLength >= headerLength else { return skip(.malformedIPv4) }
        _ = reader.seek(to: start + headerLength)
        // Bytes of the IP payload on the wire, and how many of them were captured
        // (Ethernet padding after totalLength is ignored).
        let wireLength = totalLength - headerLength
        let captured = min(wireLength, reader.remaining)
        let moreFragments = flagsOffset & 0x2000 != 0
        let fragmentOffset = Int(flagsOffset & 0x1FFF) * 8
        if moreFragments || fragmentOffset > 0 {
            guard captured == wireLength else { return skip(.fragmentDropped) }
            let key = FragmentKey(source: src, destination: dst, protocolNumber: proto, identification: UInt32(id))
            let piece = reader.slice(captured)
            switch fragments.add(key: key, offset: fragmentOffset, isLast: !moreFragments, data: piece, now: ts) {
            case .pending: skip(.fragmentPending)
            case .dropped: skip(.fragmentDropped)
            case .complete(let datagram):
                datagram.withUnsafeBytes { bytes in
                    var inner = ByteCursor(bytes)
                    decodeTransport(proto, &inner, bytes.count, src, dst, vlans, ts, handler)
                }
            }
            return
        }
        var inner = ByteCursor(reader.slice(captured))
        decodeTransport(proto, &inner, wireLength, src, dst, vlans, ts, handler)
    }

    private mutating func decodeIPv6(_ reader: inout ByteCursor, _ vlans: VLANTags, _ ts: Timestamp,
                                     _ handler: (DecodedPacket) -> Void) {
        guard reader.remaining >= 40 else { return skip(.truncated) }
        let versionWord = reader.readUInt32()!
        guard versionWord >> 28 == 6 else { return skip(.malformedIPv6) }
        let payloadLength = Int(reader.readUInt16()!)
        let next = reader.readUInt8()!
        _ = reader.skip(1)
        let src = IPAddress(v6High: reader.readUInt64()!, low: reader.readUInt64()!)
        let dst = IPAddress(v6High: reader.readUInt64()!, low: reader.readUInt64()!)
        guard payloadLength > 0 else { return skip(.malformedIPv6) }  // jumbograms unsupported
        var body = ByteCursor(reader.slice(min(payloadLength, reader.remaining)))
        walkIPv6(next: next, &body, wireRemaining: payloadLength, src, dst, vlans, ts, handler, reassembled: false)
    }

    /// Walks the IPv6 extension header chain to the transport header. A fragment header
    /// hands the rest of the packet to reassembly; the chain goes on in the whole datagram.
    private mutating func walkIPv6(next first: UInt8, _ body: inout ByteCursor, wireRemaining wire: Int,
                                   _ src: IPAddress, _ dst: IPAddress, _ vlans: VLANTags, _ ts: Timestamp,
                                   _ handler: (DecodedPacket) -> Void, reassembled: Bool) {
        var next = first
        var wireRemaining = wire
        var hops = 0
        while true {
            hops += 1
            guard hops < 16 else { return skip(.malformedIPv6) }
            switch next {
            case 0, 43, 60:  // hop-by-hop, routing, destination options
                guard let nh = body.readUInt8(), let len = body.readUInt8() else { return skip(.truncated) }
                let size = (Int(len) + 1) * 8
                guard body.skip(size - 2) else { return skip(.truncated) }
                wireRemaining -= size
                next = nh
            case 51:  // authentication header
                guard let nh = body.readUInt8(), let len = body.readUInt8() else { return skip(.truncated) }
                let size = (Int(len) + 2) * 4
                guard body.skip(size - 2) else { return skip(.truncated) }
                wireRemaining -= size
                next = nh
            case 44:  // fragment
                guard !reassembled else { return skip(.malformedIPv6) }
                guard let nh = body.readUInt8(), body.skip(1), let offsetFlags = body.readUInt16(),
                      let id = body.readUInt32() else { return skip(.truncated) }
                wireRemaining -= 8
                let offset = Int(offsetFlags & 0xFFF8), more = offsetFlags & 1 != 0
                if offset == 0 && !more {  // atomic fragment: nothing to reassemble
                    next = nh
                    continue
                }
                guard wireRemaining >= 0, body.remaining == wireRemaining else { return skip(.fragmentDropped) }
                let key = FragmentKey(source: src, destination: dst, protocolNumber: 44, identification: id)
                switch fragments.add(key: key, offset: offset, isLast: !more, data: body.slice(body.remaining), now: ts) {
                case .pending: skip(.fragmentPending)
                case .dropped: skip(.fragmentDropped)
                case .complete(let datagram):
                    // The next-header value of the first fragment describes the datagram.
                    datagram.withUnsafeBytes { bytes in
                        var inner = ByteCursor(bytes)
                        walkIPv6(next: nh, &inner, wireRemaining: bytes.count, src, dst, vlans, ts, handler, reassembled: true)
                    }
                }
                return
            case 50: return skip(.ipsec)
            case 59: return skip(.otherIPProtocol)
            default:
                guard wireRemaining >= 0 else { return skip(.malformedIPv6) }
                var inner = ByteCursor(body.slice(body.remaining))
                return decodeTransport(next, &inner, wireRemaining, src, dst, vlans, ts, handler)
            }
        }
    }

    /// `reader` holds the captured transport bytes; `wireLength` is their length on the wire.
    private mutating func decodeTransport(_ proto: UInt8, _ reader: inout ByteCursor, _ wireLength: Int,
                                          _ src: IPAddress, _ dst: IPAddress, _ vlans: VLANTags, _ ts: Timestamp,
                                          _ handler: (DecodedPacket) -> Void) {
        switch proto {
        case 6:
            guard reader.remaining >= 20 else { return skip(reader.remaining < wireLength ? .truncated : .malformedTCP) }
            let srcPort = reader.uncheckedUInt16(at: 0), dstPort = reader.uncheckedUInt16(at: 2)
            let seq = reader.uncheckedUInt32(at: 4), ack = reader.uncheckedUInt32(at: 8)
            let offsetByte = reader.uncheckedUInt8(at: 12), flagByte = reader.uncheckedUInt8(at: 13)
            let headerLength = Int(offsetByte >> 4) * 4
            guard headerLength >= 20, headerLength <= wireLength else { return skip(.malformedTCP) }
            guard reader.seek(to: headerLength) else { return skip(.truncated) }
            let payload = reader.slice(reader.remaining)
            handler(DecodedPacket(timestamp: ts, transport: .tcp, source: Endpoint(ip: src, port: srcPort),
                                  destination: Endpoint(ip: dst, port: dstPort), vlans: vlans,
                                  sequence: seq, acknowledgment: ack, flags: TCPFlags(rawValue: flagByte & 0x1F),
                                  payload: payload, wirePayloadLength: wireLength - headerLength))
        case 17:
            guard reader.remaining >= 8 else { return skip(reader.remaining < wireLength ? .truncated : .malformedUDP) }
            let srcPort = reader.uncheckedUInt16(at: 0), dstPort = reader.uncheckedUInt16(at: 2)
            let length = Int(reader.uncheckedUInt16(at: 4))
            _ = reader.skip(8)
            guard length >= 8, length <= wireLength else { return skip(.malformedUDP) }
            let payload = reader.slice(min(length - 8, reader.remaining))
            handler(DecodedPacket(timestamp: ts, transport: .udp, source: Endpoint(ip: src, port: srcPort),
                                  destination: Endpoint(ip: dst, port: dstPort), vlans: vlans,
                                  payload: payload, wirePayloadLength: length - 8))
        case 50:  // ESP: encrypted, as in the IPv6 header chain
            skip(.ipsec)
        default:
            skip(.otherIPProtocol)
        }
    }
}

/// A bounds-checked big-endian reader over captured bytes: every read fails softly.
struct ByteCursor {
    let base: UnsafeRawBufferPointer
    private(set) var offset = 0

    init(_ base: UnsafeRawBufferPointer) { self.base = base }

    // Everything inlined: read a dozen times per packet (on every worker of a parallel
    // replay), where the calls cost ~100 instructions a packet.
    @inline(__always) var remaining: Int { base.count - offset }

    @inline(__always) mutating func skip(_ n: Int) -> Bool {
        guard n >= 0, n <= remaining else { return false }
        offset += n
        return true
    }
    @inline(__always) mutating func seek(to position: Int) -> Bool {
        guard position >= 0, position <= base.count else { return false }
        offset = position
        return true
    }
    @inline(__always) func peekUInt8() -> UInt8? { remaining >= 1 ? base[offset] : nil }
    @inline(__always) mutating func readUInt8() -> UInt8? {
        guard remaining >= 1 else { return nil }
        defer { offset += 1 }
        return base[offset]
    }
    // One unaligned load each.
    @inline(__always) mutating func readUInt16() -> UInt16? {
        guard remaining >= 2 else { return nil }
        defer { offset += 2 }
        return UInt16(bigEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }
    @inline(__always) mutating func readUInt32() -> UInt32? {
        guard remaining >= 4 else { return nil }
        defer { offset += 4 }
        return UInt32(bigEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }
    @inline(__always) mutating func readUInt64() -> UInt64? {
        guard remaining >= 8 else { return nil }
        defer { offset += 8 }
        return UInt64(bigEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }
    // Fields at `offset + i` that the caller has checked are there (`remaining` > i + size):
    // one load each, no check.
    @inline(__always) func uncheckedUInt8(at i: Int) -> UInt8 { base.load(fromByteOffset: offset + i, as: UInt8.self) }
    @inline(__always) func uncheckedUInt16(at i: Int) -> UInt16 {
        UInt16(bigEndian: base.loadUnaligned(fromByteOffset: offset + i, as: UInt16.self))
    }
    @inline(__always) func uncheckedUInt32(at i: Int) -> UInt32 {
        UInt32(bigEndian: base.loadUnaligned(fromByteOffset: offset + i, as: UInt32.self))
    }

    /// The next `n` bytes (clamped), consumed.
    @inline(__always) mutating func slice(_ n: Int) -> UnsafeRawBufferPointer {
        let count = max(0, min(n, remaining))
        defer { offset += count }
        return UnsafeRawBufferPointer(rebasing: base[offset..<offset + count])
    }
}
