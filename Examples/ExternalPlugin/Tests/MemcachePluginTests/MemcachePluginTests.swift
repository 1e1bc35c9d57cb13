import MemcachePlugin
import Testing
import WirebeatConformance
import WirebeatCore

/// A memcached conversation as a TCP stack would send it: handshake, one segment per
/// `send`, each acknowledged by the peer's next segment, FIN from both sides.
struct Conversation {
    static let client = Endpoint(ip: IPAddress("10.0.0.1")!, port: 40000)
    static let server = Endpoint(ip: IPAddress("10.0.0.2")!, port: 11211)

    var packets: [CapturedPacket] = []
    private var time: Int64 = 1_700_000_000_000_000_000
    private var seq: [UInt32] = [1000, 5000]  // client, server

    init() {
        add(client: true, "", [.syn])
        packets[0].acknowledgment = 0
        add(client: false, "", [.syn, .ack])
        add(client: true, "", [.ack])
    }

    mutating func add(client: Bool, _ text: String, _ flags: TCPFlags = [.ack, .psh]) {
        time += 1_000_000
        let bytes = Array(text.utf8)
        let (me, peer) = client ? (0, 1) : (1, 0)
        packets.append(CapturedPacket(timestamp: Timestamp(nanoseconds: time), transport: .tcp,
                                      source: client ? Self.client : Self.server,
                                      destination: client ? Self.server : Self.client,
                                      sequence: seq[me], acknowledgment: seq[peer], flags: flags, payload: bytes))
        seq[me] &+= UInt32(bytes.count) + (flags.contains(.syn) || flags.contains(.fin) ? 1 : 0)
    }

    mutating func c(_ text: String) { add(client: true, text) }
    mutating func s(_ text: String) { add(client: false, text) }

    mutating func close() {
        add(client: true, "", [.fin, .ack])
        add(client: false, "", [.fin, .ack])
        add(client: true, "", [.ack])
    }

    /// Events of a replay through the memcache plugin.
    static func replay(_ packets: [CapturedPacket]) throws -> [JSONValue] {
        var registry = PluginRegistry()
        registry.register(MemcachePlugin.self)
        return PacketCapture(packets: packets).replay(plugins: try registry.load(nil)).events
    }

    /// The packets with packet `i` cut in two at byte `at` of its payload.
    static func cut(_ packets: [CapturedPacket], _ i: Int, at: Int) -> [CapturedPacket] {
        var a = packets[i], b = packets[i]
        a.payload = Array(packets[i].payload[..<at]); a.wireLength = at
        b.payload = Array(packets[i].payload[at...]); b.wireLength = b.payload.count
        b.sequence = a.sequence &+ UInt32(at)
        var out = packets
        out.replaceSubrange(i...i, with: [a, b])
        return out
    }
}

extension JSONValue {
    func string(_ path: String) -> String? { value(at: path)?.stringValue }
    func int(_ path: String) -> Int64? { value(at: path)?.intValue }
    func strings(_ path: String) -> [String]? { value(at: path)?.arrayValue?.compactMap(\.stringValue) }
}

struct MemcachePluginTests {
    /// Storage with a data block cut across segments, a multi-get with a miss, a pipelined
    /// noreply, incr, stats and an error.
    static var script: Conversation {
        var t = Conversation()
        t.c("set k 7 0 5\r\n"); t.c("he"); t.c("llo\r\n")
        t.s("STORED\r\n")
        t.c("get k nope k\r\n")
        t.s("VALUE k 7 5\r\nhello\r\nVALUE k 7 5\r\nhel"); t.s("lo\r\nEND\r\n")
        t.c("set n 0 0 1 noreply\r\n5\r\nincr n 10\r\ndelete k noreply\r\nstats\r\n")
        t.s("15\r\nSTAT pid 1\r\nSTAT uptime 2\r\nEND\r\n")
        t.c("bogus\r\n")
        t.s("ERROR\r\n")
        t.c("quit\r\n")
        t.close()
        return t
    }

