import Testing
@testable import WirebeatCore

/// The router's batches hand packets to a worker as bytes: what comes out must be what went
/// in, in order, payload included, however large.
struct PacketBatchTests {
    static func packet(_ n: Int, payload: UnsafeRawBufferPointer, transport: Transport = .tcp) -> DecodedPacket {
        DecodedPacket(timestamp: Timestamp(seconds: 1_700_000_000, nanoseconds: Int64(n)), transport: transport,
                      source: Endpoint(ip: IPAddress("10.0.0.\(n % 250)")!, port: UInt16(1000 + n)),
                      destination: Endpoint(ip: IPAddress("2001:db8::\(n)")!, port: 80),
                      vlans: n % 2 == 0 ? [] : [100, 200], sequence: UInt32(n) &* 7, acknowledgment: UInt32(n) &* 11,
                      flags: [.ack, .psh], payload: payload, wirePayloadLength: payload.count + n)
    }

    @Test func recordsComeOutAsTheyWentIn() {
        // Sizes around the alignment, empty, and one larger than the whole buffer (it grows).
        let sizes = [0, 1, 15, 16, 17, 1500, 65_535, PacketBatch.capacity + 3, 5]
        let payloads = sizes.enumerated().map { i, n in (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ i) } }
        let batch = PacketBatch()
        for round in 0..<2 {
            var expected: [String] = []
            for (i, bytes) in payloads.enumerated() {
                let stamp = PacketStamp(index: 10 * i + round, clock: Timestamp(nanoseconds: Int64(i)),
                                        tcpClock: Timestamp(nanoseconds: Int64(-i)))
                bytes.withUnsafeBytes { raw in
                    let p = Self.packet(i, payload: raw, transport: i % 3 == 0 ? .udp : .tcp)
                    _ = batch.append(p, at: stamp)
                    expected.append("p \(stamp.index) \(stamp.clock) \(stamp.tcpClock) \(p.timestamp) \(p.transport) \(p.source) "
                                    + "\(p.destination) \(p.vlans) \(p.sequence) \(p.acknowledgment) \(p.flags.rawValue) "
                                    + "\(p.wirePayloadLength) \(bytes.count) \(bytes.reduce(0) { $0 &* 31 &+ Int($1) })")
                }
                if i % 2 == 0 {
                    _ = batch.appendSweep(at: stamp, i % 4 == 0 ? .udp : .tcp)
                    expected.append("s \(stamp.index) \(stamp.clock) \(stamp.tcpClock) \(i % 4 == 0 ? Transport.udp : .tcp)")
                }
            }
            var seen: [String] = []
            batch.forEach { record in
                switch record {
                case .packet(let p, let stamp):
                    let sum = p.payload.reduce(0) { $0 &* 31 &+ Int($1) }
                    seen.append("p \(stamp.index) \(stamp.clock) \(stamp.tcpClock) \(p.timestamp) \(p.transport) \(p.source) "
                                + "\(p.destination) \(p.vlans) \(p.sequence) \(p.acknowledgment) \(p.flags.rawValue) "
                                + "\(p.wirePayloadLength) \(p.payload.count) \(sum)")
                case .sweep(let stamp, let transport):
                    seen.append("s \(stamp.index) \(stamp.clock) \(stamp.tcpClock) \(transport)")
                }
            }
            #expect(seen == expected, "round \(round)")
            batch.reset()  // used again, as the hand-over does
            var after = 0
            batch.forEach { _ in after += 1 }
            #expect(after == 0)
        }
    }

    @Test func fullOnceTheFillMarkIsPassed() {
        let batch = PacketBatch()
        let bytes = [UInt8](repeating: 7, count: 1000)
        var records = 0
        var full = false
        bytes.withUnsafeBytes { raw in
            while !full {
                full = batch.append(Self.packet(records, payload: raw), at: PacketStamp(index: records, clock: .zero, tcpClock: .zero))
                records += 1
            }
        }
        // Every record is still there, the one that filled it too.
        var count = 0
        batch.forEach { _ in count += 1 }
        #expect(count == records)
        #expect(records * 1000 >= PacketBatch.fillMark - 200 * records)
    }
}
