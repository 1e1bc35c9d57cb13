import Foundation
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

/// The router as the workers use it, one turn at a time (`help`), with this test as both
/// workers: a worker that takes nothing lets its queue fill, and then the router must neither
/// wait nor read on (the other worker gets nothing new), and once that worker takes again,
/// every packet reaches its worker once, in order, and each worker gets its last batch.
struct PacketRouterTests {
    @Test func aFullQueueStopsTheReadingAndNothingIsLost() throws {
        let dir = try makeTemporaryDirectory("router")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("big.pcap").path
        // Two UDP flows, alternating: the first goes to worker 0, the second to worker 1.
        // 20 KB datagrams: a batch fills (`PacketBatch.fillMark`) after ~10 of them.
        let payload = [UInt8](repeating: 0x5a, count: 20_000)
        let a = Endpoint(ip: IPAddress("10.0.0.1")!, port: 4000), b = Endpoint(ip: IPAddress("10.0.0.2")!, port: 4001)
        let server = Endpoint(ip: IPAddress("10.0.0.9")!, port: 5000)
        let total = 400
        let frames = (0..<total).map { i in PacketBuilder.ipv4UDP(src: i % 2 == 0 ? a : b, dst: server, payload: payload) }
        try CaptureFileTests.write(frames, to: path)

        let outputs = [HandOff<PacketBatch>(), HandOff<PacketBatch>()]
        let router = PacketRouter(source: try PcapSource.open(file: path), outputs: outputs,
                                  sharding: FlowSharding(workers: 2, tcpIdleLimit: .seconds(60), udpIdleLimit: .seconds(60)),
                                  hasUDPPlugins: false)
        var got: [[Int]] = [[], []]
        var lastSeen = [false, false]
        func drain(_ w: Int) {
            while let batch = outputs[w].take(wait: false) {
                #expect(!lastSeen[w], "a batch after the last one")
                batch.forEach { record in
                    if case .packet(_, let stamp) = record { got[w].append(stamp.index) }
                }
                if batch.isLast { lastSeen[w] = true }
                outputs[w].recycle(batch)
            }
        }
        // Worker 1 takes nothing: its queue fills, a full batch of its waits, and the reading stops.
        var turns = 0
        while outputs[1].waiting < HandOff<PacketBatch>.depth {
            router.help(0, starving: true)
            drain(0)
            turns += 1
            try #require(turns < 1_000, "worker 1's queue never filled")
        }
        // The reading goes on only until worker 1's next batch is full too (its packets
        // alternate with worker 0's): at most one batch more of each.
        let filledAt = got[0].count
        let perBatch = PacketBatch.fillMark / payload.count + 1
        for _ in 0..<perBatch + 1 {
            router.help(0, starving: true)   // returns: no waiting for worker 1
            drain(0)
        }
        let stoppedAt = got[0].count
        #expect(stoppedAt - filledAt <= perBatch)
        for _ in 0..<5 {
            router.help(0, starving: true)
            drain(0)
        }
        #expect(got[0].count == stoppedAt, "read on while a full batch could not be handed over")
        #expect(outputs[1].waiting == HandOff<PacketBatch>.depth)
        #expect(got[0].count < total / 2, "the whole capture was read past a full queue")
        // Both take again: to the end.
        turns = 0
        while !(lastSeen[0] && lastSeen[1]) {
            router.help(turns % 2, starving: turns % 3 == 0)
            drain(0)
            drain(1)
            turns += 1
            try #require(turns < 10_000, "no last batch")
        }
        #expect(got[0] == Array(stride(from: 1, through: total, by: 2)))
        #expect(got[1] == Array(stride(from: 2, through: total, by: 2)))
        #expect(router.packets == total)
    }
}
