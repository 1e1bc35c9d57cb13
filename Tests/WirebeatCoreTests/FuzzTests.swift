import Testing
@testable import WirebeatCore

/// Seeded random garbage through the whole pipeline (decoder, TCP layer, UDP dispatch,
/// plugins) for every link type: nothing may trap, and every frame must be accounted for
/// exactly once (handed on as TCP/UDP, or skipped for one reason).
struct FuzzTests {
    /// Valid frames for `linkType` to mutate: TCP and UDP to the plugins' ports, IPv4 and
    /// IPv6, fragments, extension headers, VLAN tags.
    static func seeds(for linkType: Int32) -> [[UInt8]] {
        typealias B = PacketBuilder
        let c4 = Endpoint(ip: IPAddress("10.1.0.1")!, port: 40000), s4 = Endpoint(ip: IPAddress("10.1.0.2")!, port: 7000)
        let c6 = Endpoint(ip: IPAddress("fd00::1")!, port: 40000), s6 = Endpoint(ip: IPAddress("fd00::2")!, port: 7000)
        let conv = Conversation(client: c4, server: s4)
        var ip4: [[UInt8]] = (conv.handshake + [conv.c(0, "HELLO\r\n", ack: 0), conv.s(0, "OK\r\n", ack: 7),
                                                conv.c(7, "", flags: [.fin, .ack], ack: 4)]).map(conv.packet)
        ip4.append(B.ipv4UDP(src: Endpoint(ip: c4.ip, port: 5000), dst: Endpoint(ip: s4.ip, port: 7001), payload: Array("ping".utf8)))
        ip4 += DecoderTests.ipv4Fragments()
        var ip6: [[UInt8]] = [
            B.ipv6(src: c6.ip, dst: s6.ip, next: 6, body: B.tcp(src: c6.port, dst: s6.port, seq: 1, flags: [.syn])),
            B.ipv6(src: c6.ip, dst: s6.ip, next: 6, body: B.tcp(src: c6.port, dst: s6.port, seq: 2, payload: Array("v6 data".utf8))),
            B.ipv6(src: c6.ip, dst: s6.ip, next: 0,
                   body: B.extensionHeader(next: 60) + B.routingHeader(next: 17) + B.udp(src: 5000, dst: 7001, payload: [1, 2, 3])),
        ]
        ip6 += DecoderTests.ipv6Fragments()
        switch linkType {
        case LinkType.ethernet:
            return ip4.map { B.ethernet($0) } + ip6.map { B.ethernet($0, etherType: 0x86DD) }
                + ip4.prefix(3).map { B.ethernet($0, vlans: [100, 200]) } + ip6.prefix(2).map { B.ethernet($0, etherType: 0x86DD, vlans: [9]) }
        case LinkType.linuxSLL: return ip4.map { B.sll($0) } + ip6.map { B.sll($0, proto: 0x86DD) }
        case LinkType.linuxSLL2: return ip4.map { B.sll2($0) } + ip6.map { B.sll2($0, proto: 0x86DD) }
        case LinkType.null:
            return ip4.map { B.null($0, family: 2, littleEndian: true) } + ip6.map { B.null($0, family: 30, littleEndian: false) }
        case LinkType.loop: return ip4.map { B.loop($0, family: 2) } + ip6.map { B.loop($0, family: 24) }
        case LinkType.ipv4: return ip4
        case LinkType.ipv6: return ip6
        default: return ip4 + ip6
        }
    }

    static func mutate(_ frame: [UInt8], _ rng: inout SplitMix64) -> [UInt8] {
        var f = frame
        switch Int.random(in: 0..<6, using: &rng) {
        case 0:  // flip a few bytes
            for _ in 0..<Int.random(in: 1...4, using: &rng) where !f.isEmpty {
                f[Int.random(in: 0..<f.count, using: &rng)] ^= UInt8.random(in: 1...255, using: &rng)
            }
        case 1:  // truncate
            f = Array(f.prefix(Int.random(in: 0...f.count, using: &rng)))
        case 2:  // flip bits in the first 64 bytes (the headers), then maybe truncate
            for _ in 0..<Int.random(in: 1...3, using: &rng) where !f.isEmpty {
                f[Int.random(in: 0..<min(64, f.count), using: &rng)] ^= 1 << UInt8.random(in: 0..<8, using: &rng)
            }
            if Bool.random(using: &rng) { f = Array(f.prefix(Int.random(in: 0...f.count, using: &rng))) }
        case 3:  // random bytes appended (or a random tail)
            let keep = Int.random(in: 0...f.count, using: &rng)
            f = Array(f.prefix(keep)) + rng.bytes(Int.random(in: 0...64, using: &rng))
        case 4:  // set a byte to an extreme value
            if !f.isEmpty { f[Int.random(in: 0..<f.count, using: &rng)] = Bool.random(using: &rng) ? 0 : 0xFF }
        default:  // insert or delete a byte
            if !f.isEmpty && Bool.random(using: &rng) {
                f.remove(at: Int.random(in: 0..<f.count, using: &rng))
            } else {
                f.insert(UInt8.random(in: 0...255, using: &rng), at: Int.random(in: 0...f.count, using: &rng))
            }
        }
        return f
    }

