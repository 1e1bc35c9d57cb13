import Foundation
@testable import WirebeatCore

/// More frame builders for the decoder, fuzz and capture-file tests: every link-layer
/// header Wirebeat reads, generic IPv4/IPv6/UDP, IPv6 extension headers and fragments.
extension PacketBuilder {
    static func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xff)] }

    static func tcp(src: UInt16, dst: UInt16, seq: UInt32 = 1, ack: UInt32 = 0, flags: TCPFlags = [.ack, .psh],
                    payload: [UInt8] = []) -> [UInt8] {
        tcpHeader(src: src, dst: dst, seq: seq, ack: ack, flags: flags) + payload
    }

    static func udp(src: UInt16, dst: UInt16, payload: [UInt8]) -> [UInt8] {
        udpHeader(src: src, dst: dst, payloadLength: payload.count) + payload
    }

    static func ipv4(src: IPAddress, dst: IPAddress, proto: UInt8, body: [UInt8], id: UInt16 = 1,
                     flagsOffset: UInt16 = 0) -> [UInt8] {
        ipv4Header(src: src, dst: dst, proto: proto, payloadLength: body.count, id: id, flagsOffset: flagsOffset) + body
    }

    /// An IPv6 packet whose payload length covers `body` (extension headers included).
    static func ipv6(src: IPAddress, dst: IPAddress, next: UInt8, body: [UInt8]) -> [UInt8] {
        [0x60, 0, 0, 0] + be16(UInt16(body.count)) + [next, 64] + src.bytes + dst.bytes + body
    }

    static func ipv4UDP(src: Endpoint, dst: Endpoint, payload: [UInt8]) -> [UInt8] {
        ipv4(src: src.ip, dst: dst.ip, proto: 17, body: udp(src: src.port, dst: dst.port, payload: payload))
    }

    static func ipv6UDP(src: Endpoint, dst: Endpoint, payload: [UInt8]) -> [UInt8] {
        ipv6(src: src.ip, dst: dst.ip, next: 17, body: udp(src: src.port, dst: dst.port, payload: payload))
    }

    /// A hop-by-hop, destination options or routing header: `(length8 + 1) * 8` bytes.
    static func extensionHeader(next: UInt8, length8: UInt8 = 0) -> [UInt8] {
        [next, length8] + [UInt8](repeating: 0, count: (Int(length8) + 1) * 8 - 2)
    }

    /// A type-0 routing header with one address (24 bytes).
    static func routingHeader(next: UInt8) -> [UInt8] {
        [next, 2, 0, 1, 0, 0, 0, 0] + IPAddress("2001:db8::99")!.bytes
    }

    /// An IPv6 fragment header; `offset` is in bytes (a multiple of 8).
    static func fragmentHeader(next: UInt8, offset: Int, more: Bool, id: UInt32) -> [UInt8] {
        [next, 0] + be16(UInt16(offset) | (more ? 1 : 0)) + be32(id)
    }

    /// Linux cooked capture v1 (16-byte header, protocol last).
    static func sll(_ payload: [UInt8], proto: UInt16 = 0x0800) -> [UInt8] {
        [0, 0, 0, 1, 0, 6, 0, 1, 2, 3, 4, 5, 0, 0] + be16(proto) + payload
    }

    /// Linux cooked capture v2 (20-byte header, protocol first).
    static func sll2(_ payload: [UInt8], proto: UInt16 = 0x0800) -> [UInt8] {
        be16(proto) + [0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 0, 1, 2, 3, 4, 5, 0, 0] + payload
    }

    /// BSD loopback (DLT_NULL): the address family in the capturing host's byte order.
    static func null(_ payload: [UInt8], family: UInt32, littleEndian: Bool) -> [UInt8] {
        (littleEndian ? be32(family.byteSwapped) : be32(family)) + payload
    }

    /// OpenBSD loopback (DLT_LOOP): the address family in network byte order.
    static func loop(_ payload: [UInt8], family: UInt32) -> [UInt8] { be32(family) + payload }

    /// Overwrites bytes at `offset` (for damaging a header field).
    static func patch(_ frame: [UInt8], at offset: Int, _ bytes: [UInt8]) -> [UInt8] {
        var f = frame
        f.replaceSubrange(offset..<offset + bytes.count, with: bytes)
        return f
    }
}

/// The core's seeded generator (SplitMix64), never the system one in tests.
typealias SplitMix64 = SeededRandom

extension SeededRandom {
    mutating func bytes(_ count: Int) -> [UInt8] { (0..<count).map { _ in UInt8.random(in: 0...255, using: &self) } }
}

/// A UDP plugin that counts datagrams (the fuzz and capture tests route UDP through it).
final class UDPRecorder: UDPProtocolPlugin {
    static let name = "udprecorder"
    static let defaultPorts: [UInt16] = [7001]
    var datagrams: [String] = []
    init(config: PluginConfig) throws {}
    func parseDatagram(_ payload: Span<UInt8>, direction: Direction, context: PluginContext) {
        datagrams.append("\(direction):\(payload.count)")
    }
}

/// A second TCP plugin, for port clashes between plugins.
final class OtherTCPPlugin: TCPProtocolPlugin {
    static let name = "other"
    static let defaultPorts: [UInt16] = [7100]
    let connectionTimeout = TimeSpan.seconds(10)
    init(config: PluginConfig) throws {}
    func makeConnectionState(for connection: ConnectionInfo) -> Int { 0 }
    func parse(_ stream: inout StreamBuffer, direction: Direction, state: inout Int, context: PluginContext) {
        stream.skip(stream.readableBytes)
    }
}

/// A fresh, uniquely named directory under the system temporary directory.
func makeTemporaryDirectory(_ label: String) throws -> URL {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("wirebeat-coretests-\(label)-\(UUID().uuidString)", isDirectory: true)
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}