    @Test func scriptedConversation() throws {
        let events = try Conversation.replay(Self.script.packets)
        #expect(events.map { $0.string("memcache.request.command") } == ["set", "get", "set", "incr", "delete", "stats", "bogus", "quit"])
        #expect(events.map { $0.string("memcache.response.type") } == ["STORED", "VALUE", nil, "NUMBER", nil, "STAT", "ERROR", nil])
        #expect(events.allSatisfy { $0.value(at: "error.message") == nil })
        let set = events[0], get = events[1]
        #expect(set.int("memcache.request.bytes") == 5 && set.int("memcache.request.flags") == 7)
        #expect(set.int("source.bytes") == 20 && set.int("destination.bytes") == 8)
        #expect(get.strings("memcache.request.keys") == ["k", "nope", "k"])
        #expect(get.strings("memcache.response.keys") == ["k", "k"])
        #expect(get.int("memcache.response.values_count") == 2 && get.int("memcache.response.bytes") == 10)
        #expect(events[2].value(at: "memcache.request.noreply") == .bool(true) && events[2].string("status") == "OK")
        #expect(events[3].string("memcache.response.value") == "15" && events[3].string("memcache.request.delta") == "10")
        #expect(events[5].int("memcache.response.stats_count") == 2)
        #expect(events[6].string("status") == "Error")
    }

    /// Split invariance: every 2-way cut of every data segment gives the same events.
    @Test func splitAtEveryByte() throws {
        let packets = Self.script.packets
        let whole = try Conversation.replay(packets)
        for i in packets.indices where packets[i].payload.count > 1 {
            for at in 1..<packets[i].payload.count {
                let events = try Conversation.replay(Conversation.cut(packets, i, at: at))
                #expect(events == whole, "packet \(i) cut at byte \(at)")
                if events != whole { return }
            }
        }
    }

    /// Bytes lost inside a data block: that request is marked, the rest is exact.
    @Test func lossInsideDataBlockIsExact() throws {
        var t = Conversation()
        t.c("set a 0 0 10\r\n"); t.c("01234"); t.c("56789\r\n")
        t.s("STORED\r\n")
        t.c("get a\r\n")
        t.s("VALUE a 0 10\r\n0123456789\r\nEND\r\n")
        t.close()
        let whole = try Conversation.replay(t.packets)
        var damaged = t.packets
        damaged.remove(at: 4)  // "01234"
        let events = try Conversation.replay(damaged)
        #expect(events.count == 2)
        #expect(events[0].string("error.message") == "packet loss")
        #expect(events[0].string("memcache.response.type") == "STORED")
        #expect(events[1] == whole[1])
    }

    /// Whole requests lost: replies that follow cannot be trusted and say so.
    @Test func lossOfRequestsMarksWhatFollows() throws {
        var t = Conversation()
        t.c("get a\r\n")
        t.s("END\r\n")
        t.c("get b\r\n")
        t.s("END\r\n")
        t.close()
        var damaged = t.packets
        damaged.remove(at: 3)  // "get a"
        let events = try Conversation.replay(damaged)
        #expect(events.count == 2)
        #expect(events.allSatisfy { $0.string("error.message")?.contains("packet loss") == true })
    }

    /// The server closes with a request unanswered: it is published with a note.
    @Test func pendingRequestIsPublishedAtFIN() throws {
        var t = Conversation()
        t.c("get a\r\nset b 0 0 3\r\nab")
        t.s("END\r\n")
        t.close()
        let events = try Conversation.replay(t.packets)
        #expect(events.map { $0.string("memcache.request.command") } == ["get", "set"])
        #expect(events[0].value(at: "error.message") == nil)
        #expect(events[1].string("error.message")?.contains("incomplete request") == true)
        #expect(events[1].string("status") == "Error")
    }
}