    static func sniffer() throws -> (Sniffer, RecordingPlugin, UDPRecorder) {
        var registry = PluginRegistry()
        registry.register(RecordingPlugin.self)
        registry.register(UDPRecorder.self)
        let plugins = try registry.load(nil)
        return (Sniffer(plugins: plugins, publisher: CollectingPublisher()),
                plugins.first { $0.name == RecordingPlugin.name }!.instance as! RecordingPlugin,
                plugins.first { $0.name == UDPRecorder.name }!.instance as! UDPRecorder)
    }

    static func checkAccounting(_ stats: SnifferStats, packets: Int) {
        #expect(stats.packets == packets)
        let skipped = stats.skipped.values.reduce(0, +)
        #expect(skipped + stats.tcpSegments + stats.udpDatagrams == packets,
                "skipped \(skipped) + tcp \(stats.tcpSegments) + udp \(stats.udpDatagrams) != \(packets)")
    }

    @Test(arguments: LinkType.supported)
    func garbageAndMutations(linkType: Int32) throws {
        var rng = SplitMix64(seed: 0x5EED_0000 &+ UInt64(bitPattern: Int64(linkType)))
        let (sniffer, recorder, udp) = try Self.sniffer()
        let seeds = Self.seeds(for: linkType)
        var count = 0, bytes = 0
        var clock: Int64 = 1_700_000_000_000_000_000
        func feed(_ frame: [UInt8]) {
            clock += Int64.random(in: 0...2_000_000_000, using: &rng)
            frame.withUnsafeBytes { sniffer.handle(linkType: linkType, timestamp: Timestamp(nanoseconds: clock), frame: $0) }
            count += 1
            bytes += frame.count
        }
        // The untouched seeds first: they must get through.
        for frame in seeds { feed(frame) }
        #expect(sniffer.stats.skipped.filter { $0.key.isMalformed }.isEmpty)
        #expect(sniffer.stats.tcpSegments > 0)
        #expect(sniffer.stats.udpDatagrams > 0)
        // Pure garbage.
        for _ in 0..<2000 { feed(rng.bytes(Int.random(in: 0...200, using: &rng))) }
        // Mutations of valid frames, with the odd valid frame in between to restart flows.
        for i in 0..<4000 {
            let seed = seeds[Int.random(in: 0..<seeds.count, using: &rng)]
            feed(i % 10 == 0 ? seed : Self.mutate(seed, &rng))
        }
        sniffer.finish()
        let stats = sniffer.stats
        Self.checkAccounting(stats, packets: count)
        #expect(stats.bytes == bytes)
        #expect(stats.malformedPackets > 0)
        #expect(recorder.log.contains { $0.hasPrefix("C:") })
        #expect(!udp.datagrams.isEmpty)
    }

    /// Well-formed headers with random TCP fields and payloads to the plugin port: the TCP
    /// layer sees SYN/FIN/RST storms, wild sequence numbers and wraparound.
    @Test func randomSegmentsThroughTheTCPLayer() throws {
        var rng = SplitMix64(seed: 42)
        let (sniffer, recorder, _) = try Self.sniffer()
        let server = Endpoint(ip: IPAddress("10.9.0.1")!, port: 7000)
        var count = 0
        for i in 0..<6000 {
            let client = Endpoint(ip: IPAddress("10.9.0.2")!, port: UInt16.random(in: 40000...40003, using: &rng))
            let fromClient = Bool.random(using: &rng)
            let seq = Bool.random(using: &rng) ? UInt32.random(in: 0...UInt32.max, using: &rng)
                                               : UInt32.max &- UInt32.random(in: 0...3000, using: &rng)
            let frame = PacketBuilder.ipv4TCP(src: fromClient ? client : server, dst: fromClient ? server : client,
                                              seq: seq, ack: UInt32.random(in: 0...UInt32.max, using: &rng),
                                              flags: TCPFlags(rawValue: UInt8.random(in: 0...0x1F, using: &rng)),
                                              payload: rng.bytes(Int.random(in: 0...300, using: &rng)))
            let t = Timestamp(seconds: 1_700_000_000 + Int64(i / 50))
            frame.withUnsafeBytes { sniffer.handle(linkType: LinkType.raw, timestamp: t, frame: $0) }
            count += 1
        }
        sniffer.finish()
        Self.checkAccounting(sniffer.stats, packets: count)
        #expect(sniffer.stats.tcpSegments == count)
        #expect(sniffer.stats.tcp.connections > 0)
        #expect(recorder.log.last?.hasPrefix("close") == true)
    }

    /// Same seed, same result: the fuzz is reproducible.
    @Test func splitMixIsDeterministic() {
        var a = SplitMix64(seed: 7), b = SplitMix64(seed: 7)
        #expect((0..<100).map { _ in a.next() } == (0..<100).map { _ in b.next() })
        // Reference values of SplitMix64 for seed 0 (Vigna's splitmix64.c).
        var z = SplitMix64(seed: 0)
        #expect(z.next() == 0xE220_A839_7B1D_CDAF)
        #expect(z.next() == 0x6E78_9E6A_A1B9_65F4)
    }
}
